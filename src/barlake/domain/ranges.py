"""Half-open date ranges ``[start, end)`` and the algebra gaps and plans are made of.

People see inclusive ``first``/``last`` session dates; code only ever sees half-open ranges, so
lengths add up and adjacent ranges touch without +1/-1 corrections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from barlake.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, order=True)
class DateRange:
    """Calendar dates ``start <= d < end``."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            msg = f"range ends ({self.end}) before it starts ({self.start})"
            raise UsageError(msg)

    @classmethod
    def inclusive(cls, first: date, last: date) -> DateRange:
        """The range of the dates ``first`` to ``last``, both included."""
        if last < first:
            msg = f"end date {last} is before start date {first}; swap them"
            raise UsageError(msg)
        return cls(first, last + ONE_DAY)

    @property
    def last(self) -> date:
        """The last date inside the range."""
        return self.end - ONE_DAY

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def __bool__(self) -> bool:
        return self.end > self.start

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    def intersect(self, other: DateRange) -> DateRange | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return DateRange(start, end) if start < end else None

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.last.isoformat()}"


def merge(ranges: Iterable[DateRange]) -> list[DateRange]:
    """Sorted, non-overlapping ranges covering the same dates; touching ranges join."""
    out: list[DateRange] = []
    for r in sorted(r for r in ranges if r):
        if out and r.start <= out[-1].end:
            if r.end > out[-1].end:
                out[-1] = DateRange(out[-1].start, r.end)
        else:
            out.append(r)
    return out


def subtract(ranges: Iterable[DateRange], holes: Iterable[DateRange]) -> list[DateRange]:
    """The dates of ``ranges`` that are in none of ``holes``, merged."""
    out: list[DateRange] = []
    cut = merge(holes)
    for r in merge(ranges):
        start = r.start
        for h in cut:
            if h.end <= start or h.start >= r.end:
                continue
            if h.start > start:
                out.append(DateRange(start, h.start))
            start = max(start, h.end)
        if start < r.end:
            out.append(DateRange(start, r.end))
    return out


def runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Half-open index ranges ``[i, j)`` where ``mask`` is true, in order."""
    import numpy as np  # loaded on first use: the range algebra needs none, quick commands neither

    if mask.size == 0:
        return []
    padded = np.concatenate(([False], mask, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def session_runs(
    sessions: Sequence[date] | npt.NDArray[np.datetime64], mask: npt.NDArray[np.bool_]
) -> list[DateRange]:
    """Ranges from the first to the last session of each run of ``mask`` (``sessions`` as
    dates, or a calendar's ``datetime64[D]`` array).

    Consecutive sessions form one range even across weekends and holidays, because the
    calendar, not the date, decides what is consecutive.
    """
    return [DateRange(_date(sessions[a]), _date(sessions[b - 1]) + ONE_DAY) for a, b in runs(mask)]


def _date(value: date | np.datetime64) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
