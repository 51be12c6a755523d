"""Following a provider without a stream (Yahoo, Binance): its REST endpoint asked
once a minute of the clock for the minutes closed since the last poll, behind the same
``LiveSource`` seam as a real stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl

from barlake.clock import Clock
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.providers.base import Provider, Request
from barlake.providers.stream import Batch

MINUTE = timedelta(minutes=1)


class PollingSource:
    """``rest`` polled for minute bars once per minute of ``clock`` (``LiveSource``)."""

    def __init__(self, rest: Provider, clock: Clock, *, idle_s: float = 0.05) -> None:
        self.name = rest.name
        self.rest, self.clock, self.idle_s = rest, clock, idle_s
        self.polls = 0
        self._symbols: tuple[str, ...] = ()
        self._last: datetime | None = None  # minutes before it were handed over
        self._task: asyncio.Task[Batch] | None = None

    async def open(self, symbols: Sequence[str]) -> None:
        self._symbols = tuple(sorted(set(symbols)))
        self._last = _minute(self.clock())

    async def receive(self) -> Batch:
        # The poll runs as its own task: a caller that stops waiting (a timeout) finds it
        # still running, or done, on its next call, so no answer is lost half-way.
        while True:
            if self._task is None:
                due = _minute(self.clock())
                if self._last is not None and due <= self._last:
                    await asyncio.sleep(self.idle_s)
                    continue
                self._task = asyncio.ensure_future(self._poll(due))
            batch = await asyncio.shield(self._task)
            self._task = None
            return batch

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _poll(self, due: datetime) -> Batch:
        self.polls += 1
        since = self._last or due
        day = DateRange(since.date(), due.date() + timedelta(days=1))
        frame = await minute_bars(self.rest, self._symbols, day)
        frame = frame.filter((pl.col("ts") >= since) & (pl.col("ts") < due))
        self._last = due
        return Batch(frame)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def minute_bars(rest: Provider, symbols: Sequence[str], window: DateRange) -> pl.DataFrame:
    """Every minute bar of ``symbols`` in the sessions of ``window`` that ``rest`` has now,
    in requests of as many symbols as it takes, page after page."""
    step = max(1, rest.capabilities.symbols_per_request)
    frames = []
    for i in range(0, len(symbols), step):
        request = Request(rest.name, tuple(symbols[i : i + step]), "1min", window)
        cursor: str | None = None
        while True:
            page = await rest.fetch_page(request, cursor)
            frames.append(page.bars)
            cursor = page.next_cursor
            if cursor is None:
                break
    return bars.conform(pl.concat(frames)) if frames else bars.empty()
