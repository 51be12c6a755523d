"""Demo fill throughput: 500 symbols x 250 sessions of daily bars plus 50 symbols x 20 sessions of
1-minute bars, no simulated latency. Each run is a fresh lake in a fresh process, so peak RSS is
the fill's own.

    python benchmarks/fill.py [--runs 5] [--quick] --json

Prints {"runs": N, "wall_s": median, "bars": ..., "bars_per_s": median, "peak_rss_mib": max, ...}.
Targets: at least 500,000 bars/s end to end, peak RSS under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date

DAILY = {"interval": "1day", "start": date(2024, 1, 2), "end": date(2024, 12, 27)}
MINUTE = {"interval": "1min", "start": date(2024, 5, 1), "end": date(2024, 5, 29)}


def one_run(daily_symbols: int, minute_symbols: int, mode: str) -> dict[str, float]:
    """Fill a fresh lake; ``mode`` "job" plans both parts and runs them as one job (what
    ``Plan.__add__`` is for), "fills" runs two ``lake.fill`` calls as the CLI would."""
    from barlake import Lake

    daily_names = [f"D{i:04d}" for i in range(daily_symbols)]
    minute_names = [f"M{i:03d}" for i in range(minute_symbols)]
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake.init(tmp)
        lake.add_symbols(daily_names + minute_names)
        started = time.perf_counter()
        if mode == "job":
            plan = lake.plan(daily_names, **DAILY) + lake.plan(minute_names, **MINUTE)
            results = [lake.run_plan(plan)]
        else:
            results = [lake.fill(daily_names, **DAILY), lake.fill(minute_names, **MINUTE)]
        wall = time.perf_counter() - started
        daily_bars = lake.store.scan("1day").select("symbol").collect().height
    bars = sum(r.bars_written for r in results)
    return {
        "wall_s": wall,
        "bars": bars,
        "daily_bars": daily_bars,
        "minute_bars": bars - daily_bars,
        "requests": sum(r.requests for r in results),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="A small fill for CI smoke runs.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    parser.add_argument("--one", choices=["job", "fills"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (50, 5) if args.quick else (500, 50)
    if args.one:
        print(json.dumps(one_run(*sizes, args.one)))
        return
    runs: dict[str, list[dict[str, float]]] = {"job": [], "fills": []}
    for _ in range(args.runs):
        for mode in runs:  # alternate the two modes so drift hits both alike
            cmd = [sys.executable, __file__, "--one", mode, *(["--quick"] if args.quick else [])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[mode].append(json.loads(out))
    report: dict[str, object] = {
        "benchmark": "demo fill",
        "daily": f"{sizes[0]} symbols x 2024-01-02..2024-12-27",
        "minute": f"{sizes[1]} symbols x 2024-05-01..2024-05-29",
        "runs": args.runs,
        "bars": runs["job"][0]["bars"],
        "daily_bars": runs["job"][0]["daily_bars"],
        "minute_bars": runs["job"][0]["minute_bars"],
    }
    for mode, label in (("job", "one_job"), ("fills", "two_fills")):
        walls = [r["wall_s"] for r in runs[mode]]
        report[label] = {
            "requests": runs[mode][0]["requests"],
            "wall_s": round(statistics.median(walls), 3),
            "wall_s_min": round(min(walls), 3),
            "wall_s_max": round(max(walls), 3),
            "bars_per_s": round(statistics.median(r["bars"] / r["wall_s"] for r in runs[mode])),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs[mode]), 1),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
