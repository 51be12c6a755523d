"""Repair jobs (``lake fill --repair``): a fill that also fetches again the sessions whose
stored bars a check flags, and replaces those sessions' stored bars with what comes back.

A flagged session's stored bars go only when the fetch brings bars of that session, in the
same atomic file replacement: a fetch that fails or comes back empty never loses what was
stored. Rows without a symbol or ts (no bar of any session) are dropped first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain.datasets import bar_intervals
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.fetch.job import JobResult
from barlake.jobs.backfill import Backfill, RunOptions
from barlake.retention.selection import Selection
from barlake.retention.targets import Target
from barlake.universe.members import Member

#: Per (symbol, interval), the sessions to fetch again.
Sessions = Mapping[tuple[str, Interval], Collection[date]]


class Flagged(Protocol):
    """The sessions a check flags (``quality.check.Checker``)."""

    def bad_sessions(
        self, targets: list[Target], found: Sequence[Member]
    ) -> dict[tuple[str, Interval], list[date]]: ...


class Replacing(Protocol):
    """A bar store that can replace stored bars (``storage.store.Store``)."""

    def write(
        self, interval: Interval, frame: pl.DataFrame, *, replace: pl.DataFrame | None = None
    ) -> int: ...

    def drop_keyless(
        self, interval: Interval, symbols_: list[str] | None, window: DateRange | None = None
    ) -> int: ...


class RepairSink:
    """Writes a repair's bars: each flagged session they bring replaces its stored bars, once
    (bars of the session written later by the same job are merged, not replacing these)."""

    def __init__(self, store: Replacing, sessions: Sessions, calendars: dict[str, Calendar]):
        self.store, self.calendars = store, calendars
        self.sessions = {key: set(days) for key, days in sessions.items()}

    def write(self, interval: Interval, frame: pl.DataFrame) -> int:
        ranges = replaced(frame, interval, self.sessions, self.calendars)
        written = self.store.write(interval, frame, replace=ranges)
        for sym, day in ranges.select("symbol", "day").iter_rows():
            self.sessions[(sym, interval)].discard(day)
        return written


def replaced(
    frame: pl.DataFrame, interval: Interval, sessions: Sessions, calendars: dict[str, Calendar]
) -> pl.DataFrame:
    """The stored bars that ``frame`` replaces: per symbol, each flagged session it has bars
    of and that session's UTC bar starts as a range (symbol, day, lo, hi)."""
    rows: list[tuple[str, date, datetime, datetime]] = []
    intraday = spec(interval).intraday
    for sym in frame.get_column("symbol").unique().sort().to_list():
        flagged = set(sessions.get((sym, interval), ()))
        if not flagged:
            continue
        cal = calendars.get(sym)
        shift = cal.day_shift if cal is not None and intraday else timedelta(0)
        days = frame.filter(pl.col("symbol") == sym).select((pl.col("ts") + shift).dt.date())
        for day in sorted(flagged.intersection(days.to_series().to_list())):
            lo = datetime.combine(day, time(), UTC) - shift
            rows.append((sym, day, lo, lo + ONE_DAY))
    stamp = pl.Datetime("us", "UTC")
    schema: dict[str, pl.DataType] = {
        "symbol": pl.String(),
        "day": pl.Date(),
        "lo": stamp,
        "hi": stamp,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def repair(
    backfill: Backfill,
    selection: Selection,
    options: RunOptions,
    *,
    flagged: Flagged,
    store: Replacing,
) -> JobResult:
    """Fill ``selection``'s gaps and fetch again the sessions a check flags, in one job."""
    with backfill.fill_lock():
        backfill.catalog.interrupt_stale()
        wanted = backfill.resolve(selection, track=options.track)
        names = sorted({t.symbol for t in wanted.targets})
        for interval in sorted(set(bar_intervals(t.interval for t in wanted.targets))):
            store.drop_keyless(interval, names)
        bad = flagged.bad_sessions(wanted.targets, wanted.members)
        plan = backfill.plan_targets(
            wanted.members,
            wanted.targets,
            provider=selection.provider,
            skipped=wanted.skipped,
            priority=wanted.priority,
            parameters={
                **selection.parameters(wanted.policy.name if wanted.policy else None),
                "repair": True,
            },
            repair=bad,
        )
        backfill.track_new(wanted, options)
        calendars = {m.name: m.calendar for m in wanted.members}
        sink = RepairSink(store, bad, calendars)
        return backfill.execute(backfill.start(plan, options, sink=sink))
