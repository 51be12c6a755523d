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
