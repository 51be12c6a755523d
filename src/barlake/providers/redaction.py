"""Keeping credentials out of every message: each spelling of a secret, and URLs' queries.

A key travels raw in a header, percent-encoded in a query (``quote`` or ``quote_plus``, with
upper- or lower-case hex), and a vendor's error text may echo the request URL it was sent. So a
message built from a vendor's words or an exception passes through ``redact``: every spelling
of every secret becomes ``***``, and every URL loses its query string. A secret is replaced only
where it stands as a whole value (between characters that cannot be part of it, such as ``=``,
``&``, a space or a quote), so that a short secret never eats into other words: the key ``s``
leaves "attempts" and "plan's" alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from urllib.parse import quote, quote_plus

#: What a secret becomes.
MASK = "***"
#: A URL and its query string (up to a blank, a quote or a bracket that ends the URL).
_URL_QUERY = re.compile(r"""(\b[a-z][a-z0-9+.-]*://[^\s?#"'<>()\[\]]*)\?[^\s#"'<>()\[\]]*""", re.I)
#: A percent escape, in a spelling with either case of hex digits.
_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def spellings(secret: str) -> set[str]:
    """``secret`` raw and as URLs carry it: ``quote`` (with and without ``/`` kept) and
    ``quote_plus``, each with upper- and lower-case hex escapes."""
    encoded = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret)}
    lower = {_ESCAPE.sub(lambda m: m[0].lower(), s) for s in encoded}
    return encoded | lower


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` without any URL query string and with every spelling of ``secrets`` masked."""
    text = without_queries(text)
    for secret in secrets:
        if secret:
            text = _pattern(secret).sub(MASK, text)
    return text


def without_queries(text: str) -> str:
    """``text`` with each URL's query string replaced by ``?...``: a query may hold a key."""
    return _URL_QUERY.sub(r"\1?...", text)


@cache
def _pattern(secret: str) -> re.Pattern[str]:
    """Any spelling of ``secret`` standing as a whole value: not inside a longer word, and
    not continuing one (a percent escape right before it ends a value, as ``%3D`` does)."""
    words = sorted(spellings(secret), key=len, reverse=True)
    alternatives = "|".join(re.escape(w) for w in words)
    # an apostrophe between letters is inside a word ("plan's"), not around a value ('s')
    before = r"(?:(?<![A-Za-z0-9])(?<![A-Za-z]')|(?<=%[0-9A-Fa-f]{2}))"
    after = r"(?![A-Za-z0-9])"
    return re.compile(f"{before}(?:{alternatives}){after}")
