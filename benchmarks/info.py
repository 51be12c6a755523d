"""`lake info` and `lake export` speed: 3,000 symbols x 5 years of daily demo bars.

    python benchmarks/info.py [--symbols 3000] [--runs 3] --json

The lake is ``check.py``'s, built once per run of this script (demo bars written straight
through the store), then ``Lake.info`` over the whole range (coverage cells, bar counts and
files of every symbol) and ``Lake.export`` of every bar to Parquet and CSV are timed in-process
(median of the runs after a warm-up). Target: info under 5 s, like ``lake check`` on the same lake.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from check import END, START, daily_lake


def timed(runs: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The median seconds of ``runs`` calls of ``work`` after one warm-up, and its last result."""
    times, result = [], None
    for _ in range(runs + 1):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:]), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lake = daily_lake(Path(tmp) / "lake", args.symbols)
        info_s, info = timed(args.runs, lambda: lake.info(interval="1day", start=START, end=END))
        totals = info.totals()
        parquet_s, bars = timed(args.runs, lambda: lake.export(Path(tmp) / "all.parquet"))
        csv_s, _ = timed(args.runs, lambda: lake.export(Path(tmp) / "all.csv", format="csv"))
    report = {
        "benchmark": "lake info and export, daily",
        "symbols": args.symbols,
        "bars": totals["bars"],
        "expected_sessions": totals["expected"],
        "files": totals["files"],
        "runs": args.runs,
        "info_s": round(info_s, 3),
        "export_parquet_s": round(parquet_s, 3),
        "export_csv_s": round(csv_s, 3),
        "exported_bars": bars,
        "target_info_s": 5.0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
