"""How close ``lake plan``'s time estimate comes to the fill's wall time, against the vendor
emulators over loopback with a latency per answer.

    python benchmarks/estimates.py [--runs N] [--only E1] [--latency S] --json

Scenarios (each on the clock of ``_scenarios``, 2024-12-13 the last session):

E1  rate-limited: 30 new symbols, 1-minute bars of the last 56 days, from the Alpaca emulator at
    30 requests a minute with ``--latency`` seconds per answer (default 0.05): the plan's ~50
    requests (pages of 10,000 bars) go out in two windows of the rate limit
E2  latency-bound: the same symbols' 1-minute bars of the last 21 days at Alpaca's own 200 a
    minute, 0.3 s per answer and 2 requests in flight: the rate limit never binds, the latency
    and the pages each request sends one after the other do

Each run builds a fresh lake with the symbols (no bars), fills their 1-minute bars of three
sessions in September from another emulator with the same latency (so that the catalog has a
job whose latency it measured, as a lake that has filled before has, without spending the
measured emulator's rate-limit window),
then plans the scenario (``estimate_s``: ``Plan.estimated_seconds``) and runs that plan, timed
(``measured_s``: ``Lake.run_plan`` from start to end: requests, writes, catalog). ``measured_s``
is the median of ``--runs`` runs (default 3), each against a fresh emulator process;
``estimate_s`` is the median of the runs' estimates and ``ratio`` is estimate / measured (the
issue's target: within 30%, ``within_30pct``). Also shown: the estimate before any job measured
the latency (``estimate_typical_latency_s``, the provider's typical latency) and the rate limit
alone as plans counted it before (``estimate_before_s``: a minute per further minute's quota).

Prints {"scenarios": [{"name", "requests", "estimate_s", "measured_s", "ratio", ...}],
"parameters": {...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from _scenarios import CLOCK, CREDENTIALS, Scenario, build, clock, configure, open_vendor

from barlake import Lake

SYMBOLS = tuple(f"E{i:03d}" for i in range(30))
#: The sessions of the fill before the measured one: 1-minute bars, long before its window.
PRIMER = {"start": date(2024, 9, 3), "end": date(2024, 9, 5)}


@dataclass(frozen=True)
class Case:
    scenario: Scenario
    latency_s: float | None  # None: ``--latency``
    parallel: int | None = None


CASES = (
    Case(
        Scenario(
            name="E1",
            provider="alpaca",
            rate_per_min=30,
            symbols=SYMBOLS,
            selections=({"interval": "1min", "days": 56},),
            notes="30 symbols x 56 days of 1min bars at 30 requests/min",
        ),
        None,
    ),
    Case(
        Scenario(
            name="E2",
            provider="alpaca",
            rate_per_min=200,
            symbols=SYMBOLS,
            selections=({"interval": "1min", "days": 21},),
            notes="30 symbols x 21 days of 1min bars at 200/min, 0.3 s a request, 2 in flight",
        ),
        0.3,
        parallel=2,
    ),
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def point(root: Path, scenario: Scenario, url: str, parallel: int | None) -> None:
    """Point the lake at the emulator at ``url`` (and set the requests in flight)."""
    configure(root, scenario, _Url(url))
    if parallel is not None:
        config = yaml.safe_load((root / "lake.yaml").read_text())
        config["backfill"] = {"parallel_symbols": parallel}
        (root / "lake.yaml").write_text(yaml.safe_dump(config))


@dataclass(frozen=True)
class _Url:
    url: str


def run_once(case: Case, root: Path, latency_s: float) -> dict[str, Any]:
    """One run: a fresh lake, a fill that measures latency, then the scenario's plan and fill."""
    sc = case.scenario
    build(sc, root)
    primer = open_vendor(sc, latency_s)
    try:
        point(root, sc, primer.url, case.parallel)
        typical = Lake.open(root, clock=clock).plan(**sc.selections[0])
        Lake.open(root, clock=clock).fill(interval="1min", **PRIMER)
    finally:
        primer.stop()
    vendor = open_vendor(sc, latency_s)
    try:
        point(root, sc, vendor.url, case.parallel)
        lake = Lake.open(root, clock=clock)
        plan = lake.plan(**sc.selections[0])
        mark = vendor.mark()
        started = time.perf_counter()
        result = lake.run_plan(plan)
        measured = time.perf_counter() - started
        calls, limited, _ = vendor.since(mark)
    finally:
        vendor.stop()
    # What plans estimated before: the rate limit alone, a minute per further minute's quota.
    old = (plan.total_requests - 1) // int(plan.rate_limit_per_min) * 60.0
    return {
        "estimate_s": plan.estimated_seconds,
        "estimate_typical_latency_s": typical.estimated_seconds,
        "estimate_before_s": old,
        "measured_s": measured,
        "plan_requests": plan.total_requests,
        "requests": result.requests,
        "emulator_requests": calls,
        "rate_limited": limited,
        "bars_written": result.bars_written,
        "status": result.status,
        "latency_used_s": plan.pace.latency_s,
        "latency_source": plan.pace.latency_source,
        "parallel": plan.pace.parallel,
    }


def measure(case: Case, workdir: Path, runs: int, latency_s: float) -> dict[str, Any]:
    sc = case.scenario
    out = []
    for i in range(runs):
        root = workdir / f"{sc.name}-run{i}"
        got = run_once(case, root, latency_s)
        say(
            f"{sc.name}: run {i + 1}/{runs}: estimate {got['estimate_s']:.1f} s, "
            f"measured {got['measured_s']:.1f} s, {got['requests']} requests"
        )
        out.append(got)
    estimate = statistics.median(r["estimate_s"] for r in out)
    measured = statistics.median(r["measured_s"] for r in out)
    ratio = estimate / measured if measured else None
    last = out[-1]
    return {
        "name": sc.name,
        "setup": sc.notes,
        "provider": sc.provider,
        "rate_per_min": sc.rate_per_min,
        "emulator_latency_s": latency_s,
        "estimate_s": round(estimate, 3),
        "measured_s": round(measured, 3),
        "ratio": round(ratio, 3) if ratio is not None else None,
        "within_30pct": ratio is not None and abs(ratio - 1) <= 0.3,
        "estimate_typical_latency_s": round(
            statistics.median(r["estimate_typical_latency_s"] for r in out), 3
        ),
        "estimate_before_s": round(last["estimate_before_s"], 3),
        "measured_runs_s": [round(r["measured_s"], 3) for r in out],
        "estimate_runs_s": [round(r["estimate_s"], 3) for r in out],
        "plan_requests": last["plan_requests"],
        "requests": last["requests"],
        "emulator_requests": last["emulator_requests"],
        "rate_limited": last["rate_limited"],
        "bars_written": last["bars_written"],
        "status": last["status"],
        "latency_used_s": [round(r["latency_used_s"], 4) for r in out],
        "latency_source": last["latency_source"],
        "parallel": last["parallel"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs per scenario (default 3).")
    parser.add_argument("--only", help="Comma-separated scenario names, e.g. E1.")
    parser.add_argument("--latency", type=float, default=0.05, help="E1's seconds per answer.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    chosen = list(CASES)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",") if w.strip()}
        chosen = [c for c in chosen if c.scenario.name in wanted]
    # The emulators' test keys win over any real ones; LAKE_* settings would redirect the lakes.
    for name in [k for k in os.environ if k.startswith("LAKE_")]:
        del os.environ[name]
    os.environ.update(CREDENTIALS)
    load_before = round(os.getloadavg()[0], 2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="barlake-estimates-") as tmp:
        os.environ.setdefault("BARLAKE_CACHE_DIR", str(Path(tmp) / "cache"))
        for case in chosen:
            latency = case.latency_s if case.latency_s is not None else args.latency
            case = replace(case, latency_s=latency)
            rows.append(measure(case, Path(tmp), args.runs, latency))
    report = {
        "scenarios": rows,
        "parameters": {
            "runs": args.runs,
            "clock": CLOCK.isoformat(),
            "cpus": os.cpu_count(),
            "load_average_1min": [load_before, round(os.getloadavg()[0], 2)],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
