"""Binance spot klines.

Public market data: no key. A request is ``GET /api/v3/klines`` for one symbol (``BTCUSDT``, no
separator: the lake's ``BTC/USDT`` is sent as ``BTCUSDT``) with ``interval``,
``startTime``/``endTime`` (epoch ms, both inclusive, on open times) and ``limit`` (at most 1000
klines). Its pages advance ``startTime`` to the open of the kline after the last one received,
and end with a short page or at ``endTime``; a kline opening outside the
``startTime``..``endTime`` it was asked for is dropped. Klines are positional arrays with
decimal strings; the bar is labelled by its open time, daily klines by their UTC date (crypto
trades on the ``24/7`` calendar). The vwap is quote-asset volume over volume; there are no
adjustments.

Limits are per IP: 6,000 request weight a minute, 2 per klines call. Every answer's
``X-MBX-USED-WEIGHT-1M`` is kept, and a page that would pass ``weight_limit`` waits for the
next minute (a RateLimitError before anything is sent) rather than earn a 429, which Binance
escalates to an IP ban (418) when clients keep going. A 429 waits ``Retry-After``; a 418 does
too when the ban is short, else it stops the job. 403 (the firewall) and 451 (a restricted
location) stop it as well; ``-1121 Invalid symbol.`` fails that symbol.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from datetime import time as clock_time
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.calendars.calendar import CRYPTO_CALENDAR, get_calendar
from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.errors import (
    AuthError,
    PermanentError,
    ProviderError,
    RateLimitError,
    TransientError,
    UnknownAtProviderError,
)
from barlake.providers.base import Capabilities, Page, Request
from barlake.providers.http import HttpClient, retry_after
from barlake.providers.wire import to_sessions, wire_columns

NAME = "binance"
BASE_URL = "https://api.binance.com"  # or https://data-api.binance.vision (market data only)
PATH = "/api/v3/klines"
WEIGHT = 2  # of one klines call (rest-api.md; 1 before 2023)
WEIGHT_HEADER = "x-mbx-used-weight-1m"
WIRE: dict[Interval, str] = {
    "1min": "1m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "1hour": "1h",
    "1day": "1d",
}
#: A request's pages are held in memory until it completes: about 10,000 klines at most.
MAX_DAYS: dict[Interval, int] = {"1min": 7, "5min": 31, "15min": 92, "30min": 183, "1hour": 366}


def wire_symbol(symbol: str) -> str:
    """A pair as Binance spells it, without a separator: ccxt's ``BTC/USDT`` and the dashed
    ``BTC-USDT`` are ``BTCUSDT`` (the bars keep the lake's name)."""
    return symbol.replace("/", "").replace("-", "")


class BinanceOptions(BaseModel):
    """``providers.binance.options`` in lake.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    page_limit: int = Field(default=1000, ge=1, le=1000, description="`limit`: klines per page.")
    weight_limit: int = Field(
        default=6000, ge=WEIGHT, description="Request weight a minute this IP may use."
    )
    max_ban_wait_s: float = Field(
        default=300, ge=0, description="Wait out an IP ban (HTTP 418) this short; else stop."
    )


class BinanceProvider:
    """Binance spot klines, one page per ``fetch_page``."""

    def __init__(self, config: ProviderConfig | None = None, *, name: str = NAME) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(BinanceOptions, config.options, f"providers.{name}.options")
        self.capabilities = Capabilities(
            intervals=INTERVALS,
            symbols_per_request=1,
            bars_per_page=self.options.page_limit,
            # 6,000 weight a minute is 3,000 calls; leave most of it to other programs.
            rate_limit_per_min=config.rate_limit_per_min or 1200,
            auth_env=(),
            max_days=dict(MAX_DAYS),
            refuses_unknown=True,  # -1121 "Invalid symbol"; a known pair before listing is empty
        )
        self.calendar = get_calendar(CRYPTO_CALENDAR)
        #: The IP's used weight in the current minute, as the last answer said, and when.
        self.used_weight: int | None = None
        self.weight_at = 0.0
        self._http = HttpClient(name, config.base_url or BASE_URL, timeout_s=config.timeout_s)

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One page of ``request``; the cursor is ``"<symbol index> <next startTime>"``."""
        self._check_weight()
        index, start = _parse_cursor(cursor)
        symbol = request.symbols[index]
        first = _ms(request.range.start)
        last = _ms(request.range.end) - 1
        start = first if start is None else start
        limit = self.options.page_limit
        data = await self._http.get_json(
            PATH,
            params={
                "symbol": wire_symbol(symbol),
                "interval": WIRE[request.interval],
                "startTime": str(start),
                "endTime": str(last),
                "limit": str(limit),
            },
            symbol=symbol,
            on_response=lambda status, headers, body: self._inspect(status, headers, body, symbol),
        )
        step = spec(request.interval).seconds * 1000
        bars, latest = _klines(data, symbol, self.name, (start, last), step)
        frame = to_sessions(bars, request.interval, self.calendar)
        following = latest + step if latest is not None else None
        if bars.height >= limit and following is not None and start < following <= last:
            token: str | None = f"{index} {following}"
        else:
            token = f"{index + 1}" if index + 1 < len(request.symbols) else None
        return Page(frame, token)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _check_weight(self) -> None:
        """RateLimitError until the next minute when the last answer left no room for a call.

        [INFERRED] Binance's minute windows start on the minute, as its interval names say.
        """
        if self.used_weight is None:
            return
        now = time.time()
        minute_end = (self.weight_at // 60 + 1) * 60
        if now < minute_end and self.used_weight + WEIGHT > self.options.weight_limit:
            wait = minute_end - now
            msg = (
                f"{self.name}: this IP has used {self.used_weight} of its "
                f"{self.options.weight_limit} request weight this minute; "
                f"waiting {wait:.1f}s for the next minute"
            )
            raise RateLimitError(msg, retry_after=wait)

    def _inspect(
        self, status: int, headers: Mapping[str, str], body: bytes, symbol: str
    ) -> ProviderError | None:
        """Note the used weight; Binance's own meaning of 400, 403, 418 and 451."""
        lowered = {k.lower(): v for k, v in headers.items()}
        used = lowered.get(WEIGHT_HEADER) or lowered.get("x-mbx-used-weight")
        if used is not None and used.strip().isdigit():
            self.used_weight, self.weight_at = int(used), time.time()
        if status < 400 or status == 429 or status >= 500:
            return None  # the shared mapping: Retry-After for 429, retries for 5xx
        code, said = _error(body)
        what = f"{self.name} answered HTTP {status}" + (f": {said}" if said else "")
        if status == 418:
            wait = retry_after(lowered, None, time.time())
            if wait is not None and wait <= self.options.max_ban_wait_s:
                return RateLimitError(f"{what}; this IP is banned for {wait:g}s", retry_after=wait)
            until = f" for {wait:g}s" if wait is not None else ""
            msg = (
                f"{what}. Binance has banned this IP{until} for going on after 429s; wait for "
                f"the ban to end, then lower providers.{self.name}.rate_limit_per_min"
            )
            return AuthError(msg)
        if status == 403:
            msg = (
                f"{what}. Binance's web application firewall refused the request; check "
                "base_url and the network (a proxy or VPN), then try again later"
            )
            return AuthError(msg)
        if status == 451:
            msg = (
                f"{what}. Binance serves no API from this location; try base_url "
                "https://data-api.binance.vision (public market data) or another provider"
            )
            return AuthError(msg)
        if code == -1121:
            msg = (
                f"{self.name} does not know symbol {symbol!r} ({said}); spot symbols are "
                "written without separators, e.g. BTCUSDT"
            )
            return UnknownAtProviderError(msg, symbol=symbol)
        return PermanentError(what + (f" (code {code})" if code is not None else ""), symbol)


def _klines(
    data: Any, symbol: str, vendor: str, asked: tuple[int, int], step: int
) -> tuple[pl.DataFrame, int | None]:
    """The bars of an answer and the latest open time in them; klines opening outside the
    ``asked`` startTime..endTime are dropped (a later page may hold their key).

    Every kline must close ``step`` ms after it opens (less 1 ms, as Binance stamps it): one
    that does not is no bar of the interval asked for (a week's kline for a day holds a week's
    volume), and the answer is a PermanentError of ``symbol`` rather than stored bars."""
    if not isinstance(data, list):
        msg = f"{vendor} sent klines that are not a JSON array; retrying may help"
        raise TransientError(msg)
    if not set(map(type, data)) <= {list} or min(map(len, data), default=9) < 9:
        for kline in data:
            if not isinstance(kline, list) or len(kline) < 9:
                msg = f"{vendor} sent a kline that is not an array of 12 fields: {kline!r:.80}"
                raise TransientError(msg)
    fields = list(zip(*data, strict=False)) or [()] * 9  # the first 9 fields of every kline
    volume, quote = _decimals(fields[5]), _decimals(fields[7])
    vwap = pl.select(pl.when(quote.is_not_null() & (volume != 0)).then(quote / volume))
    columns: dict[str, Sequence[Any] | pl.Series] = {
        "ts": fields[0],
        "open": _decimals(fields[1]),
        "high": _decimals(fields[2]),
        "low": _decimals(fields[3]),
        "close": _decimals(fields[4]),
        "volume": volume,
        "vwap": vwap.to_series(),
        "trades": fields[8],
    }
    _check_close_times(fields[0], fields[6], step, symbol, vendor)
    bars = wire_columns(columns, symbols=symbol, source=vendor, stamps="ms")
    opened = bars["ts"].dt.epoch("ms")
    inside = opened.is_between(*asked)
    latest = opened.filter(inside).max()
    return bars.filter(inside.fill_null(value=True)), latest if isinstance(latest, int) else None


def _check_close_times(
    opens: Sequence[Any], closes: Sequence[Any], step: int, symbol: str, vendor: str
) -> None:
    """PermanentError naming the first kline whose close time is not its open time plus
    ``step`` less 1 ms (open times that are not integers are validation's to reject)."""
    for opened, closed in zip(opens, closes, strict=True):
        if not _is_int(opened) or (_is_int(closed) and closed == opened + step - 1):
            continue
        shown = f"{(closed - opened + 1) / 60_000:g} minutes" if _is_int(closed) else repr(closed)
        msg = (
            f"{vendor} sent a {symbol} kline opening at {opened} that closes at {closed!r} "
            f"({shown} long) where {step // 60_000} minutes were asked for; it is not stored. "
            f"Fetch {symbol} from another provider if this persists"
        )
        raise PermanentError(msg, symbol=symbol)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decimals(values: Sequence[Any]) -> pl.Series:
    """``_decimal`` of each value; in one go when they are all strings that read as numbers."""
    if set(map(type, values)) <= {str}:
        try:
            return pl.Series(values=list(map(float, values)), dtype=pl.Float64)
        except ValueError:
            pass
    return pl.Series(values=[_decimal(v) for v in values], dtype=pl.Float64)


def _decimal(value: Any) -> float | None:
    """A decimal string (or number) as a float; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _error(body: bytes) -> tuple[int | None, str]:
    """``code`` and ``msg`` of Binance's ``{"code": -1121, "msg": "Invalid symbol."}``."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("msg"), str):
        code = data.get("code")
        return (code if isinstance(code, int) else None), str(data["msg"])[:200]
    return None, " ".join(body[:200].decode("utf-8", "replace").split())


def _ms(day: date) -> int:
    return int(datetime.combine(day, clock_time(), UTC).timestamp() * 1000)


def _parse_cursor(cursor: str | None) -> tuple[int, int | None]:
    if cursor is None:
        return 0, None
    index, _, start = cursor.partition(" ")
    return int(index), int(start) if start else None
