"""How symbols travel in a request URL, and how long they make it.

One rule for the providers that put symbols in URLs (a path segment per symbol, or one
comma-joined query value for many) and for the planner, which packs symbols into requests under
a provider's ``Capabilities.symbols_chars`` budget. A symbol is percent-encoded with nothing
left safe (``BRK/B`` is ``BRK%2FB``), and the comma between two symbols travels as ``%2C``, as
the HTTP client sends them.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

#: The comma between two symbols of a list, as it travels.
SEPARATOR = quote(",", safe="")


def segment(symbol: str) -> str:
    """``symbol`` as one URL path segment: percent-encoded, ``BRK/B`` -> ``BRK%2FB``."""
    return quote(symbol, safe="")


def joined(symbols: Iterable[str]) -> str:
    """``symbols`` as one query value, before the client encodes it: ``AAPL,BRK/B``."""
    return ",".join(symbols)


def symbol_chars(symbol: str) -> int:
    """Characters ``symbol`` takes in a URL."""
    return len(segment(symbol))


def url_chars(symbols: Iterable[str]) -> int:
    """Characters the comma-joined, percent-encoded list of ``symbols`` takes in a URL (what
    ``symbols_chars`` budgets; a client may spell a space shorter, never anything longer)."""
    lengths = [symbol_chars(s) for s in symbols]
    return sum(lengths) + len(SEPARATOR) * max(0, len(lengths) - 1)


def joined_chars(first: int, second: int) -> int:
    """Characters of two non-empty lists, ``first`` and ``second`` characters long, joined."""
    return first + len(SEPARATOR) + second


def fits(chars: int, budget: int | None) -> bool:
    """Whether a list ``chars`` long fits a ``symbols_chars`` budget (None: no limit)."""
    return budget is None or chars <= budget
