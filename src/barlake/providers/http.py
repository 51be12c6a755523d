"""What every provider speaking HTTP shares: credentials, one client, and one error mapping.

``HttpClient`` wraps one ``httpx.AsyncClient`` per provider (created on first use, so planning
never opens a connection), and ``get_json`` turns every way a response can fail into
``barlake.errors``::

    401, 403                              AuthError        stops the job
    429                                   RateLimitError   retry_after from Retry-After or the
                                                           vendor's reset header
    5xx, timeouts, connection failures,
    truncated bodies, malformed JSON      TransientError   retried with backoff
    other 4xx, unusable URL               PermanentError   symbol= when the request has one

A vendor whose statuses mean something else (Binance's 418 ban, Yahoo's 401 for a missing
crumb) or whose headers matter on success (Binance's used weight) passes ``on_response``: it
sees every response first and may return the error that response stands for.

httpx types never leave this module, and no message carries a credential: every text built
from a response or an exception passes through ``Credentials.redact`` first.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from itertools import repeat
from typing import Any, Literal, TypeAlias

import httpx
import numpy as np
import orjson
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain import bars
from barlake.domain.intervals import Interval, spec
from barlake.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    ProviderError,
    RateLimitError,
    TransientError,
)

#: Longest vendor message quoted in an error.
_QUOTE = 200

#: A vendor's look at a response (status, headers, body) before the shared mapping: the
#: error it stands for, or None to let ``error_for`` decide.
ResponseHook: TypeAlias = Callable[[int, Mapping[str, str], bytes], ProviderError | None]
#: How a vendor writes a bar's time: an RFC-3339 string, or epoch seconds or milliseconds.
Stamps: TypeAlias = Literal["rfc3339", "s", "ms"]


@dataclass(frozen=True)
class Credentials:
    """A vendor key and, for vendors that use one, its secret."""

    key: str
    secret: str | None = None

    def redact(self, text: str) -> str:
        """``text`` with every credential replaced by ``***``."""
        for value in (self.key, self.secret):
            if value:
                text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:  # never print a key, even in a traceback's locals
        return "Credentials(***)"


def credentials(
    vendor: str,
    options: Mapping[str, Any],
    key_env: tuple[str, ...],
    secret_env: tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """The key (and secret) from the first set variable of ``key_env`` (``secret_env``), else
    from ``options['api_key']`` (``options['api_secret']``); AuthError naming them if absent."""
    env = os.environ if environ is None else environ
    key = next((env[n] for n in key_env if env.get(n)), None) or options.get("api_key")
    secret = None
    if secret_env:
        secret = next((env[n] for n in secret_env if env.get(n)), None) or options.get("api_secret")
    if not key or (secret_env and not secret):
        names = " or ".join(key_env) + (f" and {' or '.join(secret_env)}" if secret_env else "")
        msg = (
            f"{vendor} needs credentials: set {names} in the environment, "
            f"or api_key{'/api_secret' if secret_env else ''} under providers.{vendor}.options "
            "in lake.yaml"
        )
        raise AuthError(msg)
    return Credentials(str(key), str(secret) if secret else None)


def check_base_url(vendor: str, url: str) -> str:
    """``url`` without a trailing slash; ConfigError unless it is an http(s) URL."""
    if not url.startswith(("http://", "https://")):
        msg = f"providers.{vendor}.base_url must start with http:// or https://, got {url!r}"
        raise ConfigError(msg)
    return url.rstrip("/")


class HttpClient:
    """One connection pool to one vendor; JSON in, ``barlake.errors`` out."""

    def __init__(self, vendor: str, base_url: str, *, timeout_s: float) -> None:
        self.vendor = vendor
        self.base_url = check_base_url(vendor, base_url)
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        creds: Credentials | None = None,
        symbol: str | None = None,
        reset_header: str | None = None,
        on_response: ResponseHook | None = None,
    ) -> Any:
        """The decoded JSON body of ``GET base_url + path``, or the matching ProviderError.

        ``symbol`` names the request's one symbol, for a PermanentError; ``reset_header`` is
        the vendor's header holding the unix time its rate-limit window resets;
        ``on_response`` sees every response before the shared mapping (see the module doc).
        """
        redact = creds.redact if creds else str
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=httpx.Timeout(self.timeout_s),
                headers={"Accept": "application/json", "Accept-Encoding": "gzip"},
                follow_redirects=False,
                verify=_tls(),
            )
        try:
            # Merged, not replaced: a vendor's next-page URL brings a query of its own.
            url = httpx.URL(path).copy_merge_params(dict(params or {}))
            response = await self._client.get(url, headers=headers)
            body = response.content  # inside the try: a body cut short raises here
        except httpx.TimeoutException as exc:
            msg = f"{self.vendor} did not answer within {self.timeout_s:g}s ({type(exc).__name__})"
            raise TransientError(redact(msg)) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            msg = f"{self.vendor} request could not be sent: {exc}"
            raise PermanentError(redact(msg), symbol=symbol) from None
        except httpx.HTTPError as exc:
            # Connection refused or reset, a body shorter than announced, bad gzip, ...
            msg = f"{self.vendor} connection failed: {type(exc).__name__}: {exc}"
            raise TransientError(redact(msg)) from None
        error = on_response(response.status_code, response.headers, body) if on_response else None
        error = error or error_for(
            self.vendor,
            response.status_code,
            response.headers,
            body,
            symbol=symbol,
            reset_header=reset_header,
            redact=redact,
        )
        if error is not None:
            raise error
        try:
            return _decode(body)
        except ValueError:
            msg = f"{self.vendor} sent malformed JSON ({len(body)} bytes): {_quote(body)}"
            raise TransientError(redact(msg)) from None

    async def aclose(self) -> None:
        """Close the connection pool (a new one opens if the client is used again)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


def error_for(
    vendor: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    symbol: str | None = None,
    reset_header: str | None = None,
    now: float | None = None,
    redact: Callable[[str], str] = str,
) -> ProviderError | None:
    """The error a response with ``status`` stands for, or None for a success; ``redact``
    cleans the vendor's words before they are quoted."""
    if 200 <= status < 300:
        return None
    said = redact(_message(body))
    what = f"{vendor} answered HTTP {status}" + (f": {said}" if said else "")
    if status in (401, 403):
        return AuthError(f"{what}; check the credentials and the plan's entitlements")
    if status == 429:
        wait = retry_after(headers, reset_header, time.time() if now is None else now)
        tail = f"; retry in {wait:g}s" if wait is not None else "; retry later"
        return RateLimitError(what + tail, retry_after=wait)
    if status >= 500:
        return TransientError(f"{what}; retrying may help")
    if 300 <= status < 400:
        return PermanentError(f"{what} (a redirect; check base_url)", symbol=symbol)
    return PermanentError(what, symbol=symbol)


def retry_after(headers: Mapping[str, str], reset_header: str | None, now: float) -> float | None:
    """Seconds to wait: ``Retry-After`` (seconds or an HTTP date), else the vendor's reset
    header (unix seconds), else None."""
    headers = {k.lower(): v for k, v in headers.items()}
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now)
        except (TypeError, ValueError):
            pass
    reset = headers.get(reset_header.lower()) if reset_header else None
    if reset:
        try:
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _decode(body: bytes) -> Any:
    """JSON through orjson (about 2.5 times faster on a page of bars); what it refuses but the
    standard parser accepts (NaN, integers beyond 64 bits) still goes through the latter."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


@functools.cache
def _tls() -> ssl.SSLContext:
    """httpx's default TLS context, built once: loading the CA bundle takes 50 ms."""
    return httpx.create_ssl_context()


def _message(body: bytes) -> str:
    """The vendor's own words: ``message`` or ``error`` of a JSON body, else the raw text."""
    try:
        data = json.loads(body)
    except ValueError:
        return _quote(body)
    if isinstance(data, dict):
        for key in ("message", "error", "msg", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])[:_QUOTE]
    return _quote(body)


def _quote(body: bytes) -> str:
    text = body[:_QUOTE].decode("utf-8", "replace").strip()
    return " ".join(text.split()) + ("..." if len(body) > _QUOTE else "")


# --- bars on the wire ----------------------------------------------------------------------

#: The lake's bar columns and the keys Alpaca and Polygon both give them on the wire.
WIRE_KEYS = {
    "open": "o",
    "high": "h",
    "low": "l",
    "close": "c",
    "volume": "v",
    "vwap": "vw",
    "trades": "n",
}

#: Alpaca's spelling of a time: RFC 3339 in UTC, whole seconds.
_UTC_SECONDS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def wire_bars(
    vendor: str,
    objects: Sequence[Any],
    *,
    symbols: str | Sequence[str],
    source: str,
    stamps: Stamps,
) -> pl.DataFrame:
    """Bars in the lake's schema from bar objects keyed as ``WIRE_KEYS``, with their time
    under ``t``: ``wire_columns`` of their values.

    ``symbols`` is the page's one symbol, or each object's. TransientError naming the first
    item of ``objects`` that is not an object.
    """
    if not set(map(type, objects)) <= {dict}:
        for item in objects:
            if not isinstance(item, dict):
                msg = f"{vendor} sent a bar that is not an object: {_quote(repr(item).encode())}"
                raise TransientError(msg)
    keys = {"ts": "t", **WIRE_KEYS}
    columns = {name: list(map(dict.get, objects, repeat(key))) for name, key in keys.items()}
    return wire_columns(columns, symbols=symbols, source=source, stamps=stamps)


def wire_columns(
    columns: Mapping[str, Sequence[Any] | pl.Series],
    *,
    symbols: str | Sequence[str],
    source: str,
    stamps: Stamps,
) -> pl.DataFrame:
    """Bars in the lake's schema from a page's columns of JSON values, keyed by the lake's
    names: ``ts`` and any of ``WIRE_KEYS`` (one left out is null).

    ``ts`` holds RFC-3339 strings, or epoch seconds or milliseconds, as ``stamps`` says.
    Values of the wrong type become nulls rather than errors, so that impossible bars reach
    the scheduler's validation (and become that symbol's error) instead of failing the whole
    page. A column whose values all have the expected JSON types is converted in one go; any
    other goes value by value, by the same rules. A column may also be a Series already of
    its lake type. ``symbols`` is the page's one symbol, or each bar's.
    """
    height = len(columns["ts"])
    if stamps == "rfc3339":
        ts = _times(_typed(columns["ts"], pl.String(), _TEXT, _text))
    else:
        epoch = _typed(columns["ts"], pl.Int64(), _WHOLE, _whole)
        ts = pl.from_epoch(epoch, time_unit=stamps).cast(pl.Datetime("us"))
        ts = ts.dt.replace_time_zone("UTC")
    values = {}
    for name in WIRE_KEYS:
        raw = columns.get(name)
        dtype = bars.SCHEMA[name]
        if raw is None:
            values[name] = pl.Series(name, [None] * height, dtype=dtype)
        elif name == "trades":
            values[name] = _typed(raw, dtype, _WHOLE, _integer)
        else:
            values[name] = _typed(raw, dtype, _NUMBER, _number)
    named = [symbols] * height if isinstance(symbols, str) else symbols
    frame = pl.DataFrame(
        {
            "symbol": pl.Series(values=named, dtype=pl.String),
            "ts": ts,
            **values,
            "source": pl.Series([source] * height, dtype=pl.String),
        }
    )
    return frame.select(list(bars.SCHEMA))


def to_sessions(frame: pl.DataFrame, interval: Interval, calendar: Calendar) -> pl.DataFrame:
    """Vendor bars keyed as the lake keys them.

    Daily bars move to their session date at 00:00 UTC (vendors stamp them at midnight or at
    the close, in exchange time). Intraday bars outside their session's open and close
    (pre- and post-market) are dropped: the lake stores regular sessions only, which is also
    what gap detection counts. Bars without a timestamp stay, for validation to reject.
    """
    local = pl.col("ts").dt.convert_time_zone(calendar.tz)
    if not spec(interval).intraday:
        day = local.dt.date().cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return frame.with_columns(day.alias("ts"))
    if frame.is_empty():
        return frame
    days = frame.select(local.dt.date().alias("day")).to_series().drop_nulls()
    lo = np.datetime64(str(days.min()), "D")
    hi = np.datetime64(str(days.max()), "D") + 1
    i, j = np.searchsorted(calendar.sessions, [lo, hi])
    table = pl.DataFrame(
        {
            "_day": calendar.sessions[i:j].astype("datetime64[D]"),
            "_open": calendar.opens[i:j],
            "_close": calendar.closes[i:j],
        }
    ).with_columns(pl.col("_day").cast(pl.Date))
    micros = pl.col("ts").dt.epoch("us")
    joined = frame.with_columns(local.dt.date().alias("_day")).join(table, on="_day", how="left")
    inside = (micros >= pl.col("_open")) & (micros < pl.col("_close"))
    return joined.filter(pl.col("ts").is_null() | inside.fill_null(value=False)).select(
        frame.columns
    )


#: The JSON types each kind of column converts in one go.
_NUMBER: frozenset[type] = frozenset({int, float, type(None)})
_WHOLE: frozenset[type] = frozenset({int, type(None)})
_TEXT: frozenset[type] = frozenset({str, type(None)})


def _typed(
    values: Sequence[Any] | pl.Series,
    dtype: pl.DataType,
    kinds: frozenset[type],
    rule: Callable[[Any], Any],
) -> pl.Series:
    """``values`` as a Series of ``dtype``, each read by ``rule``: in one go when every value
    is of ``kinds`` (which ``rule`` keeps as they are), else value by value."""
    if isinstance(values, pl.Series):
        return values.cast(dtype, strict=True)
    if set(map(type, values)) <= kinds:
        return pl.Series(values=values, dtype=dtype)
    return pl.Series(values=[rule(v) for v in values], dtype=dtype)


def _times(text: pl.Series) -> pl.Series:
    """RFC-3339 strings as UTC instants; null where unreadable.

    Alpaca's spelling (``2024-06-03T13:30:00Z``) is read with its fixed format, several times
    faster than letting polars find the format; a page with any other (offsets, fractions of
    a second, an impossible date) is left to polars.
    """
    if text.drop_nulls().str.contains(_UTC_SECONDS).all():
        fixed = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", strict=False)
        if fixed.null_count() == text.null_count():
            return fixed.dt.replace_time_zone("UTC")
    return text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
