"""`lake check` speed: 3,000 symbols x 5 years of daily demo bars, every rule, findings stored.

    python benchmarks/check.py [--symbols 3000] [--runs 5] --json

The lake is built once per run of this script (demo bars written straight through the store),
then ``Lake.check`` is timed in-process (median of the runs after a warm-up) and ``lake check``
as a whole CLI process. Target: under 5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from barlake import Lake
from barlake.domain.ranges import DateRange
from barlake.providers.demo import generate

START, END = date(2020, 1, 1), date(2024, 12, 31)


def daily_lake(root: Path, symbols: int) -> Lake:
    """A lake of ``symbols`` symbols with the demo's daily bars from START to END, written
    straight through the store (``info.py`` builds the same lake)."""
    names = [f"C{i:04d}" for i in range(symbols)]
    lake = Lake.init(root, clock=lambda: datetime(2025, 1, 15, 22, tzinfo=UTC))
    lake.add_symbols(names)
    window = DateRange.inclusive(START, END)
    for i in range(0, len(names), 500):
        lake.store.write("1day", generate(names[i : i + 500], "1day", window))
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        built = time.perf_counter()
        lake = daily_lake(root, args.symbols)
        bars = lake.store.scan("1day").select("symbol").collect().height
        build_s = time.perf_counter() - built
        times, findings = [], 0
        for _ in range(args.runs + 1):
            started = time.perf_counter()
            result = lake.check(interval="1day", start=START, end=END)
            times.append(time.perf_counter() - started)
            findings = len(result.findings)
        cli = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "barlake",
                    "--lake",
                    str(root),
                    "--quiet",
                    "check",
                    "--start",
                    START.isoformat(),
                    "--end",
                    END.isoformat(),
                    "--json",
                ],
                stdout=subprocess.DEVNULL,
                check=False,
            )
            cli.append(time.perf_counter() - started)
    report = {
        "benchmark": "lake check, daily",
        "symbols": args.symbols,
        "bars": bars,
        "build_s": round(build_s, 2),
        "runs": args.runs,
        "check_s": round(statistics.median(times[1:]), 3),
        "check_s_min": round(min(times[1:]), 3),
        "check_s_max": round(max(times[1:]), 3),
        "cli_check_s": round(statistics.median(cli), 3),
        "findings": findings,
        "target_s": 5.0,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
