"""Symbol names: what is accepted, and how a name becomes a path segment."""

from __future__ import annotations

from urllib.parse import quote, unquote

from barlake.errors import UsageError

_MAX_LENGTH = 64


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
