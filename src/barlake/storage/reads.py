"""Reading bars as ``Lake.bars`` gives them: one lazy frame, sorted by (symbol, ts)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

import polars as pl

from barlake.domain.bars import KEY
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.storage.store import Store


def bars(
    store: Store,
    interval: Interval,
    names: list[str] | None,
    window: DateRange | None,
    shifts: Mapping[str, timedelta],
    default: timedelta,
) -> pl.LazyFrame:
    """The stored bars of ``names`` (all when None) whose session date is in ``window``.

    Intraday bars belong to the session date of their exchange: ``shifts`` gives each known
    symbol's day shift (``default`` for the others), and each shift is one scan.
    """
    if window is None or not spec(interval).intraday:
        return store.scan(interval, names, window).sort(KEY)
    groups: dict[timedelta, list[str]] = {}
    for sym in names if names is not None else list(shifts):
        groups.setdefault(shifts.get(sym, default), []).append(sym)
    if names is None and set(groups) <= {default}:
        return store.scan(interval, None, window, default).sort(KEY)
    if names is not None and len(groups) == 1:
        return store.scan(interval, names, window, next(iter(groups))).sort(KEY)
    parts = [store.scan(interval, syms, window, shift) for shift, syms in groups.items()]
    if names is None:  # stored symbols the catalog does not know: the default calendar
        parts.append(
            store.scan(interval, None, window, default).filter(
                ~pl.col("symbol").is_in(list(shifts))
            )
        )
    return pl.concat(parts).sort(KEY)
