"""The offline ``demo`` provider: deterministic synthetic bars, with faults injected on request.

Every bar is a pure function of (symbol, interval, start): randomness comes from a counter-based
hash rather than a stateful generator, so a bar is the same whichever request range or symbol
packing produced it, and one request's bars are generated in a few numpy passes. Daily closes
follow a random walk; intraday bars bridge each session's daily open to its daily close and stay
inside its daily high and low.

Known cases for tests: symbols starting with ``NEW`` list on 2024-06-03, symbols starting with
``HALT`` are halted every fifth session; other symbols draw both from their name's hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.calendars.calendar import Calendar, get_calendar
from barlake.clock import Clock, system_clock
from barlake.domain import bars
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import PermanentError, RateLimitError, TransientError
from barlake.providers.base import Capabilities, Page, Request

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

NAME = "demo"
NEW_LISTING = date(2024, 6, 3)
_LISTING_FIRST = date(2024, 1, 1)
_LISTING_DAYS = 731  # listing dates fall in 2024-01-01..2025-12-31
_HALT_SHARE = 0.02
_DAILY_SD = 0.015  # daily log-return standard deviation
_BLOCK = 64  # sessions per cached block of daily bars; a fixed grid keeps bars cut-independent
_MASK = (1 << 64) - 1
# Indices of a profile's random streams; stream 0 is the seed of its listing and halts.
_HALTS, _ANCHORS, _WALK, _NOISE, _INTRADAY, _LEVELS = range(1, 7)
_US = 1_000_000


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
        plans = _plan(symbols, request.interval, request.range, _now_us(self.clock()))
        counts = [p.count for p in plans]
        picked: list[_Plan] = []
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
        page = _frame(picked, request.interval).slice(first_offset, size)
        more = sum(counts[index:]) - offset > 0
        return Page(page, f"{index}:{offset}" if more else None)

    async def aclose(self) -> None:
        """Nothing to release: the demo holds no connections."""

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
                raise PermanentError(msg, symbol=symbol)


def generate(
    symbols: Iterable[str], interval: Interval, range: DateRange, *, now: datetime | None = None
) -> pl.DataFrame:
    """All demo bars of ``symbols`` in ``range``, sorted by (symbol, ts), as of ``now``.

    Sessions that had not opened by ``now`` (default: the current time) have no bars, and the
    session in progress has only the bars that started before ``now``.
    """
    spec(interval)  # an unknown interval is a usage error, not an empty frame
    return _frame(_plan(sorted(set(symbols)), interval, range, _now_us(now)), interval)


def demo_listing_date(symbol: str) -> date | None:
    """The date before which ``symbol`` has no bars, or None if it always traded."""
    return _profile(symbol).listing


def demo_halted(symbol: str, session: date) -> bool:
    """Whether ``symbol`` was halted (has no bars at any interval) on ``session``."""
    profile = _profile(symbol)
    sessions = profile.calendar.sessions
    i = int(np.searchsorted(sessions, np.datetime64(session, "D")))
    if i >= len(sessions) or sessions[i] != np.datetime64(session, "D"):
        return False
    return bool(_halted(profile, np.array([i], dtype=np.int64))[0])


def demo_calendar(symbol: str) -> Calendar:
    """The calendar ``symbol`` trades on in the demo: ``24/7`` for crypto names (``…USDT``,
    ``…-USD…``), else XNYS."""
    return _profile(symbol).calendar


def demo_sessions(symbol: str, window: DateRange) -> list[date]:
    """The sessions in ``window`` on which ``symbol`` has bars, ignoring the current time."""
    (plan,) = _plan([symbol], "1day", window, _NEVER)
    return [date.fromisoformat(str(d)) for d in plan.calendar.sessions[plan.sessions]]


# --- symbols -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Profile:
    """What a symbol's name decides: its calendar, listing, halts, price and volume levels."""

    symbol: str
    seed: int
    calendar: Calendar
    listing: date | None
    first: int  # index of the first session with bars
    halts: str  # "none", "random" or "every5"
    log_price: float  # where the walk starts, in the calendar's first session
    volume: float  # typical daily volume
    trade_size: float  # shares per trade
    streams: tuple[int, ...]  # keys of its random streams, indexed by _HALTS.._LEVELS


@lru_cache(maxsize=65536)
def _profile(symbol: str) -> _Profile:
    # blake2b, unlike hash(), is stable across processes and Python versions; its 64 bytes are
    # the symbol's seed and the keys of its random streams.
    streams = struct.unpack("<8Q", hashlib.blake2b(symbol.encode()).digest())
    seed = streams[0]
    crypto = symbol.endswith("USDT") or "-USD" in symbol
    calendar = get_calendar("24/7" if crypto else "XNYS")
    listing: date | None = None
    halts = "random" if (seed >> 40) % 8 == 0 else "none"
    if symbol.startswith("NEW"):
        listing, halts = NEW_LISTING, "none"
    elif symbol.startswith("HALT"):
        halts = "every5"
    elif (seed >> 8) % 10 == 0:
        listing = _LISTING_FIRST + timedelta(days=(seed >> 16) % _LISTING_DAYS)
    first = 0
    if listing is not None:
        first = int(np.searchsorted(calendar.sessions, np.datetime64(listing, "D")))
    levels = streams[_LEVELS]
    price, volume, size = (((levels >> shift) & 0xFFFFF) / 2.0**20 for shift in (0, 20, 40))
    return _Profile(
        symbol,
        seed,
        calendar,
        listing,
        first,
        halts,
        log_price=math.log(10) + price * math.log(50),  # 10..500, log-uniform
        volume=math.exp(math.log(2e5) + volume * math.log(250)),  # 200k..50M a day
        trade_size=30 + 270 * size,
        streams=streams,
    )


def _halted(profile: _Profile, sessions: I64) -> npt.NDArray[np.bool_]:
    if profile.halts == "every5":
        return np.asarray(sessions % 5 == 0)
    if profile.halts == "random":
        return _unit(_bits(profile.streams[_HALTS], sessions), 0, 32) < _HALT_SHARE
    return np.zeros(len(sessions), dtype=np.bool_)


# --- daily bars ----------------------------------------------------------------------------

# Cached blocks of daily bars, rows open/high/low/close/volume by _BLOCK sessions, keyed by
# (symbol, block). Intraday bars need their session's daily open and close, so both use them.
_BLOCKS: dict[tuple[str, int], F64] = {}
_BLOCKS_KEPT = 32768  # ~80 MB
_BLOCKS_LOCK = threading.Lock()  # generate() may run in worker threads


def _daily(plans: list[_Plan]) -> F64:
    """Daily open, high, low, close and volume (rows) of every planned session (columns)."""
    cached = _blocks(plans)
    blocks, columns, used = [], [], 0
    for p in plans:
        if len(p.sessions) == 0:
            continue
        first, last = int(p.sessions[0]) // _BLOCK, int(p.sessions[-1]) // _BLOCK
        blocks += [cached[(p.profile.symbol, b)] for b in range(first, last + 1)]
        columns.append(p.sessions + (used - first * _BLOCK))
        used += (last - first + 1) * _BLOCK
    if not blocks:
        return np.empty((5, 0))
    return np.concatenate(blocks, axis=1)[:, np.concatenate(columns)]


def _blocks(plans: list[_Plan]) -> dict[tuple[str, int], F64]:
    """The blocks ``plans`` need; missing ones are computed at once, each a Brownian bridge.

    The anchors, one every ``_BLOCK`` sessions, are a coarse random walk from the symbol's start
    price; a fixed block grid is what keeps a bar independent of the request that produced it.
    """
    needed = {
        (p.profile.symbol, b): p.profile
        for p in plans
        if len(p.sessions)
        for b in range(int(p.sessions[0]) // _BLOCK, int(p.sessions[-1]) // _BLOCK + 1)
    }
    with _BLOCKS_LOCK:
        found = {key: _BLOCKS[key] for key in needed if key in _BLOCKS}
    missing = {key: profile for key, profile in needed.items() if key not in found}
    if not missing:
        return found
    profiles = list(missing.values())
    block = np.array([b for _, b in missing], dtype=np.int64)

    def column(values: Iterable[float | int], dtype: type[np.generic]) -> npt.NDArray[Any]:
        return np.array(list(values), dtype=dtype)[:, None]

    centre = column((p.log_price for p in profiles), np.float64)
    start, end = _anchors(profiles, block)
    sessions = block[:, None] * _BLOCK + np.arange(_BLOCK, dtype=np.int64)
    walk = np.cumsum(
        _normal(_bits(column((p.streams[_WALK] for p in profiles), np.uint64), sessions)), 1
    )
    walk *= _DAILY_SD
    weight = np.arange(1, _BLOCK + 1) / _BLOCK
    log_close = _fold(start + walk - weight * (walk[:, -1:] - (end - start)), centre)
    log_prev = np.hstack((_fold(start, centre), log_close[:, :-1]))
    # One hash per session; five 12-bit uniforms drive its gap, high, low and volume. A sum of
    # two uniforms (sd 1 once scaled by sqrt(6)) is normal enough for an overnight gap.
    bits = _bits(column((p.streams[_NOISE] for p in profiles), np.uint64), sessions)
    gap = (_unit(bits, 36, 12) + _unit(bits, 48, 12) - 1) * (0.004 * math.sqrt(6))
    open_, close = np.exp(log_prev + gap), np.exp(log_close)
    high = np.maximum(open_, close) * (1 + 0.012 * _unit(bits, 0, 12))
    low = np.minimum(open_, close) * (1 - 0.012 * _unit(bits, 12, 12))
    volume = column((p.volume for p in profiles), np.float64) * (0.4 + 1.2 * _unit(bits, 24, 12))
    rows = np.stack([_price(open_), _price(high), _price(low), _price(close), _shares(volume)], 1)
    found.update(zip(missing, rows, strict=True))
    with _BLOCKS_LOCK:
        while len(_BLOCKS) + len(missing) > _BLOCKS_KEPT and _BLOCKS:
            del _BLOCKS[next(iter(_BLOCKS))]
        _BLOCKS.update((key, found[key]) for key in missing)
    return found


def _anchors(profiles: list[_Profile], block: I64) -> tuple[F64, F64]:
    """The unfolded log closes at the start and end of each (profile, block), as columns."""
    rows = {p.symbol: i for i, p in enumerate(dict.fromkeys(profiles))}
    owners = list(dict.fromkeys(profiles))
    bases = np.array([p.streams[_ANCHORS] for p in owners], dtype=np.uint64)[:, None]
    steps = _normal(_bits(bases, np.arange(int(block.max()) + 1, dtype=np.int64)))
    steps *= _DAILY_SD * math.sqrt(_BLOCK)
    walked = np.hstack((np.zeros((len(owners), 1)), np.cumsum(steps, axis=1)))
    walked += np.array([p.log_price for p in owners])[:, None]
    row = np.array([rows[p.symbol] for p in profiles], dtype=np.int64)
    return walked[row, block][:, None], walked[row, block + 1][:, None]


def _fold(log_price: F64, centre: F64) -> F64:
    """Reflect log prices into centre ± 1.2, so decades of walk stay within a factor of 11."""
    lo, width = centre - 1.2, 2.4
    y = np.mod(log_price - lo, 2 * width)
    return np.asarray(lo + np.where(y > width, 2 * width - y, y), dtype=np.float64)


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Plan:
    """Which sessions of one symbol a request covers, and how many bars each has."""

    profile: _Profile
    sessions: I64  # calendar indices
    full: I64  # bars in the whole session
    kept: I64  # bars that started before now

    @property
    def calendar(self) -> Calendar:
        return self.profile.calendar

    @property
    def count(self) -> int:
        return int(self.kept.sum())


def _plan(symbols: list[str], interval: Interval, window: DateRange, now_us: int) -> list[_Plan]:
    windows: dict[str, tuple[int, I64, I64]] = {}
    plans = []
    for symbol in symbols:
        p = _profile(symbol)
        if p.calendar.name not in windows:
            windows[p.calendar.name] = _window(p.calendar, interval, window, now_us)
        lo, full, kept = windows[p.calendar.name]
        first = max(lo, p.first)
        sessions = np.arange(first, lo + len(full), dtype=np.int64)
        plan = _Plan(p, sessions, full[first - lo :], kept[first - lo :])
        if p.halts != "none":
            trading = ~_halted(p, sessions)
            plan = _Plan(p, sessions[trading], plan.full[trading], plan.kept[trading])
        plans.append(plan)
    return plans


def _window(
    cal: Calendar, interval: Interval, window: DateRange, now_us: int
) -> tuple[int, I64, I64]:
    """The first session of ``window`` on ``cal``, then full and kept bar counts per session."""
    lo = int(np.searchsorted(cal.sessions, np.datetime64(window.start, "D")))
    hi = int(np.searchsorted(cal.sessions, np.datetime64(window.end, "D")))
    hi = max(lo, min(hi, int(np.searchsorted(cal.opens, now_us))))  # sessions that have opened
    if not spec(interval).intraday:
        ones = np.ones(hi - lo, dtype=np.int64)
        return lo, ones, ones
    step = spec(interval).seconds * _US
    opens, closes = cal.opens[lo:hi], cal.closes[lo:hi]
    full = -((opens - closes) // step)
    return lo, full, np.minimum(full, -((opens - now_us) // step))


def _frame(plans: list[_Plan], interval: Interval) -> pl.DataFrame:
    """The bars of ``plans`` in plan order, each plan's sorted by time."""
    if spec(interval).intraday:
        return _intraday(plans, interval)
    daily = _daily(plans)
    ts = _cat([_midnights(p.calendar)[p.sessions] for p in plans], np.int64)
    return _assemble(plans, ts, daily[0], daily[1], daily[2], daily[3], daily[4])


@lru_cache(maxsize=8)
def _midnights(calendar: Calendar) -> I64:
    """Each session's date at 00:00 UTC in epoch microseconds: the key of its daily bar."""
    return calendar.sessions.astype("datetime64[us]").astype(np.int64)


def _intraday(plans: list[_Plan], interval: Interval) -> pl.DataFrame:
    """Bars of every planned session at once: each session bridges its daily open to close."""
    step = spec(interval).seconds * _US
    daily = _daily(plans)
    day_open, day_log_open = daily[0], np.log(daily[0])
    full = _cat([p.full for p in plans], np.int64)
    kept = _cat([p.kept for p in plans], np.int64)
    opens = _cat([p.calendar.opens[p.sessions] for p in plans], np.int64)
    # Streams depend on the interval, so 5min bars are not resampled 1min bars.
    bases = [
        np.full(len(p.sessions), _base(p.profile.streams[_INTRADAY], step), np.uint64)
        for p in plans
    ]
    keys = _cat(bases, np.uint64) + opens.astype(np.uint64) * _GOLDEN

    n = int(full.sum())
    starts = np.cumsum(full) - full
    pos = np.arange(n, dtype=np.int64) - np.repeat(starts, full)
    ts = np.repeat(opens, full) + pos * step
    # One hash per bar; four 16-bit uniforms drive its move, high, low and volume.
    bits = _mix(np.repeat(keys, full) + pos.astype(np.uint64) * np.uint64(step * _GAMMA & _MASK))
    sd = np.repeat(0.8 * _DAILY_SD / np.sqrt(full), full)  # of one bar's move
    # Moves are odd integers in +-65535 (uniform), summed exactly: a global cumsum minus each
    # session's offset is every session's walk in one pass, and integers keep a session's walk
    # free of rounding from the sessions before it in the request.
    moves = (bits & np.uint64(0xFFFF)).astype(np.int64) * 2 - 65535
    total = np.cumsum(moves)
    walk = (total - np.repeat(total[starts] - moves[starts], full)) * (sd * math.sqrt(3) / 65536)
    drift = (walk[starts + full - 1] - (np.log(daily[3]) - day_log_open)) / full
    # A session's bars stay inside its daily bar's range, as real intraday data does, so that
    # daily and intraday bars of one session agree (the quality checks compare them).
    day_high, day_low = np.repeat(daily[1], full), np.repeat(daily[2], full)
    close = _price(
        np.exp(walk + np.repeat(day_log_open, full) - (pos + 1) * np.repeat(drift, full))
    )
    close = np.clip(close, day_low, day_high)
    open_ = np.empty_like(close)
    open_[1:] = close[:-1]
    open_[starts] = day_open
    high = np.minimum(_price(np.maximum(open_, close) * (1 + sd * _unit(bits, 16, 16))), day_high)
    low = np.maximum(_price(np.minimum(open_, close) * (1 - sd * _unit(bits, 32, 16))), day_low)
    centred = (pos + 0.5) * np.repeat(2 / full, full) - 1
    volume = np.repeat(daily[4] / full, full) * (0.6 + 1.2 * centred**2)  # busy open and close
    volume = _shares(volume * (0.5 + _unit(bits, 48, 16)))

    keep = pos < np.repeat(kept, full)
    if not keep.all():
        ts, open_, high, low, close, volume = (
            a[keep] for a in (ts, open_, high, low, close, volume)
        )
    return _assemble(plans, ts, open_, high, low, close, volume)


def _assemble(
    plans: list[_Plan], ts: I64, open_: F64, high: F64, low: F64, close: F64, volume: F64
) -> pl.DataFrame:
    """A frame in the lake's schema from per-bar arrays, ``plans[i].count`` bars of plan i."""
    counts = [p.count for p in plans]
    names = pl.Series("symbol", [p.profile.symbol for p in plans], dtype=pl.String)
    trade_size = np.repeat(np.array([p.profile.trade_size for p in plans]), counts)
    frame = pl.DataFrame(
        {
            "symbol": names.gather(np.repeat(np.arange(len(plans), dtype=np.uint32), counts)),
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us")),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "vwap": np.clip((high + low + close) / 3, low, high),  # no rounding past the range
            "trades": np.maximum(1, np.round(volume / trade_size)).astype(np.int64),
        }
    )
    return frame.with_columns(
        pl.col("ts").dt.replace_time_zone("UTC"), pl.lit(NAME, dtype=pl.String).alias("source")
    ).select(list(bars.SCHEMA))


# --- randomness ----------------------------------------------------------------------------

# SplitMix64: the state advances by _GAMMA and _mix scrambles it, so mix(base + i * _GAMMA) is
# the i-th draw of the stream ``base``, computable for any i without drawing the ones before.
_GAMMA = 0x9E3779B97F4A7C15
_GOLDEN = np.uint64(_GAMMA)
_LANES_SD = math.sqrt(4 * (65536**2 - 1) / 12)  # sd of a sum of four uniform 16-bit integers


def _mix_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int (numpy scalars would warn on overflow)."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _base(seed: int, stream: int) -> int:
    """The key of one random stream of one symbol."""
    return _mix_int(seed ^ _mix_int((stream * _GAMMA) & _MASK))


def _mix(x: U64) -> U64:
    """SplitMix64's finaliser on arrays, where uint64 arithmetic wraps silently."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


def _bits(base: int | U64, counter: I64) -> U64:
    """64 random bits for each counter of the stream(s) ``base``."""
    start = np.uint64(base) if isinstance(base, int) else base
    return _mix(start + counter.astype(np.uint64) * _GOLDEN)


def _unit(bits: U64, shift: int, width: int) -> F64:
    """Uniforms strictly inside (0, 1) from ``width`` bits of ``bits`` starting at ``shift``."""
    field = (bits >> np.uint64(shift)) & np.uint64((1 << width) - 1)
    return np.asarray((field.astype(np.float64) + 0.5) / float(1 << width), dtype=np.float64)


def _normal(bits: U64) -> F64:
    """Near-standard normals: the sum of the four 16-bit lanes of ``bits``, centred and scaled.

    A sum of four uniforms (Irwin-Hall) is a few integer passes, several times cheaper than
    Box-Muller's log, sqrt and cos; its tails stop at 3.5 sd, which a demo does not miss.
    """
    pairs = (bits & np.uint64(0x0000FFFF0000FFFF)) + (
        (bits >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)
    )
    total = (pairs & np.uint64(0xFFFFFFFF)) + (pairs >> np.uint64(32))
    return np.asarray((total.astype(np.float64) - 131070.0) / _LANES_SD, dtype=np.float64)


def _cat(arrays: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    # Casting each part, not the result: int64 and uint64 parts would meet in float64.
    return np.concatenate([a.astype(dtype, copy=False) for a in arrays] or [np.empty(0, dtype)])


def _price(values: F64) -> F64:
    # Rounding is monotonic, so it keeps low <= open, close <= high.
    return np.round(values, 4)


def _shares(values: F64) -> F64:
    return np.maximum(1.0, np.round(values))


# --- plumbing ------------------------------------------------------------------------------

_NEVER = 2**62  # a "now" after every session


def _now_us(now: datetime | None) -> int:
    moment = now or datetime.now(UTC)
    return int(moment.timestamp() * _US)


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
