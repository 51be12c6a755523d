"""The trade schema every trades file in the lake has (tick data: one row per print)."""

from __future__ import annotations

import polars as pl

#: Column order and types of every trades file (``lake/README.md``, the on-disk contract).
#: ``ts`` is the print's time in nanoseconds, UTC; rows are sorted by it and unique on ``KEY``.
SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("ns", "UTC"),
    "price": pl.Float64(),
    "size": pl.Float64(),
    "exchange": pl.String(),
    "conditions": pl.List(pl.String()),
    "trade_id": pl.String(),
    "tape": pl.String(),
    "source": pl.String(),
}
KEY = ["symbol", "ts", "trade_id"]


def empty() -> pl.DataFrame:
    """A frame with no trades and the lake's trades schema."""
    return pl.DataFrame(schema=SCHEMA)


def flaw(opened: pl.Expr, closed: pl.Expr) -> pl.Expr:
    """Why a print is not stored, or null: a missing key, a price that is NaN, zero or
    negative, a size that is not positive, a time outside its session (``opened`` <= ts <
    ``closed``, both null when ``ts`` falls in no session of the request)."""
    price, size, ts = pl.col("price"), pl.col("size"), pl.col("ts")
    return (
        pl.when(pl.any_horizontal(*(pl.col(c).is_null() for c in KEY)))
        .then(pl.lit("a missing symbol, time or trade id"))
        .when(price.is_null() | price.is_nan() | (price <= 0))
        .then(pl.lit("a price that is missing, NaN, zero or negative"))
        .when(size.is_null() | size.is_nan() | (size <= 0))
        .then(pl.lit("a size that is missing, NaN, zero or negative"))
        .when(opened.is_null())
        .then(pl.lit("a time outside the sessions asked for"))
        .when((ts < opened) | (ts >= closed))
        .then(pl.lit("a time outside its session's trading hours"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the trades schema's columns, in order and cast (a provider's page);
    a column the schema has and ``frame`` lacks is null (``tape``) or a usage bug."""
    have = set(frame.columns)
    columns = [
        (pl.col(c).cast(t) if c in have else pl.lit(None, dtype=t).alias(c))
        for c, t in SCHEMA.items()
    ]
    return frame.select(columns)
