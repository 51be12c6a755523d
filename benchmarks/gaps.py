"""Gap detection speed: ``Lake.gaps`` over a synthetic lake of daily and 1-minute XNYS bars.

    python benchmarks/gaps.py [--quick] [--dir PATH] [--runs 5] --json

The lakes are built once and cached under ``--dir`` (default: a folder in the system temp dir):
5,000 symbols x 10 years of daily bars (a few % with holes, some listed or delisted inside the
window) and 200 symbols x 60 sessions of 1-minute bars (a few whole sessions missing, some thin
sessions that are not gaps). ``--quick`` builds 500 x 2 years and 50 x 20 sessions for CI.

Each case is timed in-process, median of ``--runs`` after one warm-up, and its gaps are checked
against the holes that were planted. Prints one JSON object:
{"daily_whole_s", "daily_100_s", "intraday_whole_s", "intraday_100_s", "gaps_found", "runs", ...}.
Targets: whole-lake daily under 1 s, a 100-symbol window under 0.2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from barlake import Lake
from barlake.calendars.calendar import get_calendar
from barlake.coverage.gaps import Gap
from barlake.domain.ranges import DateRange, runs

CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)
LAST = date(2024, 12, 31)
SIZES = {
    "full": {"daily_symbols": 5000, "years": 10, "minute_symbols": 200, "minute_sessions": 60},
    "quick": {"daily_symbols": 500, "years": 2, "minute_symbols": 50, "minute_sessions": 20},
}
WINDOW_SYMBOLS = 100
LAYOUT = 1  # bump when the synthetic lake changes, to rebuild cached copies


def clock() -> datetime:
    return CLOCK


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bars(symbols: np.ndarray, ts: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    close = 100 + rng.standard_normal(len(ts)).cumsum() * 0.01
    return pl.DataFrame(
        {
            "symbol": symbols,
            "ts": ts.astype("datetime64[us]"),
            "open": close,
            "high": close + 0.05,
            "low": close - 0.05,
            "close": close,
            "volume": rng.integers(100, 10_000, len(ts)).astype(np.float64),
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC"))


def planted_gaps(present: np.ndarray, listed: np.ndarray, last: np.ndarray) -> int:
    """Runs of missing sessions inside each symbol's listing window (the expected answer)."""
    count = 0
    for i in np.flatnonzero(~present.all(axis=1)):
        inside = ~present[i, listed[i] : last[i] + 1]
        count += len(runs(inside))
    return count


def listing_plan(
    n: int, sessions: np.ndarray, rng: np.random.Generator, *, listed_share: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per symbol: index of the first and last session it trades, and a mask of bars present."""
    s = len(sessions)
    listed = np.zeros(n, dtype=np.int64)
    mid = rng.random(n) < listed_share
    listed[mid] = rng.integers(1, s, mid.sum())
    last = np.full(n, s - 1, dtype=np.int64)
    gone = rng.random(n) < listed_share / 5
    last[gone] = rng.integers(0, s - 1, gone.sum())
    last = np.maximum(last, listed)
    cols = np.arange(s)
    present = (cols >= listed[:, None]) & (cols <= last[:, None])
    return listed, last, present


def catalog_rows(names: np.ndarray, sessions: np.ndarray, listed, last, mid, gone) -> pl.DataFrame:
    days = sessions.astype("datetime64[D]")
    return pl.DataFrame(
        {
            "symbol": names,
            "listed_on": np.where(mid, days[listed], np.datetime64("NaT")),
            "delisted_on": np.where(gone, days[last], np.datetime64("NaT")),
        }
    ).with_columns(pl.col("listed_on", "delisted_on").cast(pl.Date))


def window_picks(n: int) -> np.ndarray:
    """The symbols of the window cases: spread evenly, so they share no file or row group."""
    return np.linspace(0, n - 1, min(WINDOW_SYMBOLS, n)).astype(np.int64)


def window_rows(
    present: np.ndarray, listed: np.ndarray, last: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pick = window_picks(n)
    return present[pick], listed[pick], last[pick]


def build_daily(root: Path, n: int, years: int, rng: np.random.Generator) -> dict[str, Any]:
    lake = Lake.init(root, clock=clock)
    first = date(LAST.year - years + 1, 1, 1)
    sessions = get_calendar("XNYS").sessions_in(DateRange.inclusive(first, LAST))
    names = np.array([f"S{i:05d}" for i in range(n)])
    listed, last, present = listing_plan(n, sessions, rng, listed_share=0.05)
    holey = rng.random(n) < 0.03
    for i in np.flatnonzero(holey):
        for _ in range(rng.integers(1, 4)):
            a = rng.integers(listed[i], last[i] + 1)
            present[i, a : a + rng.integers(1, 20)] = False
    mid = listed > 0
    gone = last < len(sessions) - 1
    lake.catalog.upsert_symbols(catalog_rows(names, sessions, listed, last, mid, gone))
    years_of = sessions.astype("datetime64[Y]")
    for year in np.unique(years_of):
        cols = np.flatnonzero(years_of == year)
        i, j = np.nonzero(present[:, cols])
        lake.store.write("1day", bars(names[i], sessions[cols][j], rng))
        say(f"  daily {year}: {len(i):,} bars")
    return {
        "first": first.isoformat(),
        "last": LAST.isoformat(),
        "symbols": n,
        "sessions": len(sessions),
        "bars": int(present.sum()),
        "planted": planted_gaps(present, listed, last),
        "window_planted": planted_gaps(*window_rows(present, listed, last, n)),
    }


def build_intraday(root: Path, n: int, count: int, rng: np.random.Generator) -> dict[str, Any]:
    lake = Lake.init(root, clock=clock)
    cal = get_calendar("XNYS")
    sessions = cal.sessions_in(DateRange.inclusive(date(LAST.year - 1, 1, 1), LAST))[-count:]
    i0 = int(np.searchsorted(cal.sessions, sessions[0]))
    opens, closes = cal.opens[i0 : i0 + count], cal.closes[i0 : i0 + count]
    minutes = (closes - opens) // 60_000_000
    session_of = np.repeat(np.arange(count), minutes)
    starts = (
        np.repeat(opens, minutes)
        + (np.arange(minutes.sum()) - np.repeat(np.cumsum(minutes) - minutes, minutes)) * 60_000_000
    )
    names = np.array([f"M{i:03d}" for i in range(n)])
    listed, last, present = listing_plan(n, sessions, rng, listed_share=0.02)
    for i in np.flatnonzero(rng.random(n) < 0.05):
        present[i, rng.integers(listed[i], last[i] + 1, rng.integers(1, 4))] = False
    mid = listed > 0
    gone = last < count - 1
    lake.catalog.upsert_symbols(catalog_rows(names, sessions, listed, last, mid, gone))
    for chunk in np.array_split(np.arange(n), max(1, n // 20)):
        keep = present[chunk][:, session_of]  # symbols x minutes
        keep &= rng.random(keep.shape) > 0.02  # illiquid minutes are not gaps
        i, j = np.nonzero(keep)
        frame = bars(names[chunk][i], starts[j].astype("datetime64[us]"), rng)
        lake.store.write("1min", frame)
    say(f"  intraday: {n} symbols x {count} sessions")
    return {
        "first": str(sessions[0]),
        "last": str(sessions[-1]),
        "symbols": n,
        "sessions": count,
        "planted": planted_gaps(present, listed, last),
        "window_planted": planted_gaps(*window_rows(present, listed, last, n)),
    }


def cached(
    base: Path, params: dict[str, Any], make: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """What ``make()`` built under ``base`` for ``params`` (its description, with ``params`` and
    ``build_s``): built once, and again only when ``params`` change, or the catalog schema or
    the layout of this barlake (a lake built by an older one would not open)."""
    from barlake.catalog.migrations import MIGRATIONS
    from barlake.domain.intervals import LAYOUT_VERSION

    params = {**params, "catalog_schema": len(MIGRATIONS), "layout_version": LAYOUT_VERSION}
    marker = base / "built.json"
    if marker.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        if built.get("params") == params:
            return built
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    say(f"building the {params['size']} benchmark lake(s) under {base} (once)")
    started = time.perf_counter()
    built = {"params": params, **make()}
    built["build_s"] = round(time.perf_counter() - started, 1)
    marker.write_text(json.dumps(built, indent=2))
    return built


def build(base: Path, size: str) -> dict[str, Any]:
    """The cached lakes under ``base``, built when missing or stale; returns their description."""
    sizes = SIZES[size]

    def make() -> dict[str, Any]:
        rng = np.random.default_rng(20250115)
        daily = build_daily(base / "daily", sizes["daily_symbols"], sizes["years"], rng)
        intraday = build_intraday(
            base / "intraday", sizes["minute_symbols"], sizes["minute_sessions"], rng
        )
        return {"daily": daily, "intraday": intraday}

    return cached(base, {"layout": LAYOUT, "size": size, **sizes}, make)


def median_time(call: Callable[[], list[Gap]], runs_: int) -> tuple[float, list[Gap]]:
    found = call()  # warm-up: calendars, imports, OS caches
    times = []
    for _ in range(runs_):
        started = time.perf_counter()
        found = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A small lake for CI smoke runs.")
    parser.add_argument("--dir", type=Path, help="Where to cache the synthetic lakes.")
    parser.add_argument("--runs", type=int, default=5, help="Timed runs per case (median).")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    size = "quick" if args.quick else "full"
    base = args.dir or Path(tempfile.gettempdir()) / f"barlake-bench-gaps-{size}"
    built = build(base, size)

    daily = Lake.open(base / "daily", clock=clock)
    intraday = Lake.open(base / "intraday", clock=clock)
    d_window = DateRange.inclusive(
        date.fromisoformat(built["daily"]["first"]), date.fromisoformat(built["daily"]["last"])
    )
    i_window = DateRange.inclusive(
        date.fromisoformat(built["intraday"]["first"]),
        date.fromisoformat(built["intraday"]["last"]),
    )
    d_names = [f"S{i:05d}" for i in window_picks(built["daily"]["symbols"])]
    i_names = [f"M{i:03d}" for i in window_picks(built["intraday"]["symbols"])]
    cases: dict[str, Callable[[], list[Gap]]] = {
        "daily_whole": lambda: daily.gaps(start=d_window.start, end=d_window.last),
        "daily_100": lambda: daily.gaps(d_names, start=d_window.start, end=d_window.last),
        "intraday_whole": lambda: intraday.gaps(
            interval="1min", start=i_window.start, end=i_window.last
        ),
        "intraday_100": lambda: intraday.gaps(
            i_names, interval="1min", start=i_window.start, end=i_window.last
        ),
    }
    planted = {
        "daily_whole": built["daily"]["planted"],
        "daily_100": built["daily"]["window_planted"],
        "intraday_whole": built["intraday"]["planted"],
        "intraday_100": built["intraday"]["window_planted"],
    }
    result: dict[str, Any] = {}
    found: dict[str, int] = {}
    for name, call in cases.items():
        seconds, gaps = median_time(call, args.runs)
        result[f"{name}_s"] = round(seconds, 4)
        found[name] = len(gaps)
    result["gaps_found"] = found
    result["gaps_planted"] = planted
    result["correct"] = found == planted
    result["runs"] = args.runs
    result["lake"] = {
        "daily": f"{built['daily']['symbols']} symbols x {built['daily']['sessions']} sessions",
        "intraday": f"{built['intraday']['symbols']} symbols x "
        f"{built['intraday']['sessions']} sessions of 1-minute bars",
        "build_s": built["build_s"],
        "dir": str(base),
    }
    # Other processes on the machine inflate wall times; say how busy it was.
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    result["targets_met"] = result["daily_whole_s"] < 1.0 and result["daily_100_s"] < 0.2
    print(json.dumps(result))


if __name__ == "__main__":
    main()
