"""Symbols: the catalog's columns describing one, what names are accepted, and how a name
becomes a path segment."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

from barlake.errors import UsageError

_MAX_LENGTH = 64
_SEPARATORS = re.compile(r"[, \t\r\n]+")
#: Unicode categories that print as nothing or as a blank: format characters (zero-width
#: spaces, joiners, byte-order marks, direction marks), separators (no-break and other
#: spaces) and private or unassigned code points. A name holding one looks like a ticker and
#: is not one.
_INVISIBLE = frozenset({"Cf", "Zs", "Zl", "Zp", "Co", "Cn"})
#: Every column of the catalog's symbols table, in table order (``catalog.schema.SYMBOLS``
#: gives their types; the migrations create the table; ``tests/test_catalog.py`` checks that
#: they agree).
SYMBOL_COLUMNS = (
    "symbol",
    "name",
    "exchange",
    "asset_class",
    "calendar",
    "listed_on",
    "delisted_on",
    "market_cap",
    "tier",
    "layer",
    "layer1_qualified",
    "layer2_qualified",
    "layer3_qualified",
    "liquidity_score",
    "layer1_updated",
    "layer2_updated",
    "layer3_updated",
    "active",
    "updated_at",
)
#: What a symbols file may carry: the descriptive columns (layers have their own import).
IMPORT_COLUMNS = SYMBOL_COLUMNS[: SYMBOL_COLUMNS.index("market_cap") + 1]
#: Which of layers 1-3 a symbol qualifies for (``universe.layers``).
LAYER_FLAGS = ("layer1_qualified", "layer2_qualified", "layer3_qualified")


def check_symbol(name: str) -> str:
    """``name`` stripped, or a UsageError when it is empty, could escape the lake or holds a
    character no ticker has (a control or invisible character, ``..``, a slash at an end)."""
    symbol = name.strip()
    problem = None
    if not symbol:
        problem = "is empty"
    elif ".." in symbol or symbol == "." or symbol.startswith(("/", "\\")):
        problem = "could escape the lake directory"
    elif symbol.endswith(("/", "\\")):
        problem = "ends with a slash"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in symbol):
        problem = "contains a control character"
    elif invisible := next(
        (c for c in symbol if c != " " and unicodedata.category(c) in _INVISIBLE), None
    ):
        what = unicodedata.name(invisible, "unnamed")
        problem = f"contains an invisible character U+{ord(invisible):04X} ({what}); retype it"
    elif len(symbol) > _MAX_LENGTH:
        problem = f"is longer than {_MAX_LENGTH} characters"
    if problem:
        msg = f"symbol {name!r} {problem}; use a ticker such as AAPL, BRK/B or BTCUSDT"
        raise UsageError(msg)
    return symbol


def normal_symbol(name: str) -> str:
    """``name`` checked (``check_symbol``) and spelled as the lake stores it: in upper case.

    Tickers are case-blind in every asset class the lake serves, and the vendors spell them in
    upper case: an equity's ``aapl`` is ``AAPL`` and ``brk/b`` is ``BRK/B``, a crypto pair's
    ``btcusdt`` is ``BTCUSDT`` and ``eth-usd`` is ``ETH-USD`` (its separator is kept: the
    providers translate each spelling into their own)."""
    return check_symbol(name).upper()


#: Quote assets a crypto pair written without a separator ends with (Binance's ``BTCUSDT``,
#: ``ETHBTC``, ``BNBBTC``): stablecoins and the coins pairs are commonly quoted in.
CRYPTO_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB")
#: Currencies a crypto pair written with a separator may also be quoted in (Yahoo's and
#: Coinbase's ``ETH-USD``, ccxt's ``BTC/EUR``).
FIAT_QUOTES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "KRW", "TRY", "BRL")
_PAIR = re.compile(r"^([A-Z0-9]{2,12})[-/]([A-Z0-9]{2,6})$")
_BASE = re.compile(r"^[A-Z0-9]*[A-Z][A-Z0-9]*$")


def is_crypto_pair(symbol: str) -> bool:
    """Whether ``symbol`` (in any case) names a crypto pair: a base of two or more letters and
    digits, then a quote asset, either written after ``-`` or ``/`` (``ETH-USD``,
    ``BTC/USDT``; a quote of ``CRYPTO_QUOTES`` or ``FIAT_QUOTES``) or joined to it
    (``BTCUSDT``; a quote of ``CRYPTO_QUOTES``). Share classes (``BRK/B``, ``BRK-B``) and
    one-letter bases (``GBTC``, ``ABNB`` are equities) are not pairs."""
    name = symbol.strip().upper()
    pair = _PAIR.match(name)
    if pair:
        base, quote = pair.groups()
        return bool(_BASE.match(base)) and quote in CRYPTO_QUOTES + FIAT_QUOTES
    for quote in CRYPTO_QUOTES:
        base = name.removesuffix(quote)
        if base != name and len(base) >= 2 and _BASE.match(base):
            return True
    return False


def split_symbols(values: str | list[str] | tuple[str, ...]) -> list[str]:
    """Symbols from comma- or space-separated text, checked and upper-cased
    (``normal_symbol``), in order, without repeats; UsageError when there are none (an empty
    ``--symbols`` or ``lake symbols add ''``)."""
    parts = [values] if isinstance(values, str) else list(values)
    out: dict[str, None] = {}
    for part in parts:
        # ASCII separators only: a no-break space inside a name is refused, not a separator.
        for name in filter(None, _SEPARATORS.split(part)):
            out[normal_symbol(name)] = None
    if not out:
        given = ", ".join(map(repr, parts)) or "the arguments"
        msg = f"no symbol in {given}; give names such as AAPL,MSFT"
        raise UsageError(msg)
    return list(out)


def encode(symbol: str) -> str:
    """The path segment for ``symbol``: percent-encoded, so ``BRK/B`` -> ``BRK%2FB``."""
    return quote(check_symbol(symbol), safe="")


def decode(segment: str) -> str:
    return unquote(segment)
