"""The rule comparing stored minute bars with the stored trades of the same sessions: bars
built from the prints (``domain.tradebars``, the vendors' condition filters) should be the bars
the vendor served. Pure: both frames in, findings out."""

from __future__ import annotations

import polars as pl

from barlake.domain.datasets import TRADES
from barlake.quality.rules import Finding

#: Relative difference of a price or volume below which a bar and its trades agree.
TOLERANCE = 1e-6
_FIELDS = ("open", "high", "low", "close", "volume")


def trades_vs_bars(symbol: str, bars: pl.DataFrame, built: pl.DataFrame) -> list[Finding]:
    """A ``trades_mismatch`` warning when ``symbol``'s stored 1-minute ``bars`` and the bars
    ``built`` from its trades (same sessions) differ: a minute only one of them has, or a
    field apart by more than ``TOLERANCE`` (relative)."""
    if bars.is_empty() and built.is_empty():
        return []
    left = bars.select("ts", *_FIELDS)
    right = built.select("ts", *(pl.col(c).alias(f"{c}_t") for c in _FIELDS))
    both = left.join(right, on="ts", how="full", coalesce=True)
    apart = pl.any_horizontal(
        *(
            (pl.col(c) - pl.col(f"{c}_t")).abs()
            > TOLERANCE * pl.max_horizontal(pl.col(c).abs(), pl.col(f"{c}_t").abs(), pl.lit(1.0))
            for c in _FIELDS
        )
    )
    missing = pl.col("open").is_null() | pl.col("open_t").is_null()
    bad = both.filter(missing | apart.fill_null(value=True)).sort("ts")
    if bad.is_empty():
        return []
    only_bars = bad.filter(pl.col("open_t").is_null()).height
    only_trades = bad.filter(pl.col("open").is_null()).height
    differ = bad.height - only_bars - only_trades
    message = (
        f"{bad.height} minute(s) where the stored 1min bars and the bars built from the "
        f"trades disagree: {differ} with different values, {only_bars} without trades, "
        f"{only_trades} without a stored bar"
    )
    first, last = bad["ts"][0], bad["ts"][-1]
    return [
        Finding(
            "trades_mismatch",
            "warning",
            symbol,
            TRADES,
            first.isoformat(),
            last.isoformat(),
            message,
        )
    ]
