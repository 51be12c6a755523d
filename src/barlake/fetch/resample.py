"""Filling an interval from the lake's own finer bars (lake.yaml ``backfill.resample``).

A session whose finer bars are settled (stored and final, or confirmed empty) needs no request
at the coarser interval: its bars are built from the stored ones (``storage.reads.resampled``,
the same rows ``Lake.bars(..., resample_from=...)`` reads) and written, and its ledger range
recorded, as a fetched session's are. The plan decides which sessions go this way
(``planning.resample.split``); the scheduler builds them after the job's requests
(``Resampler.bars``), so that sessions the same job fetches at the finer interval are
resampled once they are stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar, Days, calendar_for
from barlake.clock import Clock
from barlake.coverage.finder import Expected
from barlake.coverage.gaps import Gap, in_ranges
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange
from barlake.storage import reads
from barlake.storage.store import Store


class Finder(Protocol):
    """The gaps of an interval (``coverage.finder.GapFinder``)."""

    def gaps(self, interval: Interval, expected: dict[str, Expected]) -> list[Gap]: ...


class Resampler:
    """Which sessions stored bars settle, and the coarser bars built from them."""

    def __init__(self, finder: Finder, store: Store, clock: Clock, grace: timedelta) -> None:
        self.finder, self.store, self.clock, self.grace = finder, store, clock, grace

    def settled(self, interval: Interval, expected: Mapping[str, Expected]) -> dict[str, Days]:
        """Per symbol, the sessions of its expected window that its ``interval`` bars settle:
        those that are no gap (stored, or confirmed empty), and those not closed yet (plus
        the grace) that have stored bars, which resample into provisional bars as they would
        be fetched."""
        wanted = {s: e for s, e in expected.items() if e.window}
        gaps = self.finder.gaps(interval, dict(wanted))
        missing: dict[str, list[DateRange]] = {}
        for g in gaps:
            missing.setdefault(g.symbol, []).append(g.range)
        now, out = self.clock(), {}
        for sym, e in wanted.items():
            sessions = e.calendar.sessions_in(e.window)
            gap = in_ranges(sessions, missing.get(sym, []))
            closed = e.calendar.closed_before(now, self.grace)
            late = sessions > np.datetime64(closed, "D") if closed else np.ones_like(gap)
            if (gap & late).any():
                stored = self.store.days_by_symbol(interval, [sym], e.window, e.calendar.day_shift)
                gap &= ~(late & np.isin(sessions, stored.get(sym, sessions[:0])))
            out[sym] = sessions[~gap]
        return out

    def bars(
        self,
        interval: Interval,
        source: Interval,
        calendars: Mapping[str, Calendar],
        window: DateRange,
    ) -> pl.DataFrame:
        """The ``interval`` bars of the symbols of ``calendars`` (each on its own calendar) in
        the sessions of ``window``, built from their stored ``source`` bars."""
        names = sorted(calendars)
        default = next(iter(calendars.values())) if calendars else calendar_for(None)
        found = reads.resampled(self.store, interval, source, names, window, calendars, default)
        return found.collect()
