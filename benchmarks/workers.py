"""A team's workers against one rate limit: 1, 2 and 4 ``lake worker`` processes on a PostgreSQL
catalog and queue, each a "machine" of its own (a lake folder and cache each, one catalog), fill
queued requests from the Alpaca emulator limited to 200 requests a minute.

    python benchmarks/workers.py [--quick] [--runs N] [--workers 1,2,4] [--latency S] --json

Two workloads, each queued at once while the workers idle (they are started and have looked at
the empty queue first, so their start-up is not timed):

- ``daily``: a daily update, one session (2024-06-03) for 3,000 symbols, queued as 30 requests of
  100 symbols;
- ``intraday``: a 1-minute backfill of 200 symbols over 5 sessions (2024-06-03..07), queued as
  20 requests of 10 symbols.

Scaled so that the rate limit binds. In the vendor's own sizes (200 symbols a call, 10,000 bars a
page) these are 15 and about 40 calls: less than one minute's quota, which the vendor's sliding
window lets through at once, so neither rate nor bound would say anything. Here the provider asks
10 symbols a call and 1,000 bars a page (the vendor's default ``limit``): 300 calls for the
daily update, 400 for the backfill, rate-limit bounds of 1.5 and 2 minutes. ``--quick`` takes
600 daily and 40 intraday symbols (60 and 80 calls) and the same 200 a minute counted over a
15-second window (50 per 15 s, on both sides), so that a short run is held by the limit too.

Each (workload, worker count, run) has a database of its own on one throwaway cluster
(``barlake.catalog.postgres.cluster``) and an emulator of its own, in its own process
(``_emulator_process.py``), answering each call after ``--latency`` seconds (0.1). Workers run
with lake.yaml's defaults otherwise (``worker.poll_s`` 1 s, ``backfill.parallel_symbols`` 10).

Per workload and worker count (medians over ``--runs``):

- ``rate_share``: calls answered per full window (counted from the first call, the run's last,
  partial window left out) as a share of the limit; ``requests_per_min``: calls over the wall
  time, which may exceed the limit since a window's quota may come at once;
- ``duplicates``: answers of 200 to a call the emulator had already answered 200 (the same path
  and query); ``rate_limited``: 429s;
- ``wall_s`` from the first request's ``created_at`` to the last one's ``finished_at`` (the
  catalog's clock), against ``bound_s`` = calls / limit (``wall_over_bound``), and
  ``window_bound_s``, the least the sliding window allows (a window's quota at once, the next one
  a window and the limiter's 1-s margin later);
- ``claim_p50_s``/``claim_p99_s``: queued to claimed, from the catalog's rows (mostly time spent
  waiting behind other requests); ``handoff_p50_s``/``handoff_p99_s``: from a worker's finish of
  one request to its claim of the next (its own overhead and polling);
- ``failed``, and ``claims`` beyond one per request.

The full sizes are 1.5 and 2 windows of calls: the first window's quota goes at once, so
``rate_share`` counts one full window and ``wall_s`` lies near ``window_bound_s``, under
``bound_s``; ``claim_p99_s`` is the wait of the requests the second window serves.

``targets`` (for 2 and 4 workers): rate_share >= 0.9, 0 duplicates (any worker count), wall time at
most 1.2 x bound_s.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from _scenarios import KEY, SECRET, ProcessVendor

import barlake
from barlake.providers.demo import demo_listing_date
from barlake.providers.demo.series import demo_halted

#: Requests a minute on Alpaca's free plan.
LIMIT_PER_MIN = 200
MARGIN_S = 1.0  # the lakes' default ``RATE_MARGIN_S``
OPTIONS = {"symbols_per_request": 10, "page_limit": 1000}


@dataclass(frozen=True)
class Workload:
    name: str
    interval: str
    symbols: int
    per_request: int
    start: date
    end: date
    sessions: tuple[date, ...]


FULL = (
    Workload("daily", "1day", 3000, 100, date(2024, 6, 3), date(2024, 6, 3), (date(2024, 6, 3),)),
    Workload(
        "intraday",
        "1min",
        200,
        10,
        date(2024, 6, 3),
        date(2024, 6, 7),
        tuple(date(2024, 6, d) for d in range(3, 8)),
    ),
)
QUICK_SYMBOLS = {"daily": 600, "intraday": 40}


def names(workload: Workload) -> list[str]:
    """``workload.symbols`` demo symbols with bars on every session of it (listed before it and
    not halted on one), so that every request can end done."""
    prefix = "D" if workload.interval == "1day" else "M"
    found: list[str] = []
    n = 0
    while len(found) < workload.symbols:
        name = f"{prefix}{n:04d}"
        n += 1
        listed = demo_listing_date(name)
        if listed is not None and listed >= workload.start:
            continue
        if any(demo_halted(name, s) for s in workload.sessions):
            continue
        found.append(name)
    return found


class WorkerProcess:
    """``lake worker --json-logs`` on one machine's lake, and the events it has logged."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "barlake", "--lake", str(root), "worker", "--json-logs"]
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.events: list[dict[str, Any]] = []
        self.noise: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.noise.append(line.rstrip())

    def idle(self) -> bool:
        return any(e["event"] == "idle" for e in self.events)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def rate_figures(times: list[float], limit: int, window_s: float) -> dict[str, Any]:
    """Calls per full window from the first call (the last, partial one left out) as a share
    of ``limit``, and the busiest sliding window's share."""
    times = sorted(times)
    if not times:
        return {"rate_share": None, "busiest_window_share": None, "full_windows": 0}
    full = int((times[-1] - times[0]) // window_s)
    counted = sum(1 for t in times if t < times[0] + full * window_s)
    busiest, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        busiest = max(busiest, i - j + 1)
    return {
        "rate_share": round(counted / (full * limit), 3) if full else None,
        "busiest_window_share": round(busiest / limit, 3),
        "full_windows": full,
    }


def catalog_rows(url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT request_id, state, worker, attempts, created_at, claimed_at, finished_at "
            "FROM backfill_requests"
        ).fetchall()


def claim_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Queued-to-claimed latencies, and each worker's finish-to-next-claim handoffs (seconds)."""
    claims = [(r["claimed_at"] - r["created_at"]).total_seconds() for r in rows if r["claimed_at"]]
    handoffs: list[float] = []
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["worker"] and r["claimed_at"] and r["finished_at"]:
            by_worker.setdefault(r["worker"], []).append(r)
    for served in by_worker.values():
        served.sort(key=lambda r: r["claimed_at"])
        for before, after in itertools.pairwise(served):
            handoffs.append((after["claimed_at"] - before["finished_at"]).total_seconds())
    return {
        "claim_p50_s": _percentile(claims, 0.5),
        "claim_p99_s": _percentile(claims, 0.99),
        "handoff_p50_s": _percentile(handoffs, 0.5),
        "handoff_p99_s": _percentile(handoffs, 0.99),
        "workers_serving": len(by_worker),
    }


def lake_yaml(url: str, limit: int, window_s: float) -> dict[str, Any]:
    return {
        "default_provider": "alpaca",
        "backfill": {"fetch_actions": False},
        "providers": {
            "alpaca": {
                "base_url": url,
                "rate_limit_per_min": limit,
                "rate_limit_window_s": window_s,
                "timeout_s": 30,
                "options": OPTIONS,
            }
        },
    }


@contextlib.contextmanager
def catalog_env(url: str) -> Iterator[None]:
    from barlake.catalog import URL_ENV

    os.environ[URL_ENV] = url
    try:
        yield
    finally:
        os.environ.pop(URL_ENV, None)


def one_run(
    server: str,
    workload: Workload,
    symbols: list[str],
    count: int,
    *,
    limit: int,
    window_s: float,
    latency_s: float,
) -> dict[str, Any]:
    """``count`` workers fill ``workload`` from a fresh emulator and database; its figures."""
    from barlake import Lake
    from barlake.catalog import URL_ENV
    from barlake.catalog.postgres.cluster import database

    settings = {
        "api_key": KEY,
        "api_secret": SECRET,
        "rate_limit": limit,
        "window_s": window_s,
        "latency_s": latency_s,
        "symbols": symbols,
    }
    with (
        database(server) as url,
        tempfile.TemporaryDirectory(prefix="barlake-workers-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        vendor = ProcessVendor.started("alpaca", settings)
        stack.callback(vendor.stop)
        src = str(Path(barlake.__file__).resolve().parents[1])
        roots = []
        with catalog_env(url):
            for n in range(count):
                root = Path(tmp) / f"machine{n}"
                root.mkdir()
                config = lake_yaml(vendor.url, limit, window_s)
                (root / "lake.yaml").write_text(yaml.safe_dump(config))
                Lake.init(root)
                roots.append(root)
            lake = Lake.open(roots[0])
            lake.add_symbols(symbols)
        workers: list[WorkerProcess] = []
        for n, root in enumerate(roots):
            env = {
                **os.environ,
                URL_ENV: url,
                "APCA_API_KEY_ID": KEY,
                "APCA_API_SECRET_KEY": SECRET,
                "BARLAKE_CACHE_DIR": str(Path(tmp) / f"cache{n}"),
                "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
            }
            workers.append(WorkerProcess(root, env))
        for w in workers:
            stack.callback(w.stop)
        deadline = time.monotonic() + 120
        while not all(w.idle() for w in workers):
            if time.monotonic() > deadline or any(w.proc.poll() is not None for w in workers):
                noise = [line for w in workers for line in w.noise][-5:]
                msg = f"the workers did not start: {noise}"
                raise RuntimeError(msg)
            time.sleep(0.05)
        per = workload.per_request
        chunks = [symbols[i : i + per] for i in range(0, len(symbols), per)]
        with catalog_env(url):
            for chunk in chunks:
                lake.queue.add(
                    chunk, interval=workload.interval, start=workload.start, end=workload.end
                )  # type: ignore[arg-type]
            deadline = time.monotonic() + 1800
            while True:
                depth = lake.queue.depth()
                if depth.get("done", 0) + depth.get("failed", 0) >= len(chunks):
                    break
                if time.monotonic() > deadline:
                    msg = f"the workers did not finish in 30 minutes: {depth}"
                    raise RuntimeError(msg)
                time.sleep(0.2)
        counts = vendor.ask("count")
        arrivals = vendor.ask("arrivals")
        rows = catalog_rows(url)
    answered = [t for t, status in arrivals if status == 200]
    wall = (
        max(r["finished_at"] for r in rows) - min(r["created_at"] for r in rows)
    ).total_seconds()
    calls = len(answered)
    bound = calls / limit * window_s
    window_bound = ((calls - 1) // limit) * (window_s + MARGIN_S) if calls else 0.0
    return {
        "requests": calls,
        "rate_limited": counts["statuses"].get("429", 0),
        "other_statuses": {k: v for k, v in counts["statuses"].items() if k not in ("200", "429")},
        "duplicates": counts["duplicates"],
        **rate_figures(answered, limit, window_s),
        "requests_per_min": round(calls / wall * 60, 1) if wall else None,
        "wall_s": round(wall, 2),
        "bound_s": round(bound, 2),
        "window_bound_s": round(window_bound, 2),
        "wall_over_bound": round(wall / bound, 3) if bound else None,
        **claim_figures(rows),
        "queued_requests": len(chunks),
        "failed": sum(r["state"] == "failed" for r in rows),
        "extra_claims": sum(r["attempts"] for r in rows) - len(rows),
        "emulator_cpu_s": round(counts["cpu_s"], 2),
    }


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    values = [r[key] for r in runs if r[key] is not None]
    if not values:
        return None
    return round(statistics.median(values), 3)


MEDIANS = (
    "requests",
    "rate_limited",
    "duplicates",
    "rate_share",
    "busiest_window_share",
    "requests_per_min",
    "wall_s",
    "bound_s",
    "window_bound_s",
    "wall_over_bound",
    "claim_p50_s",
    "claim_p99_s",
    "handoff_p50_s",
    "handoff_p99_s",
    "failed",
    "extra_claims",
)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    report = {key: _median(runs, key) for key in MEDIANS}
    report["duplicates_max"] = max(r["duplicates"] for r in runs)
    report["workers_serving"] = [r["workers_serving"] for r in runs]
    report["other_statuses"] = [r["other_statuses"] for r in runs if r["other_statuses"]]
    return report


def targets(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Per workload: whether 2 and more workers reach 0.9 of the limit and 1.2 x the bound, and
    whether any worker count did a call twice."""
    found: dict[str, Any] = {}
    for name, by_count in results.items():
        many = {c: s for c, s in by_count.items() if int(c) >= 2}
        found[name] = {
            "rate_share_at_least_0.9": all(
                s["rate_share"] is not None and s["rate_share"] >= 0.9 for s in many.values()
            ),
            "no_duplicates": all(s["duplicates_max"] == 0 for s in by_count.values()),
            "wall_at_most_1.2_bound": all(
                s["wall_over_bound"] is not None and s["wall_over_bound"] <= 1.2
                for s in many.values()
            ),
        }
    found["all_met"] = all(all(v.values()) for v in found.values())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Fewer symbols, a 15-s window.")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workers", default="1,2,4", help="Worker counts, comma-separated.")
    parser.add_argument("--latency", type=float, default=0.1, help="Seconds per answer.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]
    window_s = 15.0 if args.quick else 60.0
    limit = round(LIMIT_PER_MIN * window_s / 60)
    workloads = [
        Workload(**{**w.__dict__, "symbols": QUICK_SYMBOLS[w.name]}) if args.quick else w
        for w in FULL
    ]
    from barlake.catalog.postgres.cluster import cluster, missing

    why = missing()
    if why is not None:
        print(json.dumps({"benchmark": "workers", "skipped": why}))
        return
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.name: {str(c): [] for c in counts} for w in workloads
    }
    with cluster() as server:
        chosen = {w.name: names(w) for w in workloads}
        for _ in range(args.runs):
            for w in workloads:
                for c in counts:  # alternated run by run, so that all see the same machine
                    found = one_run(
                        server, w, chosen[w.name], c,
                        limit=limit, window_s=window_s, latency_s=args.latency,
                    )  # fmt: skip
                    runs[w.name][str(c)].append(found)
                    print(f"{w.name} x{c}: {json.dumps(found)}", file=sys.stderr, flush=True)
    results = {name: {c: summary(r) for c, r in by.items()} for name, by in runs.items()}
    report = {
        "benchmark": "lake worker processes on a PostgreSQL catalog against one rate limit",
        "quick": args.quick,
        "limit": f"{limit} requests per {window_s:g} s ({LIMIT_PER_MIN} a minute)",
        "scaled": "10 symbols a call and 1,000 bars a page (not 200 and 10,000) so that the "
        "limit binds: in the vendor's sizes the workloads are under one minute's quota",
        "workloads": {
            w.name: f"{w.symbols} symbols x {w.interval} {w.start}..{w.end}, "
            f"{-(-w.symbols // w.per_request)} requests of {w.per_request}"
            for w in workloads
        },
        "latency_s": args.latency,
        "runs": args.runs,
        "results": results,
        "targets": targets(results),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
