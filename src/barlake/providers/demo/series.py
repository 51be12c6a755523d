"""The demo's bars: each symbol's profile from its name, daily closes as a random walk, intraday
bars that bridge each session's open to its close inside its high and low. Every bar is a pure
function of (symbol, interval, start) and of "now" (bars after it do not exist yet).

Known cases for tests: symbols starting with ``NEW`` list on 2024-06-03, symbols starting with
``HALT`` are halted every fifth session; well-known tickers (``names.LISTED``) list on their
real first trading day and are never halted; other symbols draw both from their name's hash.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.calendars.calendar import Calendar, get_calendar
from barlake.domain import bars
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.domain.symbols import is_crypto_pair
from barlake.providers.demo.names import LISTED
from barlake.providers.demo.noise import (
    F64,
    GAMMA,
    GOLDEN,
    I64,
    MASK,
    counter_bits,
    gaussian,
    mix,
    stream_base,
    uniform,
)
from barlake.providers.demo.splits import split_factor

NAME = "demo"
NEW_LISTING = date(2024, 6, 3)
_LISTING_FIRST = date(2024, 1, 1)
_LISTING_DAYS = 731  # listing dates fall in 2024-01-01..2025-12-31
_HALT_SHARE = 0.02
_DAILY_SD = 0.015  # daily log-return standard deviation
_BLOCK = 64  # sessions per cached block of daily bars; a fixed grid keeps bars cut-independent
# Indices of a profile's random streams; stream 0 is the seed of its listing and halts.
_HALTS, _ANCHORS, _WALK, _NOISE, _INTRADAY, _LEVELS = range(1, 7)
_US = 1_000_000


def generate(
    symbols: Iterable[str], interval: Interval, range: DateRange, *, now: datetime | None = None
) -> pl.DataFrame:
    """All demo bars of ``symbols`` in ``range``, sorted by (symbol, ts), as of ``now``.

    Sessions that had not opened by ``now`` (default: the current time) have no bars, and the
    session in progress has only the bars that started before ``now``.
    """
    spec(interval)  # an unknown interval is a usage error, not an empty frame
    return frame_of(draws(sorted(set(symbols)), interval, range, micros(now)), interval)


def demo_listing_date(symbol: str) -> date | None:
    """The date before which ``symbol`` has no bars, or None if it always traded."""
    return profile_of(symbol).listing


def demo_halted(symbol: str, session: date) -> bool:
    """Whether ``symbol`` was halted (has no bars at any interval) on ``session``."""
    profile = profile_of(symbol)
    sessions = profile.calendar.sessions
    i = int(np.searchsorted(sessions, np.datetime64(session, "D")))
    if i >= len(sessions) or sessions[i] != np.datetime64(session, "D"):
        return False
    return bool(halted_mask(profile, np.array([i], dtype=np.int64))[0])


def demo_calendar(symbol: str) -> Calendar:
    """The calendar ``symbol`` trades on in the demo: ``24/7`` for crypto pairs (``BTCUSDT``,
    ``ETH-USD``, ``BTC/USDT``: ``domain.symbols.is_crypto_pair``), else XNYS."""
    return profile_of(symbol).calendar


def demo_sessions(symbol: str, window: DateRange) -> list[date]:
    """The sessions in ``window`` on which ``symbol`` has bars, ignoring the current time."""
    (plan,) = draws([symbol], "1day", window, NEVER)
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
def profile_of(symbol: str) -> _Profile:
    # blake2b, unlike hash(), is stable across processes and Python versions; its 64 bytes are
    # the symbol's seed and the keys of its random streams.
    streams = struct.unpack("<8Q", hashlib.blake2b(symbol.encode()).digest())
    seed = streams[0]
    calendar = get_calendar("24/7" if is_crypto_pair(symbol) else "XNYS")
    listing: date | None = None
    halts = "random" if (seed >> 40) % 8 == 0 else "none"
    if symbol in LISTED:
        first_day = calendar.sessions[0].astype(date)
        listing, halts = (LISTED[symbol] if LISTED[symbol] > first_day else None), "none"
    elif symbol.startswith("NEW"):
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


def halted_mask(profile: _Profile, sessions: I64) -> npt.NDArray[np.bool_]:
    if profile.halts == "every5":
        return np.asarray(sessions % 5 == 0)
    if profile.halts == "random":
        return uniform(counter_bits(profile.streams[_HALTS], sessions), 0, 32) < _HALT_SHARE
    return np.zeros(len(sessions), dtype=np.bool_)


# --- daily bars ----------------------------------------------------------------------------

# Cached blocks of daily bars, rows open/high/low/close/volume by _BLOCK sessions, keyed by
# (symbol, block). Intraday bars need their session's daily open and close, so both use them.
_BLOCKS: dict[tuple[str, int], F64] = {}
_BLOCKS_KEPT = 32768  # ~80 MB
_BLOCKS_LOCK = threading.Lock()  # generate() may run in worker threads


def _daily(plans: list[Draw]) -> F64:
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


def _blocks(plans: list[Draw]) -> dict[tuple[str, int], F64]:
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
        gaussian(counter_bits(column((p.streams[_WALK] for p in profiles), np.uint64), sessions)), 1
    )
    walk *= _DAILY_SD
    weight = np.arange(1, _BLOCK + 1) / _BLOCK
    log_close = _fold(start + walk - weight * (walk[:, -1:] - (end - start)), centre)
    log_prev = np.hstack((_fold(start, centre), log_close[:, :-1]))
    # One hash per session; five 12-bit uniforms drive its gap, high, low and volume. A sum of
    # two uniforms (sd 1 once scaled by sqrt(6)) is normal enough for an overnight gap.
    bits = counter_bits(column((p.streams[_NOISE] for p in profiles), np.uint64), sessions)
    gap = (uniform(bits, 36, 12) + uniform(bits, 48, 12) - 1) * (0.004 * math.sqrt(6))
    open_, close = np.exp(log_prev + gap), np.exp(log_close)
    high = np.maximum(open_, close) * (1 + 0.012 * uniform(bits, 0, 12))
    low = np.minimum(open_, close) * (1 - 0.012 * uniform(bits, 12, 12))
    volume = column((p.volume for p in profiles), np.float64) * (0.4 + 1.2 * uniform(bits, 24, 12))
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
    steps = gaussian(counter_bits(bases, np.arange(int(block.max()) + 1, dtype=np.int64)))
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
class Draw:
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


def draws(symbols: list[str], interval: Interval, window: DateRange, now_us: int) -> list[Draw]:
    windows: dict[str, tuple[int, I64, I64]] = {}
    plans = []
    for symbol in symbols:
        p = profile_of(symbol)
        if p.calendar.name not in windows:
            windows[p.calendar.name] = _window(p.calendar, interval, window, now_us)
        lo, full, kept = windows[p.calendar.name]
        first = max(lo, p.first)
        sessions = np.arange(first, lo + len(full), dtype=np.int64)
        plan = Draw(p, sessions, full[first - lo :], kept[first - lo :])
        if p.halts != "none":
            trading = ~halted_mask(p, sessions)
            plan = Draw(p, sessions[trading], plan.full[trading], plan.kept[trading])
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


def frame_of(plans: list[Draw], interval: Interval) -> pl.DataFrame:
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


def _intraday(plans: list[Draw], interval: Interval) -> pl.DataFrame:
    """Bars of every planned session at once: each session bridges its daily open to close."""
    step = spec(interval).seconds * _US
    daily = _daily(plans)
    day_open, day_log_open = daily[0], np.log(daily[0])
    full = _cat([p.full for p in plans], np.int64)
    kept = _cat([p.kept for p in plans], np.int64)
    opens = _cat([p.calendar.opens[p.sessions] for p in plans], np.int64)
    # Streams depend on the interval, so 5min bars are not resampled 1min bars.
    bases = [
        np.full(len(p.sessions), stream_base(p.profile.streams[_INTRADAY], step), np.uint64)
        for p in plans
    ]
    keys = _cat(bases, np.uint64) + opens.astype(np.uint64) * GOLDEN

    n = int(full.sum())
    starts = np.cumsum(full) - full
    pos = np.arange(n, dtype=np.int64) - np.repeat(starts, full)
    ts = np.repeat(opens, full) + pos * step
    # One hash per bar; four 16-bit uniforms drive its move, high, low and volume.
    bits = mix(np.repeat(keys, full) + pos.astype(np.uint64) * np.uint64(step * GAMMA & MASK))
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
    high = np.minimum(_price(np.maximum(open_, close) * (1 + sd * uniform(bits, 16, 16))), day_high)
    low = np.maximum(_price(np.minimum(open_, close) * (1 - sd * uniform(bits, 32, 16))), day_low)
    centred = (pos + 0.5) * np.repeat(2 / full, full) - 1
    volume = np.repeat(daily[4] / full, full) * (0.6 + 1.2 * centred**2)  # busy open and close
    volume = _shares(volume * (0.5 + uniform(bits, 48, 16)))

    keep = pos < np.repeat(kept, full)
    if not keep.all():
        ts, open_, high, low, close, volume = (
            a[keep] for a in (ts, open_, high, low, close, volume)
        )
    return _assemble(plans, ts, open_, high, low, close, volume)


def _assemble(
    plans: list[Draw], ts: I64, open_: F64, high: F64, low: F64, close: F64, volume: F64
) -> pl.DataFrame:
    """A frame in the lake's schema from per-bar arrays, ``plans[i].count`` bars of plan i."""
    counts = [p.count for p in plans]
    names = pl.Series("symbol", [p.profile.symbol for p in plans], dtype=pl.String)
    trade_size = np.repeat(np.array([p.profile.trade_size for p in plans]), counts)
    trades = np.maximum(1, np.round(volume / trade_size)).astype(np.int64)
    open_, high, low, close, volume = _raw(plans, counts, ts, open_, high, low, close, volume)
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
            "trades": trades,
        }
    )
    return frame.with_columns(
        pl.col("ts").dt.replace_time_zone("UTC"), pl.lit(NAME, dtype=pl.String).alias("source")
    ).select(list(bars.SCHEMA))


def _raw(plans: list[Draw], counts: list[int], ts: I64, *columns: F64) -> tuple[F64, ...]:
    """The split-adjusted walk as raw prices and volumes: before each split of a symbol its
    prices are the ratio higher and its volumes that much lower (``demo.splits``)."""
    ends = np.cumsum(counts)
    factor: F64 | None = None
    for plan, end, count in zip(plans, ends, counts, strict=True):
        part = split_factor(plan.profile.symbol, ts[end - count : end])
        if part is not None:
            if factor is None:
                factor = np.ones(len(ts))
            factor[end - count : end] = part
    if factor is None:
        return columns
    *prices, volume = columns
    return (*(p * factor for p in prices), _shares(volume / factor))


def _cat(arrays: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    # Casting each part, not the result: int64 and uint64 parts would meet in float64.
    return np.concatenate([a.astype(dtype, copy=False) for a in arrays] or [np.empty(0, dtype)])


def _price(values: F64) -> F64:
    # Rounding is monotonic, so it keeps low <= open, close <= high.
    return np.round(values, 4)


def _shares(values: F64) -> F64:
    return np.maximum(1.0, np.round(values))


NEVER = 2**62  # a "now" after every session


def micros(now: datetime | None) -> int:
    moment = now or datetime.now(UTC)
    return int(moment.timestamp() * _US)
