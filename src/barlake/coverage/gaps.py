"""Gaps: the sessions a symbol should have at an interval that the lake does not cover.

expected = calendar sessions inside the requested range and the symbol's listing window;
covered = sessions with stored bars, less those a provisional ledger range marks for re-fetching,
plus sessions inside final ledger ranges (asked for already, e.g. halted days that came back empty);
gaps = expected - covered, as runs of consecutive sessions. Pure functions only: the lake reads
the inputs and calls these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from barlake.calendars.calendar import Days
from barlake.domain.datasets import Dataset
from barlake.domain.intervals import Interval
from barlake.domain.ranges import ONE_DAY, DateRange, runs


@dataclass(frozen=True)
class Gap:
    """Consecutive missing sessions of one symbol at one interval."""

    symbol: str
    interval: Dataset
    range: DateRange
    sessions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "first": self.range.start.isoformat(),
            "last": self.range.last.isoformat(),
            "sessions": self.sessions,
        }


def listing_window(
    window: DateRange, listed_on: date | None, delisted_on: date | None
) -> DateRange | None:
    """The part of ``window`` in which a symbol listed on ``listed_on`` traded, if any.

    ``delisted_on`` is the last session the symbol traded.
    """
    # Clamp before building a range: a listing after the window (or a delisting before it)
    # would otherwise make a range that ends before it starts.
    start = max(window.start, listed_on) if listed_on else window.start
    end = min(window.end, delisted_on + ONE_DAY) if delisted_on else window.end
    return DateRange(start, end) if start < end else None


def in_ranges(days: Days, ranges: Sequence[DateRange]) -> npt.NDArray[np.bool_]:
    """For each of ``days``, whether it falls in one of ``ranges``."""
    mask = np.zeros(days.shape, dtype=bool)
    for r in ranges:
        lo, hi = np.searchsorted(days, [np.datetime64(r.start, "D"), np.datetime64(r.end, "D")])
        mask[lo:hi] = True
    return mask


def missing(
    expected: Days,
    stored: Days,
    final: Sequence[DateRange] = (),
    provisional: Sequence[DateRange] = (),
) -> npt.NDArray[np.bool_]:
    """Which ``expected`` sessions are not covered."""
    have = _isin(expected, stored)
    fetched = in_ranges(expected, final)
    refetch = in_ranges(expected, provisional) & ~fetched
    return ~((have & ~refetch) | fetched)


def _isin(values: Days, pool: Days) -> npt.NDArray[np.bool_]:
    """``np.isin`` by binary search: several times faster on dates, which this is called on
    once per symbol with gaps."""
    if pool.size == 0 or values.dtype != pool.dtype:
        return np.isin(values, pool)
    pool = np.sort(pool)
    at = np.minimum(np.searchsorted(pool, values), pool.size - 1)
    found: npt.NDArray[np.bool_] = pool[at] == values
    return found


def find_gaps(
    symbol: str,
    interval: Interval,
    expected: Days,
    stored: Days,
    final: Sequence[DateRange] = (),
    provisional: Sequence[DateRange] = (),
) -> list[Gap]:
    """The gaps of one symbol at one interval, in session order."""
    return _runs_of(symbol, interval, expected, missing(expected, stored, final, provisional))


def _runs_of(
    symbol: str, interval: Interval, sessions: Days, mask: npt.NDArray[np.bool_]
) -> list[Gap]:
    """The runs of ``sessions`` where ``mask`` is true, as gaps."""
    return [
        Gap(symbol, interval, DateRange(_day(sessions[a]), _day(sessions[b - 1]) + ONE_DAY), b - a)
        for a, b in runs(mask)
    ]


def _day(value: np.datetime64) -> date:
    return date.fromisoformat(str(value))


def with_sessions(
    gaps: Sequence[Gap], symbol: str, interval: Interval, sessions: Days, more: Sequence[date]
) -> list[Gap]:
    """The gaps of ``symbol`` at ``interval`` among ``gaps``, with the sessions ``more`` (a
    repair's, say) added: runs of consecutive sessions of ``sessions`` (its calendar's)."""
    mine = [g.range for g in gaps if (g.symbol, g.interval) == (symbol, interval)]
    wanted = np.isin(sessions, np.asarray(more, dtype="datetime64[D]"))
    return _runs_of(symbol, interval, sessions, wanted | in_ranges(sessions, mine))
