"""Pricing: the values the planner works on. ``Axis`` numbers the sessions of a gap set,
``Shape`` is one request over them, ``Pricing`` says what a request of some symbols over some
sessions returns and costs at one provider (bars, pages, calls, the URL it needs), and ``Pack``
is a request being filled."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from barlake.calendars.calendar import Calendar
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.providers.base import Capabilities
from barlake.providers.urls import fits, joined_chars

_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class Shape:
    """One request in session-index space: ``symbols`` over sessions ``first..last``."""

    symbols: tuple[str, ...]
    first: int
    last: int
    grouped: bool = False
    #: Bars the request is expected to return (filled in by ``plan_shapes``).
    bars: int = 0


@dataclass(frozen=True, eq=False)
class Axis:
    """The sessions of one calendar over a span, with each session's bars per symbol."""

    days: npt.NDArray[np.datetime64]
    bars: npt.NDArray[np.int64]

    @classmethod
    def of(cls, calendar: Calendar | None, interval: Interval, span: DateRange) -> Axis:
        if calendar is None:  # weekdays stand for sessions
            every = np.arange(
                np.datetime64(span.start, "D"), np.datetime64(span.end, "D"), dtype="datetime64[D]"
            )
            days = every[((every - _EPOCH).astype(np.int64) + 3) % 7 < 5]
            minutes = np.full(len(days), 390, dtype=np.int64)
            s = spec(interval)
            bars = -(-minutes * 60 // s.seconds) if s.intraday else np.ones(len(days), np.int64)
        else:
            days = calendar.sessions_in(span)
            i = int(np.searchsorted(calendar.sessions, days[0])) if len(days) else 0
            bars = calendar.bar_counts(i, i + len(days), interval)
        return cls(days.astype("datetime64[D]"), bars.astype(np.int64))

    @property
    def prefix(self) -> npt.NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.bars)]).astype(np.int64)

    def index(self, window: DateRange) -> npt.NDArray[np.int64]:
        """Indices of the sessions inside ``window``."""
        lo, hi = np.searchsorted(
            self.days, [np.datetime64(window.start, "D"), np.datetime64(window.end, "D")]
        )
        return np.arange(lo, hi, dtype=np.int64)

    def date(self, i: int) -> date:
        return self.days[i].astype(date)  # type: ignore[no-any-return]

    def range(self, first: int, last: int) -> DateRange:
        return DateRange(self.date(first), self.date(last) + timedelta(days=1))


class Pricing:
    """The cost of request shapes for one provider, interval and axis.

    ``active`` gives, for symbols that do not trade over the whole axis, the sessions
    ``lo..hi-1`` in which they do (listing to delisting): a request returns a symbol's bars only
    there, so a symbol listed mid-window is cheap to carry over the window's first half.
    """

    def __init__(
        self,
        caps: Capabilities,
        interval: Interval,
        axis: Axis,
        reread_weight: float,
        active: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self.caps, self.axis, self.weight = caps, axis, max(0.0, reread_weight)
        self.interval = interval
        self.per_page = max(1, caps.bars_per_page)
        self.per_request = max(1, caps.symbols_per_request)
        self.chars = caps.symbols_chars
        self.max_days = caps.max_days.get(interval)
        self.active = dict(active or {})
        self._prefix: list[int] = axis.prefix.tolist()
        self._day: list[int] = axis.days.astype(np.int64).tolist()  # days since 1970

    def bars(self, first: int, last: int) -> int:
        """Bars of one symbol trading throughout ``first..last``."""
        return int(self._prefix[last + 1] - self._prefix[first])

    def load(self, symbols: Iterable[str], first: int, last: int) -> int:
        """Bars a request for ``symbols`` over ``first..last`` returns."""
        whole = self.bars(first, last)
        if not self.active:
            return whole * sum(1 for _ in symbols)
        total = 0
        for s in symbols:
            span = self.active.get(s)
            if span is None:
                total += whole
            else:
                lo, hi = max(first, span[0]), min(last + 1, span[1])
                total += self._prefix[hi] - self._prefix[lo] if hi > lo else 0
        return total

    def profile(self, symbols: Sequence[str]) -> npt.NDArray[np.int64]:
        """Prefix sums of what ``symbols`` return per session: ``load(symbols, a, b)`` is
        ``profile[b + 1] - profile[a]``."""
        count = np.zeros(len(self.axis.days) + 1, dtype=np.int64)
        for s in symbols:
            lo, hi = self.active.get(s, (0, len(self.axis.days)))
            count[lo] += 1
            count[hi] -= 1
        per_session = self.axis.bars * np.cumsum(count)[:-1]
        return np.concatenate([[0], np.cumsum(per_session)]).astype(np.int64)

    def calls(self, load: float) -> int:
        """Pages of a request returning ``load`` bars."""
        return max(1, math.ceil(load / self.per_page - 1e-9))

    def cost(self, load: float, missing: float) -> float:
        """A request returning ``load`` bars, ``missing`` of them not stored."""
        return self.calls(load) + self.weight * max(0.0, load - missing) / self.per_page

    def fits(self, first: int, last: int) -> bool:
        """Whether one request may span ``first..last`` (the provider's range limit)."""
        if self.max_days is None:
            return True
        return self._day[last] - self._day[first] < self.max_days

    def room(self, pack: Pack, more: int, chars: int) -> bool:
        """Whether ``more`` symbols (``chars`` long, encoded and joined) fit beside ``pack``."""
        if len(pack.symbols) + more > self.per_request:
            return False
        return fits(joined_chars(pack.chars, chars), self.chars)


@dataclass
class Pack:
    """Symbols sharing one request over ``first..last`` while it is being filled."""

    symbols: list[str]
    first: int
    last: int
    missing: int
    chars: int
    load: int

    def shape(self) -> Shape:
        return Shape(tuple(sorted(self.symbols)), self.first, self.last)
