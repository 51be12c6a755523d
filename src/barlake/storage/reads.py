"""Reading bars as ``Lake.bars`` gives them: one lazy frame, sorted by (symbol, ts); stored,
or resampled from finer stored bars (``barlake.domain.resample``)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import polars as pl

from barlake.calendars.calendar import Calendar, bar_start, period_key
from barlake.domain import resample
from barlake.domain.bars import KEY
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.domain.resample import PERIODS, Period
from barlake.storage.store import Store

#: Symbols up to which ``bars`` reads row groups directly, one file after another in the
#: calling thread; more go to the query engine's scan, which reads files in parallel.
FEW = 8


def bars(
    store: Store,
    interval: Interval,
    names: list[str] | None,
    window: DateRange | None,
    shifts: Mapping[str, timedelta],
    default: timedelta,
    *,
    file_column: str | None = None,
    direct: bool = True,
) -> pl.LazyFrame:
    """The stored bars of ``names`` (all when None) whose session date is in ``window``
    (with ``file_column``: and the file each comes from, see ``Store.scan``).

    Intraday bars belong to the session date of their exchange: ``shifts`` gives each known
    symbol's day shift (``default`` for the others), and each shift is one scan. A few
    symbols of one shift, and every symbol's daily bars, are read ``direct``-ly from their row
    groups (``Store.read_symbols``: the same rows, without a query engine's set-up), unless
    ``direct`` is False.
    """
    if direct and file_column is None and names is not None and 0 < len(names) <= FEW:
        found = {shifts.get(sym, default) for sym in names}
        if len(found) == 1:
            frame = store.read_symbols(interval, names, window, found.pop())
            if frame is not None:
                return frame.lazy()
    if direct and file_column is None and names is None and not spec(interval).intraday:
        # Every symbol's daily bars: a year file or a few, whose groups pyarrow decodes
        # faster than a scan that sets up a task per group.
        frame = store.read_symbols(interval, None, window)
        if frame is not None:
            return frame.lazy()
    scan = functools.partial(store.scan, interval, file_column=file_column)
    if window is None or not spec(interval).intraday:
        return scan(names, window).sort(KEY)
    groups: dict[timedelta, list[str]] = {}
    for sym in names if names is not None else list(shifts):
        groups.setdefault(shifts.get(sym, default), []).append(sym)
    if names is None and set(groups) <= {default}:
        return scan(None, window, default).sort(KEY)
    if names is not None and len(groups) == 1:
        return scan(names, window, next(iter(groups))).sort(KEY)
    parts = [scan(syms, window, shift) for shift, syms in groups.items()]
    if names is None:  # stored symbols the catalog does not know: the default calendar
        parts.append(scan(None, window, default).filter(~pl.col("symbol").is_in(list(shifts))))
    return pl.concat(parts).sort(KEY)


def resampled(
    store: Store,
    interval: Interval | Period,
    source: Interval,
    names: list[str] | None,
    window: DateRange | None,
    calendars: Mapping[str, Calendar],
    default: Calendar,
) -> pl.LazyFrame:
    """``interval`` bars of ``names`` (all stored when None) built from the stored ``source``
    bars of the sessions in ``window`` (``resample.check`` has allowed the pair): intraday
    bars on each symbol's exchange clock grid, as fetched ones are stamped; weeks and months
    whole (every one ``window`` touches), stamped by their first session. ``calendars`` gives
    each known symbol's calendar, ``default`` the others'."""
    shifts = {s: c.day_shift for s, c in calendars.items()}
    if interval not in PERIODS:
        fine = bars(store, source, names, window, shifts, default.day_shift)
        step = spec(interval).seconds * 1_000_000
        shift = _per_symbol(calendars, default, lambda c: c.day_shift // timedelta(microseconds=1))
        return resample.aggregate(fine, bar_start(pl.col("ts"), step, shift), source)
    period: Period = interval
    week_start = _per_symbol(calendars, default, lambda c: c.week_start)
    wide = window and DateRange(window.start - _MONTH, window.end + _MONTH)
    daily = bars(store, "1day", names, wide, shifts, default.day_shift)
    key = period_key(pl.col("ts").dt.date(), period, week_start)
    grouped = resample.aggregate(daily, key, source).with_columns(key=pl.col("ts").dt.date())
    if window is not None:  # every period the window touches, whole
        lo, hi = (period_key(pl.lit(d), period, week_start) for d in (window.start, window.last))
        grouped = grouped.filter(pl.col("key").is_between(lo, hi))
    used = {c.name: c for c in [default, *calendars.values()]}
    firsts = pl.concat(
        [c.period_firsts(period).with_columns(_cal=pl.lit(name)) for name, c in used.items()]
    ).lazy()
    stamp = pl.coalesce(pl.col("first"), pl.col("key")).cast(pl.Datetime("us", "UTC"))
    out = (
        grouped.with_columns(_cal=_per_symbol(calendars, default, lambda c: c.name))
        .join(firsts, on=["_cal", "key"], how="left")
        .with_columns(stamp.alias("ts"))
        .drop("_cal", "key", "first")
    )
    return out.sort(KEY)


#: More than any week or month: a period the window touches lies inside it widened by this.
_MONTH = 32 * ONE_DAY


def _per_symbol(
    calendars: Mapping[str, Calendar], default: Calendar, value: Callable[[Calendar], Any]
) -> pl.Expr:
    """An expression of each row's ``value`` of its symbol's calendar."""
    mapping = {s: value(c) for s, c in calendars.items()}
    return pl.col("symbol").replace_strict(mapping, default=value(default))
