"""Resampling: coarser bars built from finer ones, aggregated as the vendors aggregate theirs.

Per bucket (the bars of one symbol whose starts share a coarser bar's start): open = the first
bar's open, high = the highest high, low = the lowest low, close = the last bar's close, volume
= the sum, vwap = the mean of the vwaps weighted by volume (null when no bar with a vwap has
volume), trades = the sum (null when no bar has a count). The bucket itself, the start the
coarser bar is labelled with, is the caller's: the clock grid of the exchange for intraday bars
(``calendars.calendar.bar_start``), the exchange week or calendar month for daily ones.

Which resamples there are: an intraday interval from a finer intraday one that divides it
(1min -> 5min, 15min, 30min, 1hour; 5min -> 15min, ...), and ``1week`` and ``1month`` from
daily bars. Weeks and months are no interval of the lake (never stored, planned or gap-checked:
their coverage is the daily bars'); they exist only as a resample on read.
"""

from __future__ import annotations

from typing import Literal, get_args

import polars as pl

from barlake.domain.bars import SCHEMA
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.errors import UsageError

#: Bars coarser than a session, built from daily bars on read only.
Period = Literal["1week", "1month"]
PERIODS: tuple[Period, ...] = get_args(Period)

#: The ledger's provider of ranges filled by resampling stored bars (no vendor was asked).
RESAMPLED = "resample"

_MARK = " resampled from "


def sources(interval: str) -> list[Interval]:
    """The intervals ``interval`` can be resampled from, finest first."""
    if interval in PERIODS:
        return ["1day"]
    target = spec(interval)
    if not target.intraday:
        return []
    return [
        i
        for i in INTERVALS
        if spec(i).intraday
        and spec(i).seconds < target.seconds
        and not target.seconds % spec(i).seconds
    ]


def check(interval: str, source: str) -> Interval:
    """``source`` as an interval, when ``interval`` bars can be built from it; else a
    UsageError saying which sources can."""
    if interval not in PERIODS:
        spec(interval)
    fine = spec(source).name
    allowed = sources(interval)
    if fine not in allowed:
        hint = f"resample it from {' or '.join(allowed)}" if allowed else "it is stored as it is"
        msg = (
            f"cannot resample {interval} bars from {source} bars: the source must be a finer "
            f"interval whose bars fit whole into each {interval} bar; {hint}"
        )
        raise UsageError(msg)
    return fine


def aggregate(frame: pl.LazyFrame, bucket: pl.Expr, source: Interval | None) -> pl.LazyFrame:
    """One bar per symbol and ``bucket`` (an expression of each bar's coarser start, UTC) from
    ``frame``'s bars, in the lake's schema and sorted by (symbol, ts). ``source`` (the finer
    interval) marks the ``source`` column as resampled (``"alpaca resampled from 1min"``);
    None keeps the first bar's source (a vendor's own aggregation)."""
    weight = pl.when(pl.col("vwap").is_not_null()).then(pl.col("volume"))
    weighted = (pl.col("vwap") * weight).sum()
    counted = pl.col("trades").is_not_null().any()
    grouped = (
        frame.sort("symbol", "ts")
        .group_by("symbol", bucket.alias("_bucket"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            pl.when(weight.sum() > 0).then(weighted / weight.sum()).alias("vwap"),
            pl.when(counted).then(pl.col("trades").sum()).alias("trades"),
            pl.col("source").first(),
        )
    )
    # The weighted mean lies between the lowest low and the highest high; rounding may not.
    vwap = pl.col("vwap").clip(pl.col("low"), pl.col("high"))
    out = grouped.with_columns(vwap, pl.col("_bucket").alias("ts"))
    if source is not None:
        out = out.with_columns(marked(source))
    return out.select([pl.col(c).cast(t) for c, t in SCHEMA.items()]).sort("symbol", "ts")


def marked(source: Interval) -> pl.Expr:
    """The ``source`` column of bars resampled from ``source`` bars: the vendor's name and
    where they came from; bars resampled twice keep the finest source they came from."""
    src = pl.col("source").fill_null("unknown")
    return (
        pl.when(src.str.contains(_MARK, literal=True))
        .then(src)
        .otherwise(src + pl.lit(_MARK + source))
        .alias("source")
    )
