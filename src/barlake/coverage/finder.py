"""The gap finder: expected sessions, what the files and the ledger cover, and what is missing.

It reads the stored session days through a ``SessionStore`` (the Parquet store and its day
index) and the ledger through a ``LedgerReader`` (the catalog), and answers both ``gaps`` and
the coverage matrix through the one ledger rule (``coverage.ledger.cover``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.calendars.calendar import Calendar, Days
from barlake.clock import Clock
from barlake.coverage import gaps as gaps_
from barlake.coverage.ledger import Cover, cover
from barlake.coverage.matrix import Cells, states
from barlake.domain.intervals import Interval
from barlake.domain.ranges import ONE_DAY, DateRange

#: Above this many symbols the ledger is read whole rather than filtered by name.
_FILTER_LEDGER_UP_TO = 1000


class SessionStore(Protocol):
    """Which sessions have stored bars (``storage.store.Store``)."""

    def session_counts(
        self,
        interval: Interval,
        windows: pl.DataFrame,
        sessions: Sequence[date] | Days,
        day_shift: timedelta = ...,
    ) -> dict[str, int]: ...

    def days_by_symbol(
        self,
        interval: Interval,
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta = ...,
    ) -> dict[str, Days]: ...


class LedgerReader(Protocol):
    """The ledger's ranges (``catalog``)."""

    def ledger(
        self, interval: str, window: DateRange, names: Sequence[str] | None = None
    ) -> pl.DataFrame: ...


class Listing(Protocol):
    """A symbol as the finder needs it (``universe.members.Member``)."""

    @property
    def name(self) -> str: ...
    @property
    def calendar(self) -> Calendar: ...
    @property
    def listed_on(self) -> date | None: ...
    @property
    def delisted_on(self) -> date | None: ...


@dataclass(frozen=True)
class Expected:
    """One symbol's calendar and the part of its wanted range in which sessions are expected."""

    calendar: Calendar
    window: DateRange


class GapFinder:
    """Gaps and coverage of symbols, each within its own wanted range."""

    def __init__(self, store: SessionStore, ledger: LedgerReader, clock: Clock) -> None:
        self.store = store
        self.ledger = ledger
        self.clock = clock

    def expected(
        self, symbols: Iterable[Listing], windows: dict[str, DateRange]
    ) -> dict[str, Expected]:
        """Each symbol's expected window: inside its listing window, and no later than the
        last session that has opened."""
        out: dict[str, Expected] = {}
        now = self.clock()
        opened: dict[str, date | None] = {}
        for sym in symbols:
            window = windows.get(sym.name)
            if window is None:
                continue
            cal = sym.calendar
            if cal.name not in opened:
                opened[cal.name] = cal.opened_before(now)
            last = opened[cal.name]
            if last is None:
                continue
            if window.end > last + ONE_DAY:
                if window.start > last:
                    continue
                window = DateRange(window.start, last + ONE_DAY)
            w = (
                gaps_.listing_window(window, sym.listed_on, sym.delisted_on)
                if sym.listed_on or sym.delisted_on
                else window
            )
            if w:
                out[sym.name] = Expected(cal, w)
        return out

    def gaps(self, interval: Interval, expected: dict[str, Expected]) -> list[gaps_.Gap]:
        """The gaps at ``interval`` of each symbol's ``expected`` window."""
        out: list[gaps_.Gap] = []
        for cal, mine in _by_calendar(expected):
            out += self._gaps_on(cal, interval, mine)
        return sorted(out, key=lambda g: (g.symbol, g.interval, g.range))

    def covers(
        self, interval: Interval, span: DateRange, symbols: Sequence[str]
    ) -> dict[str, Cover]:
        """What the ledger covers of ``symbols`` over ``span``."""
        names = list(symbols) if len(symbols) < _FILTER_LEDGER_UP_TO else None
        return cover(self.ledger.ledger(interval, span, names), set(symbols))

    def _gaps_on(
        self, cal: Calendar, interval: Interval, windows: dict[str, DateRange]
    ) -> list[gaps_.Gap]:
        span = _span(windows.values())
        sessions = cal.sessions_in(span)
        frame = pl.DataFrame(
            {
                "symbol": list(windows),
                "start": [w.start for w in windows.values()],
                "end": [w.end for w in windows.values()],
            }
        )
        counts = self.store.session_counts(interval, frame, sessions, cal.day_shift)
        covers = self.covers(interval, span, list(windows))
        todo = [
            s
            for s, w in windows.items()
            if counts.get(s, 0) < cal.session_count(w) or (s in covers and covers[s].refetch)
        ]
        if not todo:
            return []
        stored = self.store.days_by_symbol(interval, todo, span, cal.day_shift)
        out: list[gaps_.Gap] = []
        for sym in todo:
            ledger = covers.get(sym) or Cover()
            whole = cal.sessions_in(windows[sym])
            if sym not in stored and not ledger.empty:
                # Nothing stored and nothing asked yet: the whole expected window is one gap.
                if len(whole):
                    first, last = _as_date(whole[0]), _as_date(whole[-1])
                    out.append(
                        gaps_.Gap(sym, interval, DateRange(first, last + ONE_DAY), len(whole))
                    )
                continue
            out += gaps_.find_gaps(
                sym, interval, whole, stored.get(sym, _NO_DAYS), ledger.empty, ledger.refetch
            )
        return out

    def coverage(
        self,
        interval: Interval,
        names: Sequence[str],
        expected: dict[str, Expected],
        span: DateRange,
    ) -> Cells:
        """The cells of the coverage matrix of ``names`` (rows) at ``interval``: every expected
        session's state, by the same rule as ``gaps``."""
        cells: dict[str, tuple[Days, npt.NDArray[np.int8]]] = {}
        columns = [_NO_DAYS]
        for cal, mine in _by_calendar(expected):
            here = _span(mine.values())
            columns.append(cal.sessions_in(DateRange(span.start, here.end)))
            stored = self.store.days_by_symbol(interval, list(mine), here, cal.day_shift)
            covers = self.covers(interval, here, list(mine))
            for sym, w in mine.items():
                days = cal.sessions_in(w)
                ledger = covers.get(sym) or Cover()
                found = states(days, stored.get(sym, _NO_DAYS), ledger.empty, ledger.refetch)
                cells[sym] = (days, found)
        sessions = np.unique(np.concatenate(columns))
        return Cells(interval, tuple(names), sessions, cells)


_NO_DAYS: Days = np.array([], dtype="datetime64[D]")


def _by_calendar(
    expected: dict[str, Expected],
) -> list[tuple[Calendar, dict[str, DateRange]]]:
    groups: dict[str, tuple[Calendar, dict[str, DateRange]]] = {}
    for sym, e in expected.items():
        groups.setdefault(e.calendar.name, (e.calendar, {}))[1][sym] = e.window
    return list(groups.values())


def span_of(windows: Iterable[DateRange]) -> DateRange:
    """The smallest range holding all ``windows`` (an empty range at the epoch when none)."""
    return _span(windows)


def _span(windows: Iterable[DateRange]) -> DateRange:
    ws = list(windows)
    if not ws:
        return DateRange(date(1970, 1, 1), date(1970, 1, 1))
    return DateRange(min(w.start for w in ws), max(w.end for w in ws))


def _as_date(value: Any) -> date:
    return date.fromisoformat(str(value))
