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
from a response or an exception passes through ``Credentials.redact`` first (every spelling of
a key, and every URL's query string, see ``redaction``).
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias

import httpx
import orjson

from barlake.errors import (
    AuthError,
    ConfigError,
    PermanentError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from barlake.providers import redaction

#: Longest vendor message quoted in an error.
_QUOTE = 200

#: A vendor's look at a response (status, headers, body) before the shared mapping: the
#: error it stands for, or None to let ``error_for`` decide.
ResponseHook: TypeAlias = Callable[[int, Mapping[str, str], bytes], ProviderError | None]
#: How a vendor writes a bar's time: an RFC-3339 string, or epoch seconds or milliseconds.


@dataclass(frozen=True)
class Credentials:
    """A vendor key and, for vendors that use one, its secret."""

    key: str
    secret: str | None = None

    def redact(self, text: str) -> str:
        """``text`` with every spelling of every credential replaced by ``***`` and no URL
        query string (``redaction.redact``)."""
        return redaction.redact(text, (self.key, self.secret))

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
        redact = creds.redact if creds else redaction.without_queries
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
            said = clip(redact(_text(body)))  # masked whole, then cut: no half key survives
            msg = f"{self.vendor} sent malformed JSON ({len(body)} bytes): {said}"
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
    redact: Callable[[str], str] = redaction.without_queries,
) -> ProviderError | None:
    """The error a response with ``status`` stands for, or None for a success; ``redact``
    cleans the vendor's words before they are quoted."""
    if 200 <= status < 300:
        return None
    said = clip(redact(_message(body)))  # masked whole, then cut: no half key survives
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
        return _text(body)
    if isinstance(data, dict):
        for key in ("message", "error", "msg", "detail"):
            if isinstance(data.get(key), str):
                return " ".join(str(data[key]).split())
    return _text(body)


def _text(body: bytes) -> str:
    """A vendor's whole answer as one line of text."""
    return " ".join(body.decode("utf-8", "replace").split())


def clip(text: str) -> str:
    """The start of ``text``, as error messages quote a vendor (mask secrets before: a cut
    could leave part of one)."""
    return text[:_QUOTE] + ("..." if len(text) > _QUOTE else "")


def quoted(body: bytes) -> str:
    """The start of a vendor's answer, on one line, as error messages quote it."""
    return clip(_text(body[: _QUOTE * 4]))
