"""The offline ``demo`` provider: deterministic synthetic bars (``demo.series``), served in
pages, with faults injected on request."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from datetime import date

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.clock import Clock, system_clock
from barlake.domain import trades
from barlake.domain.intervals import INTERVALS
from barlake.domain.ranges import DateRange
from barlake.errors import (
    PermanentError,
    RateLimitError,
    TransientError,
    UnknownAtProviderError,
)
from barlake.providers.base import ActionPage, Capabilities, Page, Request, TradePage
from barlake.providers.demo.actions import demo_actions
from barlake.providers.demo.series import (
    NAME,
    NEW_LISTING,
    Draw,
    demo_calendar,
    demo_halted,
    demo_listing_date,
    demo_sessions,
    draws,
    frame_of,
    generate,
    micros,
)
from barlake.providers.demo.trades import SessionMinutes

__all__ = [
    "NAME",
    "NEW_LISTING",
    "DemoConfig",
    "DemoProvider",
    "demo_calendar",
    "demo_halted",
    "demo_listing_date",
    "demo_sessions",
    "generate",
]


class DemoConfig(BaseModel):
    """How the demo provider behaves: latency, its own rate limit, and injected failures."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latency_ms: float = Field(default=0, ge=0, description="Delay before each page is served.")
    rate_limit_per_min: float = Field(
        default=60000, ge=0, description="Pages per sliding minute before a 429; 0 = unlimited."
    )
    transient_rate: float = Field(
        default=0, ge=0, le=1, description="Probability a page call raises TransientError."
    )
    rate_limit_rate: float = Field(
        default=0, ge=0, le=1, description="Probability a page call raises RateLimitError."
    )
    retry_after_s: float = Field(default=0.05, ge=0, description="retry_after of injected 429s.")
    unknown_symbols: tuple[str, ...] = Field(
        default=(), description="Symbols the demo refuses with a PermanentError."
    )
    seed: int = Field(default=0, description="Seeds the fault injection only, never the bars.")
    trades_per_minute: int | None = Field(
        default=None,
        ge=1,
        description="Prints per minute of every session (default: each bar's trade count).",
    )
    trades_per_page: int = Field(default=100_000, ge=1, description="Prints per trades page.")


class DemoProvider:
    """Synthetic bars for any symbol, served in pages; no network, no credentials."""

    name = NAME

    def __init__(self, config: DemoConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or DemoConfig()
        #: "Now": sessions after it have no bars yet, the one in progress only those begun.
        self.clock: Clock = clock or system_clock
        self.capabilities = Capabilities(
            intervals=INTERVALS,
            symbols_per_request=200,
            bars_per_page=50_000,
            rate_limit_per_min=self.config.rate_limit_per_min or 60000,
            grouped_daily=False,
            auth_env=(),
            max_days={"1min": 31, "5min": 62, "15min": 62, "30min": 62, "1hour": 366},
            refuses_unknown=True,  # ``unknown_symbols`` are refused; any other it serves
            latency_s=self.config.latency_ms / 1000,
            action_symbols=200,
            trade_symbols=200,
            trades_per_page=self.config.trades_per_page,
        )
        self._faults = random.Random(self.config.seed)
        self._served: deque[float] = deque()

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One page of at most ``bars_per_page`` bars; the cursor is ``symbol_index:offset``."""
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        self._admit()
        self._inject_faults()
        self._check(request)
        symbols = sorted(set(request.symbols))
        index, offset = _parse_cursor(cursor, len(symbols))
        plans = draws(symbols, request.interval, request.range, micros(self.clock()))
        counts = [p.count for p in plans]
        picked: list[Draw] = []
        first_offset = offset
        room = self.capabilities.bars_per_page
        while index < len(plans) and room > 0:
            available = counts[index] - offset
            if available > 0:
                if not picked:
                    first_offset = offset
                picked.append(plans[index])
                taken = min(available, room)
                room -= taken
                offset += taken
            if offset >= counts[index]:
                index, offset = index + 1, 0
        size = self.capabilities.bars_per_page - room
        page = frame_of(picked, request.interval).slice(first_offset, size)
        more = sum(counts[index:]) - offset > 0
        return Page(page, f"{index}:{offset}" if more else None)

    async def fetch_actions(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> ActionPage:
        """The demo's splits and dividends (``demo.actions``) of ``symbols`` in ``window``,
        in one page; ex-dates after "now" are announced already, as vendors do."""
        await self._serve(symbols)
        return ActionPage(demo_actions(symbols, window))

    async def fetch_trades(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> TradePage:
        """One page of the demo's prints (``demo.trades``) of ``symbols`` in ``window``,
        symbol by symbol, oldest first, at most ``trades_per_page`` prints but always whole
        minutes; the cursor is ``symbol_index:session:minute``. A session in progress has the
        prints made before "now"."""
        await self._serve(symbols)
        names = sorted(set(symbols))
        now = self.clock()
        index, after, minute = _parse_trades_cursor(cursor, len(names))
        while index < len(names):
            sessions = [
                d
                for d in demo_sessions(names[index], window)
                if (after is None or d >= after)
                and demo_calendar(names[index]).open_close(d)[0] <= now
            ]
            for n, day in enumerate(sessions):
                minutes = SessionMinutes.of(names[index], day, self.config.trades_per_minute)
                begun = minutes.begun(now)
                start = minute if day == after else 0
                if start >= begun:
                    continue
                stop = minutes.fit(start, self.capabilities.trades_per_page, begun)
                prints = minutes.prints(start, stop).filter(pl.col("ts") < now)
                more = stop < begun or n + 1 < len(sessions) or index + 1 < len(names)
                following = f"{index}:{day.isoformat()}:{stop}" if stop < begun else None
                if following is None and n + 1 < len(sessions):
                    following = f"{index}:{sessions[n + 1].isoformat()}:0"
                if following is None and more:
                    following = f"{index + 1}::0"
                return TradePage(prints, following)
            index, after, minute = index + 1, None, 0
        return TradePage(trades.empty())

    async def aclose(self) -> None:
        """Nothing to release: the demo holds no connections."""

    async def _serve(self, symbols: tuple[str, ...]) -> None:
        """What every actions and trades call goes through: latency, the rate limit, faults,
        and the symbols the demo refuses."""
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)
        self._admit()
        self._inject_faults()
        for symbol in symbols:
            if symbol in self.config.unknown_symbols:
                msg = f"demo does not know symbol {symbol!r}"
                raise UnknownAtProviderError(msg, symbol=symbol)

    def _admit(self) -> None:
        """Enforce the demo's own sliding-minute limit, as a real server would."""
        limit = self.config.rate_limit_per_min
        if limit <= 0:
            return
        now = time.monotonic()
        while self._served and self._served[0] <= now - 60:
            self._served.popleft()
        # A fractional limit still admits one page a minute; zero pages would never recover.
        if len(self._served) >= max(1, int(limit)):
            wait = self._served[0] + 60 - now
            msg = f"demo allows {limit:g} pages per minute; retry in {wait:.2f}s"
            raise RateLimitError(msg, retry_after=wait)
        self._served.append(now)

    def _inject_faults(self) -> None:
        # Both draws always happen, so one rate never shifts the other's sequence.
        transient = self._faults.random() < self.config.transient_rate
        limited = self._faults.random() < self.config.rate_limit_rate
        if transient:
            msg = "demo injected a transient failure (HTTP 503); retry with backoff"
            raise TransientError(msg)
        if limited:
            msg = f"demo injected a rate limit (HTTP 429); retry in {self.config.retry_after_s:g}s"
            raise RateLimitError(msg, retry_after=self.config.retry_after_s)

    def _check(self, request: Request) -> None:
        caps = self.capabilities
        if request.interval not in caps.intervals:
            msg = f"demo does not serve interval {request.interval!r}"
            raise PermanentError(msg)
        if len(request.symbols) > caps.symbols_per_request:
            msg = (
                f"demo serves at most {caps.symbols_per_request} symbols per request, "
                f"got {len(request.symbols)}; split the request"
            )
            raise PermanentError(msg)
        longest = caps.max_days.get(request.interval)
        if longest is not None and request.range.days > longest:
            msg = (
                f"demo serves at most {longest} days of {request.interval} bars per request, "
                f"got {request.range.days} ({request.range}); split the range"
            )
            raise PermanentError(msg)
        for symbol in request.symbols:
            if symbol in self.config.unknown_symbols:
                msg = f"demo does not know symbol {symbol!r}"
                raise UnknownAtProviderError(msg, symbol=symbol)


def _parse_trades_cursor(cursor: str | None, symbols: int) -> tuple[int, date | None, int]:
    if cursor is None:
        return 0, None, 0
    try:
        index, day, minute = cursor.split(":")
        parsed = (int(index), date.fromisoformat(day) if day else None, int(minute))
    except ValueError:
        parsed = (-1, None, -1)
    if not (0 <= parsed[0] <= symbols and parsed[2] >= 0):
        msg = f"demo cannot read cursor {cursor!r}; restart the request without a cursor"
        raise PermanentError(msg)
    return parsed


def _parse_cursor(cursor: str | None, symbols: int) -> tuple[int, int]:
    if cursor is None:
        return 0, 0
    try:
        index, offset = (int(part) for part in cursor.split(":"))
    except ValueError:
        index, offset = -1, -1
    if not (0 <= index <= symbols and offset >= 0):
        msg = f"demo cannot read cursor {cursor!r}; restart the request without a cursor"
        raise PermanentError(msg)
    return index, offset
