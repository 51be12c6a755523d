"""The demo's own stream: its deterministic minute bars handed over in-process as the lake's
clock closes each minute, so that ``lake follow --provider demo`` runs offline, no network
and no REST polling.

It behaves as a vendor's stream does: it starts at the minute in progress when opened (what
closed before is the follower's to fetch from REST), sends each minute once it has ended, and
after a reopen resumes at the then-current minute (the minutes between are missed, and the
follower backfills them). The bars are ``demo.generate``'s, the same the demo's REST answers
serve, so the session made final differs from the live one nowhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

import polars as pl

from barlake.clock import Clock, system_clock
from barlake.domain.ranges import DateRange
from barlake.errors import TransientError
from barlake.providers.demo.series import NAME, generate
from barlake.providers.stream import Batch

MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


class DemoStream:
    """The demo's minute bars of the followed symbols, minute by minute of ``clock``
    (``LiveSource``); ``idle_s`` is how often the clock is looked at while a minute runs."""

    name = NAME

    def __init__(self, *, clock: Clock | None = None, idle_s: float = 0.02) -> None:
        self.clock: Clock = clock or system_clock
        self.idle_s = idle_s
        #: Minutes handed over (each once, all symbols in one batch).
        self.minutes = 0
        self._symbols: tuple[str, ...] = ()
        self._next: datetime | None = None  # the first minute not handed over yet
        self._cache: tuple[DateRange, pl.DataFrame] | None = None

    async def open(self, symbols: Sequence[str]) -> None:
        names = tuple(sorted({s.upper() for s in symbols}))
        if names != self._symbols:
            self._symbols, self._cache = names, None
        self._next = _minute(self.clock())

    async def receive(self) -> Batch:
        while True:
            if self._next is None:
                msg = "demo stream is not open"
                raise TransientError(msg)
            due = _minute(self.clock())  # minutes before it have closed
            if due > self._next:
                since, self._next = self._next, due
                frame = self._bars(since, due)
                self.minutes += int((due - since) / MINUTE)
                return Batch(frame)
            await asyncio.sleep(self.idle_s)

    async def aclose(self) -> None:
        self._next = None

    def _bars(self, since: datetime, until: datetime) -> pl.DataFrame:
        """The bars that start in [``since``, ``until``), of every session they may be in."""
        window = DateRange(since.date() - _DAY, until.date() + _DAY)
        if self._cache is None or not (
            self._cache[0].start <= window.start and window.end <= self._cache[0].end
        ):
            everything = datetime.combine(window.end + _DAY, time(), tzinfo=UTC)  # all of them
            self._cache = (window, generate(self._symbols, "1min", window, now=everything))
        frame = self._cache[1]
        return frame.filter((pl.col("ts") >= since) & (pl.col("ts") < until))


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
