"""The demo's trades: the prints of one session whose per-minute aggregation is exactly the
demo's 1-minute bars (open, high, low, close, volume and vwap, and the trade count wherever it
is at least four).

Each minute's prints are built from its bar: the first print is at the open, the last at the
close, two prints in between are at the high and the low, the others ("fillers") are uniform in
the bar's range. Filler sizes are drawn, and the high and low prints take the rest of the
volume, split so that the volume-weighted price is the bar's vwap: with ``F`` the fillers'
volume, ``N`` their notional and ``R = V - F``, the high print takes
``(vwap * V - N - low * R) / (high - low)``. ``F`` is chosen per bar so that share is strictly
inside ``(0, R)``. Fillers under 100 shares carry the odd-lot condition ``I``; the open, close,
high and low prints never do, so a resample that keeps odd lots out of OHLC (the vendors'
rule) still reproduces the bar. Everything is a pure function of (symbol, session,
``per_minute``) and vectorised over the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from barlake.domain import trades
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.providers.demo.noise import I64, counter_bits, stream_base, uniform
from barlake.providers.demo.series import NAME, NEVER, draws, frame_of, profile_of

#: Fewest prints a minute can have: its open, high, low and close each need one.
MIN_PER_MINUTE = 4
_TRADES_STREAM = 7  # the profile's stream unused by the bars
_MINUTE_NS = 60_000_000_000
_EXCHANGES = ("N", "P", "Q", "Z", "K", "V", "D", "X", "Y", "J")
#: Condition lists prints carry: a regular sale, an intermarket sweep, an odd lot.
_CONDITIONS = pl.Series(
    "conditions", [["@"], ["@", "F"], ["@", "I"]], dtype=trades.SCHEMA["conditions"]
)
_REGULAR, _SWEEP, _ODD_LOT = 0, 1, 2
_FILLER_SHARE_MAX = 9.0  # fillers take at most 90% of a minute's volume


def session_trades(symbol: str, session: date, *, per_minute: int | None = None) -> pl.DataFrame:
    """Every print of ``symbol`` in ``session`` in the trades schema, sorted by ``ts``.

    Each 1-minute bar of the session gets ``max(bar.trades, 4)`` prints, or
    ``max(per_minute, 4)`` when ``per_minute`` is given (benchmarks use it to make liquid
    sessions). A session the symbol did not trade (halted, before its listing, not a session)
    has no prints.
    """
    minutes = SessionMinutes.of(symbol, session, per_minute)
    return minutes.prints(0, minutes.count)


@dataclass(frozen=True, eq=False)
class SessionMinutes:
    """One session's 1-minute bars and how many prints each gets: the prints of any run of
    its minutes are drawn alone (``prints``), equal to the same rows of the whole session,
    so that a provider serves a liquid session page by page without holding it whole."""

    symbol: str
    session: date
    bars: pl.DataFrame
    counts: I64
    #: Prints before each minute.
    starts: I64

    @classmethod
    def of(cls, symbol: str, session: date, per_minute: int | None = None) -> SessionMinutes:
        (plan,) = draws([symbol], "1min", DateRange(session, session + ONE_DAY), NEVER)
        bars = frame_of([plan], "1min")
        if per_minute is None:
            counts = np.maximum(bars["trades"].to_numpy(), MIN_PER_MINUTE).astype(np.int64)
        else:
            counts = np.full(bars.height, max(per_minute, MIN_PER_MINUTE), dtype=np.int64)
        return cls(symbol, session, bars, counts, np.cumsum(counts) - counts)

    @property
    def count(self) -> int:
        """Minutes with bars."""
        return self.bars.height

    @property
    def total(self) -> int:
        """Prints in the session."""
        return int(self.counts.sum())

    def begun(self, now: datetime) -> int:
        """Minutes that started before ``now``."""
        stamp = np.datetime64(now.astimezone(UTC).replace(tzinfo=None), "us").astype(np.int64)
        return int(np.searchsorted(self.bars["ts"].dt.epoch("us").to_numpy(), stamp))

    def fit(self, first: int, room: int, stop: int) -> int:
        """The end of the longest run of whole minutes from ``first`` (before ``stop``) whose
        prints fit in ``room``; one minute at least, so that pages always advance."""
        ends = self.starts + self.counts
        fits = int(np.searchsorted(ends, self.starts[first] + room, side="right"))
        return min(stop, max(first + 1, fits))

    def prints(self, first: int, stop: int) -> pl.DataFrame:
        """The prints of minutes ``first`` to ``stop - 1``, sorted by ``ts``."""
        if stop <= first:
            return trades.empty()
        return _prints(self, first, stop)


def _prints(m: SessionMinutes, first: int, stop: int) -> pl.DataFrame:
    bars = m.bars.slice(first, stop - first)
    profile = profile_of(m.symbol)
    minute_us = bars["ts"].dt.epoch("us").to_numpy()
    o, h, lo, c, v, vwap = (
        bars[col].to_numpy() for col in ("open", "high", "low", "close", "volume", "vwap")
    )
    counts = m.counts[first:stop]
    n = int(counts.sum())
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    pos = np.arange(n, dtype=np.int64) - starts[owner]

    day = int(np.datetime64(m.session, "D").astype(np.int64))
    base = stream_base(profile.streams[_TRADES_STREAM], day)
    offset0 = int(m.starts[first])
    bits = counter_bits(base, np.arange(offset0, offset0 + n, dtype=np.int64))
    bar_bits = counter_bits(base ^ 0x5BD1E995, np.arange(first, stop, dtype=np.int64))

    # The high and low prints sit at two distinct inner positions of their minute.
    inner = counts - 2
    hi_at = 1 + (uniform(bar_bits, 0, 24) * inner).astype(np.int64)
    lo_at = 1 + (hi_at - 1 + 1 + (uniform(bar_bits, 24, 24) * (inner - 1)).astype(np.int64)) % inner
    last = pos == counts[owner] - 1
    is_hi = pos == hi_at[owner]
    is_lo = pos == lo_at[owner]
    filler = ~(is_hi | is_lo)

    h_t, l_t = h[owner], lo[owner]
    price = np.round(l_t + (h_t - l_t) * uniform(bits, 0, 20), 4)
    price = np.clip(price, l_t, h_t)
    price[starts] = o
    price[last] = c[owner[last]]
    price[is_hi], price[is_lo] = h_t[is_hi], l_t[is_lo]

    weight = np.where(filler, 0.25 + uniform(bits, 20, 16), 0.0)
    w_sum = np.bincount(owner, weights=weight, minlength=len(counts))
    vwap_f = np.bincount(owner, weights=weight * price, minlength=len(counts)) / w_sum
    span = h - lo
    room = np.minimum(vwap - lo, h - vwap)
    miss = np.abs(vwap - vwap_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(miss > 0, 0.9 * room / miss, _FILLER_SHARE_MAX)
    # A flat minute (high = low) takes any split: every print is at the one price.
    ratio = np.where(span > 0, np.minimum(ratio, _FILLER_SHARE_MAX), _FILLER_SHARE_MAX)
    filler_volume = v * ratio / (1 + ratio)
    rest = v - filler_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        hi_share = np.where(
            span > 0, (vwap * v - vwap_f * filler_volume - lo * rest) / span, rest / 2
        )
    size = weight * (filler_volume / w_sum)[owner]
    size[is_hi] = hi_share[owner[is_hi]]
    size[is_lo] = (rest - hi_share)[owner[is_lo]]

    # Times: n + 1 integer gaps per minute, cumulated exactly, scaled onto the minute: the
    # same whichever run of minutes is drawn, and strictly increasing within a minute.
    gap = 1 + ((bits >> np.uint64(36)) & np.uint64(0xFFFF)).astype(np.int64)
    total = np.cumsum(gap)
    upto = total - (total[starts] - gap[starts])[owner]
    last_gap = 1 + ((bar_bits >> np.uint64(48)) & np.uint64(0xFFFF)).astype(np.int64)
    minute_total = np.bincount(owner, weights=gap, minlength=len(counts)).astype(np.int64)
    minute_total += last_gap
    offset = (upto / minute_total[owner] * (_MINUTE_NS - 1)).astype(np.int64)
    ts = minute_us[owner] * 1000 + offset

    kind = np.where(uniform(bits, 52, 8) < 0.15, _SWEEP, _REGULAR)
    kind = np.where(filler & (pos > 0) & ~last & (size < 100), _ODD_LOT, kind)
    exchange = pl.Series(_EXCHANGES).gather(
        (bits >> np.uint64(60)).astype(np.int64) % len(_EXCHANGES)
    )
    tape = None if profile.calendar.name == "24/7" else "ABC"[profile.seed % 3]
    return pl.DataFrame(
        {
            "symbol": pl.Series([m.symbol], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "price": price,
            "size": size,
            "exchange": exchange,
            "conditions": _CONDITIONS.gather(kind),
            "trade_id": pl.Series(np.arange(offset0 + 1, offset0 + n + 1, dtype=np.int64)).cast(
                pl.String
            ),
            "tape": pl.Series([tape], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
            "source": pl.Series([NAME], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        },
        schema=trades.SCHEMA,
    )
