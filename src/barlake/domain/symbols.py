"""Symbols: the catalog's columns describing one, what names are accepted, and how a name
becomes a path segment."""

from __future__ import annotations

from urllib.parse import quote, unquote

import polars as pl

from barlake.errors import UsageError

_MAX_LENGTH = 64
_UTC = pl.Datetime("us", "UTC")

#: Every column of the catalog's symbols table, in table order, with its type as the catalog
#: returns it (its migrations create the table; ``tests/test_catalog.py`` checks they agree).
COLUMNS: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "name": pl.String(),
    "exchange": pl.String(),
    "asset_class": pl.String(),
    "calendar": pl.String(),
    "listed_on": pl.Date(),
    "delisted_on": pl.Date(),
    "market_cap": pl.Float64(),
    "tier": pl.String(),
    "layer": pl.Int32(),
    "layer1_qualified": pl.Boolean(),
    "layer2_qualified": pl.Boolean(),
    "layer3_qualified": pl.Boolean(),
    "liquidity_score": pl.Decimal(10, 2),
    "layer1_updated": _UTC,
    "layer2_updated": _UTC,
    "layer3_updated": _UTC,
    "active": pl.Boolean(),
    "updated_at": _UTC,
}
SYMBOL_COLUMNS = tuple(COLUMNS)
#: What a symbols file may carry: the descriptive columns (layers have their own import).
IMPORT_COLUMNS = SYMBOL_COLUMNS[: SYMBOL_COLUMNS.index("market_cap") + 1]
IMPORT_TYPES = {c: COLUMNS[c] for c in IMPORT_COLUMNS}
#: Which of layers 1-3 a symbol qualifies for (``universe.layers``).
LAYER_FLAGS = ("layer1_qualified", "layer2_qualified", "layer3_qualified")


def check_symbol(name: str) -> str:
    """``name`` stripped, or a UsageError when it is empty or could escape the lake."""
    symbol = name.strip()
    problem = None
    if not symbol:
        problem = "is empty"
    elif symbol in {".", ".."} or symbol.startswith("/") or symbol.startswith("\\"):
        problem = "could escape the lake directory"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in symbol):
        problem = "contains a control character"
    elif len(symbol) > _MAX_LENGTH:
        problem = f"is longer than {_MAX_LENGTH} characters"
    if problem:
        msg = f"symbol {name!r} {problem}; use a ticker such as AAPL, BRK/B or BTCUSDT"
        raise UsageError(msg)
    return symbol


def split_symbols(values: str | list[str] | tuple[str, ...]) -> list[str]:
    """Symbols from comma- or space-separated text, checked, in order, without repeats."""
    parts = [values] if isinstance(values, str) else list(values)
    out: dict[str, None] = {}
    for part in parts:
        for name in part.replace(",", " ").split():
            out[check_symbol(name)] = None
    return list(out)


def encode(symbol: str) -> str:
    """The path segment for ``symbol``: percent-encoded, so ``BRK/B`` -> ``BRK%2FB``."""
    return quote(check_symbol(symbol), safe="")


def decode(segment: str) -> str:
    return unquote(segment)
