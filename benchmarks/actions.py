"""Adjusted reads: ``Lake.bars(adjust="total")`` against a raw read of the same bars.

    python benchmarks/actions.py [--quick] [--dir PATH] [--runs 5] --json

The lake is built once and cached under ``--dir`` (default: a folder in the system temp dir):
3,000 symbols x 10 years of daily XNYS bars, every symbol paying a quarterly cash dividend and
one in five splitting once (a 2:1, 3:1 or 4:1, or a 1:10 reverse split). ``--quick`` builds
300 x 2 years for CI.

The raw read and the adjusted read of the whole lake (``.collect()`` of each) are timed side by
side, alternating, median of ``--runs`` after one warm-up of each; the adjusted closes of a few
symbols are checked against factors computed here from the planted actions. Prints one JSON
object: {"raw_s", "total_s", "splits_s", "ratio_total", "ratio_splits", "bars", "actions", ...}.
Target: ``ratio_total`` (adjusted total / raw) at most 1.5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from gaps import CLOCK, LAST, bars, cached, clock, say

from barlake import Lake
from barlake.calendars.calendar import get_calendar
from barlake.domain.actions import COLUMNS
from barlake.domain.ranges import DateRange

SIZES = {"full": {"symbols": 3000, "years": 10}, "quick": {"symbols": 300, "years": 2}}
LAYOUT = 3  # bump when the synthetic lake or the catalog changes, to rebuild cached copies
TARGET = 1.5
CHECKED = 5  # symbols whose adjusted closes are checked by hand


def build(base: Path, size: str) -> dict[str, Any]:
    """The cached lake under ``base``, built when missing or stale; returns its description."""
    return cached(base, {"layout": LAYOUT, "size": size, **SIZES[size]}, lambda: make(base, size))


def make(base: Path, size: str) -> dict[str, Any]:
    rng = np.random.default_rng(20250115)
    n, years = SIZES[size]["symbols"], SIZES[size]["years"]
    lake = Lake.init(base / "lake", clock=clock)
    first = date(LAST.year - years + 1, 1, 1)
    sessions = get_calendar("XNYS").sessions_in(DateRange.inclusive(first, LAST))
    names = np.array([f"S{i:05d}" for i in range(n)])
    lake.catalog.upsert_symbols(pl.DataFrame({"symbol": names}))
    days = sessions.astype("datetime64[D]")
    years_of = days.astype("datetime64[Y]")
    for year in np.unique(years_of):
        cols = np.flatnonzero(years_of == year)
        ts = np.tile(days[cols], n)
        lake.store.write("1day", bars(np.repeat(names, len(cols)), ts, rng))
        say(f"  {year}: {len(ts):,} bars")
    rows: list[dict[str, Any]] = []
    quarters = days[np.searchsorted(days, np.arange(days[0], days[-1], 91))]
    for i, name in enumerate(names):
        for ex in quarters[1:]:
            rows.append(
                {"symbol": name, "type": "cash_dividend", "ex_date": ex.item(), "amount": 0.5}
            )
        if i % 5 == 0:
            ex = days[rng.integers(1, len(days))]
            ratio = [2.0, 3.0, 4.0, 0.1][i // 5 % 4]
            kind = "split" if ratio > 1 else "reverse_split"
            rows.append({"symbol": name, "type": kind, "ex_date": ex.item(), "ratio": ratio})
    table = pl.DataFrame(rows, infer_schema_length=None).with_columns(
        pl.col("ex_date").cast(pl.Date),
        source=pl.lit("bench"),
        currency=pl.lit("USD"),
        fetched_at=pl.lit(CLOCK),
    )
    table = table.select(
        [
            pl.col(c).cast(t) if c in table.columns else pl.lit(None, t).alias(c)
            for c, t in COLUMNS.items()
        ]
    )
    lake.catalog.record_actions(table)
    return {
        "symbols": n,
        "sessions": len(sessions),
        "bars": n * len(sessions),
        "actions": table.height,
    }


def timed(lake: Lake, how: str) -> tuple[float, pl.DataFrame]:
    started = time.perf_counter()
    frame = lake.bars(adjust=how).collect()  # type: ignore[arg-type]
    return time.perf_counter() - started, frame


def check(lake: Lake, adjusted: pl.DataFrame, raw: pl.DataFrame) -> int:
    """Compare a few symbols' adjusted closes with factors computed here; returns how many
    bars were checked (an AssertionError on any mismatch)."""
    checked = 0
    for sym in [f"S{i:05d}" for i in range(0, CHECKED * 5, 5)]:
        acts = lake.actions(sym)
        mine = raw.filter(pl.col("symbol") == sym)
        closes = dict(zip(mine["ts"].dt.date().to_list(), mine["close"].to_list(), strict=True))
        ordered = sorted(closes)
        got = adjusted.filter(pl.col("symbol") == sym)["close"].to_list()
        for k, (day, close) in enumerate(sorted(closes.items())):
            factor = 1.0
            for a in acts:
                if a["ex_date"] <= day:
                    continue
                if a["type"] == "cash_dividend":
                    prior = ordered[ordered.index(a["ex_date"]) - 1]
                    factor *= 1 - a["amount"] / closes[prior]
                else:
                    factor /= a["ratio"]
            assert abs(got[k] - close * factor) <= 1e-9 * abs(close * factor), (sym, day)
            checked += 1
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small lake, for CI.")
    parser.add_argument("--dir", type=Path, help="Where the cached lake lives.")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs of each read.")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    size = "quick" if args.quick else "full"
    base = args.dir or Path(tempfile.gettempdir()) / f"barlake-bench-actions-{size}"
    built = build(base, size)
    lake = Lake.open(base / "lake", clock=clock)
    times: dict[str, list[float]] = {"none": [], "splits": [], "total": []}
    frames: dict[str, pl.DataFrame] = {}
    for run in range(args.runs + 1):
        for how in times:
            seconds, frames[how] = timed(lake, how)
            if run:  # the first round warms caches up
                times[how].append(seconds)
    raw, total = frames["none"], frames["total"]
    assert total.height == raw.height and total["ts"].equals(raw["ts"])
    medians = {how: statistics.median(t) for how, t in times.items()}
    figures = {
        "raw_s": round(medians["none"], 4),
        "splits_s": round(medians["splits"], 4),
        "total_s": round(medians["total"], 4),
        "ratio_splits": round(medians["splits"] / medians["none"], 3),
        "ratio_total": round(medians["total"] / medians["none"], 3),
        "target_ratio_total": TARGET,
        "bars": raw.height,
        "symbols": built["symbols"],
        "actions": built["actions"],
        "bars_checked": check(lake, total, raw),
        "runs": args.runs,
        "size": size,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:20} {value}")


if __name__ == "__main__":
    main()
