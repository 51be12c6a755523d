"""Coverage map drawing time: ``views.plot.coverage_png`` of synthetic coverage matrices.

    python benchmarks/pictures.py [--quick] [--runs 3] --json

Each case is a symbols x sessions matrix of stored cells in four layers with one hole in 2% of
the symbols, drawn at the default 1200 x 600 pixels; timed in-process, median of ``--runs``
after one warm-up. Prints one JSON object with, per case ("300x20", "3000x252", ...), the
seconds to draw, the PNG's bytes, the layout's mode and how many symbols with gaps got a row.
``--quick`` leaves out the largest case. Target: 3,000 symbols x 6 years under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import date
from typing import Any

import numpy as np

from barlake.calendars.calendar import get_calendar
from barlake.coverage.matrix import MISSING, STORED
from barlake.domain.ranges import DateRange
from barlake.views import plot
from barlake.views.coverage import Coverage, assemble

CASES = [(300, 20), (3000, 252), (3000, 1510), (10000, 2520)]


def matrix(symbols: int, sessions: int) -> Coverage:
    years = DateRange.inclusive(date(2010, 1, 4), date(2024, 12, 31))
    days = get_calendar("XNYS").sessions_in(years)[-sessions:]
    rng = np.random.default_rng(7)
    grid = np.full((symbols, len(days)), STORED, dtype=np.int8)
    holed = rng.choice(symbols, max(symbols // 50, 1), replace=False)
    grid[holed, rng.integers(0, len(days), len(holed))] = MISSING
    names = [f"X{i:05d}" for i in range(symbols)]
    rows = {s: (days, grid[i]) for i, s in enumerate(names)}
    groups = [f"layer {i * 4 // symbols}" for i in range(symbols)]
    return assemble("1day", names, days, rows, groups)


def measure(cov: Coverage, runs: int) -> dict[str, Any]:
    png = plot.coverage_png(cov)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        png = plot.coverage_png(cov)
        times.append(time.perf_counter() - start)
    plan = plot.layout(cov)
    return {
        "seconds": round(statistics.median(times), 4),
        "png_bytes": len(png),
        "mode": plan.mode,
        "sessions_per_column": plan.block,
        "with_gaps": plan.with_gaps,
        "rows_of_symbols_with_gaps": plan.shown_with_gaps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="leave out the largest case")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output)")
    args = parser.parse_args()
    cases = CASES[:-1] if args.quick else CASES
    out = {f"{n}x{m}": measure(matrix(n, m), args.runs) for n, m in cases}
    print(json.dumps({"runs": args.runs, "size": list(plot.DEFAULT_SIZE), **out}, indent=2))


if __name__ == "__main__":
    main()
