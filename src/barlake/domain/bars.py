"""The bar schema every file in the lake has, and the checks bars pass before they are stored."""

from __future__ import annotations

from typing import Literal

import polars as pl

from barlake.errors import ValidationError

#: Column order and types of every bar file (``lake/README.md``, the on-disk contract).
SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "vwap": pl.Float64(),
    "trades": pl.Int64(),
    "source": pl.String(),
}
KEY = ["symbol", "ts"]
PRICES = ["open", "high", "low", "close"]


def empty() -> pl.DataFrame:
    """A frame with no bars and the lake's schema."""
    return pl.DataFrame(schema=SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with exactly the lake's columns, in order, cast to the lake's types."""
    missing = [c for c in (*KEY, *PRICES) if c not in frame.columns]
    if missing:
        msg = f"bars lack the column(s) {', '.join(missing)}"
        raise ValidationError(msg)
    exprs = []
    for name, dtype in SCHEMA.items():
        col = pl.col(name) if name in frame.columns else pl.lit(None)
        if name == "ts" and name in frame.columns:
            ts_type = frame.schema["ts"]
            if isinstance(ts_type, pl.Datetime) and ts_type.time_zone is None:
                col = col.dt.replace_time_zone("UTC")
            elif isinstance(ts_type, pl.Datetime):
                col = col.dt.convert_time_zone("UTC")
        exprs.append(col.cast(dtype).alias(name))
    return frame.select(exprs)


#: Why a bar is impossible; ``lake check`` reports stored bars under the same names.
Flaw = Literal["key", "price", "ohlc", "volume"]

_BAD_PRICE = pl.any_horizontal(
    [pl.col(c).is_null() | ~pl.col(c).is_finite() | (pl.col(c) <= 0) for c in PRICES]
)

#: What makes a bar impossible: per flaw, an expression true on the bars that have it (never
#: null). A bar with a bad price is not also judged on its high and low.
FLAWS: dict[Flaw, pl.Expr] = {
    "key": pl.col("symbol").is_null() | pl.col("ts").is_null(),
    "price": _BAD_PRICE,
    "ohlc": ~_BAD_PRICE
    & ((pl.col("high") < pl.max_horizontal(PRICES)) | (pl.col("low") > pl.min_horizontal(PRICES))),
    "volume": pl.col("volume").is_null() | ~pl.col("volume").is_finite() | (pl.col("volume") < 0),
}

#: True on rows with at least one price. A row without any (all NULL) is no bar of any session:
#: it covers nothing, though ``lake check`` reports it.
PRICED = pl.any_horizontal([pl.col(c).is_not_null() for c in PRICES])

#: True on the bars with any flaw.
INVALID = pl.any_horizontal(list(FLAWS.values()))


def flaw() -> pl.Expr:
    """Each bar's first flaw in ``FLAWS`` order, or null for a bar that may be stored; a column
    called ``flaw``."""
    whens = [pl.when(bad).then(pl.lit(name)) for name, bad in FLAWS.items()]
    return pl.coalesce(whens).alias("flaw")


def invalid_rows(frame: pl.DataFrame) -> pl.Series:
    """A boolean mask of bars that are impossible (``FLAWS``): non-finite or non-positive
    prices, high below the others, low above the others, negative volume, or missing keys."""
    return frame.select(INVALID.alias("bad")).to_series()
