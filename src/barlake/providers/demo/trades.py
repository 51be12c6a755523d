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

from datetime import date

import numpy as np
import polars as pl

from barlake.domain import trades
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.providers.demo.noise import counter_bits, stream_base, uniform
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
    (plan,) = draws([symbol], "1min", DateRange(session, session + ONE_DAY), NEVER)
    bars = frame_of([plan], "1min")
    if bars.is_empty():
        return trades.empty()
    profile = profile_of(symbol)
    minute_us = bars["ts"].dt.epoch("us").to_numpy()
    o, h, lo, c, v, vwap = (
        bars[col].to_numpy() for col in ("open", "high", "low", "close", "volume", "vwap")
    )
    if per_minute is None:
        counts = np.maximum(bars["trades"].to_numpy(), MIN_PER_MINUTE).astype(np.int64)
    else:
        counts = np.full(len(bars), max(per_minute, MIN_PER_MINUTE), dtype=np.int64)
    n = int(counts.sum())
    starts = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(bars), dtype=np.int64), counts)
    pos = np.arange(n, dtype=np.int64) - starts[owner]

    day = int(np.datetime64(session, "D").astype(np.int64))
    base = stream_base(profile.streams[_TRADES_STREAM], day)
    bits = counter_bits(base, np.arange(n, dtype=np.int64))
    bar_bits = counter_bits(base ^ 0x5BD1E995, np.arange(len(bars), dtype=np.int64))

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
    w_sum = np.bincount(owner, weights=weight, minlength=len(bars))
    vwap_f = np.bincount(owner, weights=weight * price, minlength=len(bars)) / w_sum
    span = h - lo
    room = np.minimum(vwap - lo, h - vwap)
    miss = np.abs(vwap - vwap_f)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(miss > 0, 0.9 * room / miss, _FILLER_SHARE_MAX)
    ratio = np.minimum(ratio, _FILLER_SHARE_MAX)
    filler_volume = v * ratio / (1 + ratio)
    rest = v - filler_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        hi_share = np.where(
            span > 0, (vwap * v - vwap_f * filler_volume - lo * rest) / span, rest / 2
        )
    size = weight * (filler_volume / w_sum)[owner]
    size[is_hi] = hi_share[owner[is_hi]]
    size[is_lo] = (rest - hi_share)[owner[is_lo]]

    # Times: n + 1 gaps per minute, cumulated, scaled onto the minute; strictly increasing.
    gap = uniform(bits, 36, 16)
    total = np.cumsum(gap)
    before = total[starts] - gap[starts]
    upto = total - before[owner]
    minute_total = np.bincount(owner, weights=gap, minlength=len(bars)) + uniform(bar_bits, 48, 16)
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
            "symbol": pl.Series([symbol], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "price": price,
            "size": size,
            "exchange": exchange,
            "conditions": _CONDITIONS.gather(kind),
            "trade_id": pl.Series(np.arange(1, n + 1, dtype=np.int64)).cast(pl.String),
            "tape": pl.Series([tape], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
            "source": pl.Series([NAME], dtype=pl.String).gather(np.zeros(n, dtype=np.int64)),
        },
        schema=trades.SCHEMA,
    )
