"""The daily update's cost in the bar files: one new session of daily bars for every symbol,
appended to a lake that stores 1 or 10 years of them, for 1,000 and 10,000 symbols.

    python benchmarks/updates.py [--quick] [--runs 3] --json

Each case builds a lake in a temporary folder (XNYS sessions, every symbol trading every
session, stored through 2024-11-29; year by year through the store, as fills would leave it),
then appends the sessions from 2024-12-02 on, one per run, each in one ``Store.write`` of
``symbols`` rows (what the daily update's fill hands the store once its pages are in). It
reports per case the median append time over ``--runs``, and ``rewritten_rows``: the rows of the
files the append replaced (today the whole year file of the session's year).

``years_ratio`` is the 10-year append time over the 1-year one at the same symbols: the cost is
flat in the years stored when it is about 1. The issue's target is at most 0.25 s for 10,000
symbols with 10 years stored, with a cost that grows neither with the years stored nor with the
days already in the session's year; ``rewritten_rows`` shows the second (it is every row of the
year so far). ``--quick``: 100 and 1,000 symbols, 1 and 3 years.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from gaps import bars as synthetic

from barlake import Lake
from barlake.calendars.calendar import get_calendar
from barlake.domain.ranges import DateRange

LAST_STORED = date(2024, 11, 29)
SIZES = {
    "full": {"symbols": (1_000, 10_000), "years": (1, 10)},
    "quick": {"symbols": (100, 1_000), "years": (1, 3)},
}


def say(message: str) -> None:
    print(message, flush=True, file=sys.stderr)


def sessions(start: date, end: date) -> list[date]:
    days = get_calendar("XNYS").sessions_in(DateRange.inclusive(start, end))
    return [d.astype(date) for d in days]


def frame(names: np.ndarray, days: list[date], rng: np.random.Generator) -> pl.DataFrame:
    ts = np.tile(np.array(days, dtype="datetime64[us]"), len(names))
    return synthetic(np.repeat(names, len(days)), ts, rng)


def one_case(symbols: int, years: int, runs: int) -> dict[str, Any]:
    rng = np.random.default_rng(symbols * 100 + years)
    names = np.array([f"U{i:05d}" for i in range(symbols)])
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake.init(Path(tmp) / "lake")
        started = time.perf_counter()
        first = LAST_STORED.year - years + 1
        stored = 0
        for year in range(first, LAST_STORED.year + 1):
            end = min(date(year, 12, 31), LAST_STORED)
            bars = frame(names, sessions(date(year, 1, 1), end), rng)
            lake.store.write("1day", bars)
            stored += bars.height
        built_s = time.perf_counter() - started
        appended = sessions(date(2024, 12, 2), date(2024, 12, 31))[:runs]
        times = []
        for day in appended:
            new = frame(names, [day], rng)
            t0 = time.perf_counter()
            lake.store.write("1day", new)
            times.append(time.perf_counter() - t0)
        year_file = lake.root / "bars" / "interval=1day" / "year=2024" / "data.parquet"
        rewritten = pl.scan_parquet(year_file).select(pl.len()).collect().item()
        check = lake.store.scan("1day", None).select(pl.len()).collect().item()
    assert check == stored + symbols * len(appended), (check, stored)
    return {
        "symbols": symbols,
        "years": years,
        "stored_rows": stored,
        "build_s": round(built_s, 1),
        "append_s": round(statistics.median(times), 4),
        "append_runs_s": [round(t, 4) for t in times],
        "rewritten_rows": int(rewritten),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smaller lakes, for checks.")
    parser.add_argument("--runs", type=int, default=3, help="Sessions appended per case.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    cases = []
    for symbols in size["symbols"]:
        for years in size["years"]:
            say(f"{symbols:,} symbols x {years} year(s): building, then {args.runs} appends")
            cases.append(one_case(symbols, years, args.runs))
            say(json.dumps(cases[-1]))
    few, many = size["years"]
    ratios = {}
    for symbols in size["symbols"]:
        by = {c["years"]: c["append_s"] for c in cases if c["symbols"] == symbols}
        ratios[str(symbols)] = round(by[many] / by[few], 2) if by[few] else None
    largest = max(size["symbols"])
    worst = next(c for c in cases if c["symbols"] == largest and c["years"] == many)
    report = {
        "benchmark": "daily update: one session appended to a lake of daily bars",
        "last_stored": LAST_STORED.isoformat(),
        "runs": args.runs,
        "cases": cases,
        "years_ratio": ratios,
        "targets": {
            "flat_in_years": all(r is not None and r <= 1.25 for r in ratios.values()),
            f"at_most_0.25_s_at_{largest}_symbols_{many}_years": worst["append_s"] <= 0.25,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
