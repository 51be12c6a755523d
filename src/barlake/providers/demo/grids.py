"""The demo's bars on the clock grid, as Alpaca and Polygon stamp them.

The generator's intraday bars start at each session's open: a 09:30 open has hours at 09:30,
10:30, ... Alpaca and Polygon start hourly bars at the top of the clock hour, so that open's
first hour is stamped 09:00 and holds only 09:30-10:00, and its last is 15:00. ``clock_bars``
makes them as a vendor does, from the finest generated bars that lie on both grids (half hours
for a 09:30 open); an interval whose grid the opens already lie on is generated as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar, bar_start
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.domain.ranges import DateRange
from barlake.domain.resample import aggregate
from barlake.providers.demo.series import generate, profile_of

_US = 1_000_000


def clock_bars(
    symbols: Iterable[str], interval: Interval, window: DateRange, *, now: datetime | None = None
) -> pl.DataFrame:
    """The demo bars of ``symbols`` in ``window`` on ``interval``'s clock grid, sorted by
    (symbol, ts): ``generate``'s values, aggregated where its grid is not the clock's."""
    names = sorted(set(symbols))
    if not spec(interval).intraday:
        return generate(names, interval, window, now=now)
    groups: dict[str, tuple[Calendar, list[str]]] = {}
    for name in names:
        cal = profile_of(name).calendar
        groups.setdefault(cal.name, (cal, []))[1].append(name)
    frames = [_on_clock(cal, group, interval, window, now) for cal, group in groups.values()]
    if not frames:
        return generate([], interval, window, now=now)
    return pl.concat(frames).sort("symbol", "ts")


def _on_clock(
    cal: Calendar, symbols: list[str], interval: Interval, window: DateRange, now: datetime | None
) -> pl.DataFrame:
    base = _base(cal, interval, window)
    frame = generate(symbols, base, window, now=now)
    if base == interval:
        return frame
    step = spec(interval).seconds * _US
    shift = cal.day_shift // timedelta(microseconds=1)
    return aggregate(frame.lazy(), bar_start(pl.col("ts"), step, shift), None).collect()


def _base(cal: Calendar, interval: Interval, window: DateRange) -> Interval:
    """The longest interval dividing ``interval`` whose clock grid holds every open of
    ``window``'s sessions (``interval`` itself when it does)."""
    step = spec(interval).seconds * _US
    shift = cal.day_shift // timedelta(microseconds=1)
    bounds = [np.datetime64(day, "D") for day in (window.start, window.end)]
    lo, hi = np.searchsorted(cal.sessions, bounds)
    opens = cal.opens[lo:hi] + shift
    finer = [i for i in INTERVALS if spec(i).intraday and step % (spec(i).seconds * _US) == 0]
    for candidate in sorted(finer, key=lambda i: spec(i).seconds, reverse=True):
        if not (opens % (spec(candidate).seconds * _US)).any():
            return candidate
    return finer[0]
