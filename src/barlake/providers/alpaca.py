"""Alpaca Market Data v2: historical stock bars and trades.

One request is one ``GET /v2/stocks/bars`` query for up to ``symbols_per_request`` symbols;
its pages follow ``next_page_token``. The vendor sorts by symbol, then time, and its ``limit``
counts bars over all symbols, so a page may end in the middle of a symbol and the next one
continue it: pages are simply concatenated. Symbols without bars are absent from the answer.

Parameters are always explicit: ``adjustment=raw`` (the lake stores raw prices), ``feed``
(default ``iex``, which a free plan may query up to now; the vendor's own default differs
between its documents), ``sort=asc`` and ``limit=10000``. ``start``/``end`` cover the
request's sessions: for daily bars the UTC midnights around the first and last session date
(the vendor stamps daily bars at midnight New York time, strictly inside), for intraday bars
the start of the first session's first bar to the last session's close. Bars are on the clock
grid (a 1Hour bar starts at the top of the hour), so the first bar of a 09:30 open starts at
09:00, and the request starts there. Intraday answers include extended hours; bars that do not
overlap the session are dropped (see ``wire.to_sessions``).

Trades are ``GET /v2/stocks/trades`` for up to ``trade_symbols`` symbols and one session at a
time, from its open to the last nanosecond before its close, ``sort=asc``, ``limit`` counting
prints over all symbols (so a page may end mid-symbol, like bars), following
``next_page_token``. Each print maps onto the lake's trades schema as the vendor writes it:
``t`` (RFC 3339, nanoseconds) is ``ts``, ``x`` the exchange code (``"V"`` for IEX), ``c`` the
condition codes (``"@"``, ``"I"``, ...), ``i`` the trade id as text, ``z`` the tape letter.
Prints are passed on as they came, in the vendor's order: duplicates, disorder and impossible
values (a NaN or negative price, a zero size, a time outside the session) are the core's to
drop or record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import repeat
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.calendars.calendar import get_calendar
from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.domain.actions import Action, split
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import TransientError
from barlake.providers import urls
from barlake.providers.base import ActionPage, Capabilities, Page, Request, TradePage
from barlake.providers.http import Credentials, HttpClient, credentials, quoted
from barlake.providers.wire import to_sessions, wire_bars, wire_trades

NAME = "alpaca"
BASE_URL = "https://data.alpaca.markets"
KEY_ENV = ("APCA_API_KEY_ID",)
SECRET_ENV = ("APCA_API_SECRET_KEY",)
PATH = "/v2/stocks/bars"
TRADES_PATH = "/v2/stocks/trades"
ACTIONS_PATH = "/v1/corporate-actions"
#: The vendor's action types barlake stores.
ACTION_TYPES = ("forward_split", "reverse_split", "cash_dividend", "stock_dividend")
RESET_HEADER = "X-RateLimit-Reset"
#: Room for the ``symbols`` parameter (``urls.url_chars``): URLs stay under 8 KB with the other
#: parameters and a page token (Alpaca documents no cap, ``Request-URI Too Large``
#: seen beyond).
SYMBOLS_CHARS = 7_000

#: The vendor's ``timeframe`` for each lake interval.
TIMEFRAMES: dict[Interval, str] = {
    "1min": "1Min",
    "5min": "5Min",
    "15min": "15Min",
    "30min": "30Min",
    "1hour": "1Hour",
    "1day": "1Day",
}

#: Longest range per intraday request (calendar days): a request's pages are held in memory
#: until it completes, so 200 symbols of minute bars are kept to a few hundred thousand bars.
MAX_DAYS: dict[Interval, int] = {"1min": 14, "5min": 45, "15min": 92, "30min": 183, "1hour": 366}


class AlpacaOptions(BaseModel):
    """``providers.alpaca.options`` in lake.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str | None = Field(default=None, description="Else APCA_API_KEY_ID.")
    api_secret: str | None = Field(default=None, description="Else APCA_API_SECRET_KEY.")
    feed: Literal["iex", "sip", "otc", "boats", "overnight"] = Field(
        default="iex", description="Data feed; `sip` needs a paid plan for recent data."
    )
    page_limit: int = Field(
        default=10_000, ge=1, le=10_000, description="Bars per page, over all symbols."
    )
    actions_page_limit: int = Field(
        default=1000, ge=1, le=1000, description="Corporate actions per page, over all types."
    )
    trades_page_limit: int = Field(
        default=10_000, ge=1, le=10_000, description="Trades per page, over all symbols."
    )
    symbols_per_request: int = Field(
        default=200, ge=1, le=1000, description="Symbols per query; keeps URLs under 8 KB."
    )
    stream_url: str | None = Field(
        default=None,
        description="Root of the real-time stream (else wss://stream.data.alpaca.markets); "
        "`lake follow` connects to its /v2/{feed}.",
    )


class AlpacaProvider:
    """Alpaca's multi-symbol bars endpoint, one page per ``fetch_page``."""

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        name: str = NAME,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(AlpacaOptions, config.options, f"providers.{name}.options")
        self.capabilities = Capabilities(
            intervals=INTERVALS,
            symbols_per_request=self.options.symbols_per_request,
            bars_per_page=self.options.page_limit,
            rate_limit_per_min=config.rate_limit_per_min or 200,
            grouped_daily=False,
            auth_env=KEY_ENV,
            auth_secret_env=SECRET_ENV,
            max_days=dict(MAX_DAYS),
            symbols_chars=SYMBOLS_CHARS,
            action_symbols=self.options.symbols_per_request,
            trade_symbols=self.options.symbols_per_request,
            trades_per_page=self.options.trades_page_limit,
        )
        self.calendar = get_calendar("XNYS")
        self._http = HttpClient(name, config.base_url or BASE_URL, timeout_s=config.timeout_s)
        self._environ = environ
        self._creds: Credentials | None = None

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One page of ``request``; the cursor is the vendor's ``next_page_token``."""
        self._credentials()  # missing credentials fail before anything is asked
        params = self.params(request, cursor)
        if params is None:  # no session in the range: nothing to ask
            return Page(wire_bars(self.name, [], symbols=[], source=self.name, stamps="rfc3339"))
        data = await self._get(PATH, params, request.symbols)
        symbols, objects, token = self._parse(data)
        frame = wire_bars(self.name, objects, symbols=symbols, source=self.name, stamps="rfc3339")
        return Page(to_sessions(frame, request.interval, self.calendar), token)

    async def fetch_actions(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> ActionPage:
        """One page of ``GET /v1/corporate-actions``: forward and reverse splits (ratio
        ``new_rate / old_rate``), cash and stock dividends of ``symbols`` in ``window``."""
        params = {
            "symbols": urls.joined(symbols),
            "types": ",".join(ACTION_TYPES),
            "start": window.start.isoformat(),
            "end": window.last.isoformat(),
            "limit": str(self.options.actions_page_limit),
            "sort": "asc",
        }
        if cursor is not None:
            params["page_token"] = cursor
        data = await self._get(ACTIONS_PATH, params, symbols)
        groups = data.get("corporate_actions") if isinstance(data, dict) else None
        token = data.get("next_page_token") if isinstance(data, dict) else None
        if not isinstance(groups, dict) or not isinstance(token, str | None):
            msg = f"{self.name} sent corporate actions without a `corporate_actions` object"
            raise TransientError(msg)
        try:
            found = [
                a for key, items in groups.items() for a in _actions(self.name, key, items or [])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{self.name} sent a corporate action barlake cannot read ({exc}); retry"
            raise TransientError(msg) from None
        return ActionPage(found, token or None)

    async def fetch_trades(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> TradePage:
        """One page of ``GET /v2/stocks/trades``: the prints of ``symbols`` in one session of
        ``window`` at a time (open to close, so no pre- or post-market print is asked for); the
        cursor is ``"<session index> <next_page_token>"``, or the index alone for the next
        session's first page."""
        self._credentials()
        sessions = self.calendar.sessions_in(window)
        index, _, token = (cursor or "0").partition(" ")
        at = int(index)
        if at >= len(sessions):  # no session in the window: nothing to ask
            return TradePage(_trades(self.name, {}))
        params = self.trade_params(symbols, date.fromisoformat(str(sessions[at])), token or None)
        data = await self._get(TRADES_PATH, params, symbols)
        prints = data.get("trades") if isinstance(data, dict) else None
        following = data.get("next_page_token") if isinstance(data, dict) else None
        if not isinstance(prints, dict | None) or not isinstance(following, str | None):
            msg = f"{self.name} sent trades without a `trades` object; retrying may help"
            raise TransientError(msg)
        if following:
            nxt: str | None = f"{at} {following}"
        else:
            nxt = str(at + 1) if at + 1 < len(sessions) else None
        return TradePage(_trades(self.name, prints or {}), nxt)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def trade_params(
        self, symbols: tuple[str, ...], session: date, token: str | None = None
    ) -> dict[str, str]:
        """The query string of one page of the trades of ``symbols`` in ``session``: its open
        to the last nanosecond before its close (the vendor's ``end`` is inclusive)."""
        opened, closed = self.calendar.open_close(session)
        params = {
            "symbols": urls.joined(symbols),
            "start": _rfc3339_ns(opened),
            "end": _rfc3339_ns(closed, -1),
            "limit": str(self.options.trades_page_limit),
            "feed": self.options.feed,
            "sort": "asc",
        }
        if token is not None:
            params["page_token"] = token
        return params

    def params(self, request: Request, cursor: str | None = None) -> dict[str, str] | None:
        """The query string of one page of ``request``, or None when it holds no session."""
        sessions = self.calendar.sessions_in(request.range)
        if not len(sessions):
            return None
        first = date.fromisoformat(str(sessions[0]))
        last = date.fromisoformat(str(sessions[-1]))
        if spec(request.interval).intraday:
            start = self.calendar.first_bar(first, request.interval)
            end = self.calendar.open_close(last)[1]
        else:
            start = datetime.combine(first, time(), UTC)
            end = datetime.combine(last + timedelta(days=1), time(), UTC)
        params = {
            "symbols": urls.joined(request.symbols),
            "timeframe": TIMEFRAMES[request.interval],
            "start": _rfc3339(start),
            "end": _rfc3339(end),
            "limit": str(self.options.page_limit),
            "adjustment": "raw",
            "feed": self.options.feed,
            "sort": "asc",
        }
        if cursor is not None:
            params["page_token"] = cursor
        return params

    async def _get(self, path: str, params: dict[str, str], symbols: tuple[str, ...]) -> Any:
        """The JSON answer to ``GET path?params`` with the key and secret; errors name the
        symbol of a one-symbol request."""
        creds = self._credentials()
        return await self._http.get_json(
            path,
            params=params,
            headers={"APCA-API-KEY-ID": creds.key, "APCA-API-SECRET-KEY": creds.secret or ""},
            creds=creds,
            symbol=symbols[0] if len(symbols) == 1 else None,
            reset_header=RESET_HEADER,
        )

    def _credentials(self) -> Credentials:
        if self._creds is None:
            self._creds = credentials(
                self.name, self.options.model_dump(), KEY_ENV, SECRET_ENV, self._environ
            )
        return self._creds

    def _parse(self, data: Any) -> tuple[list[str], list[Any], str | None]:
        """The symbol of each bar, the bars, and the next page token of a response body."""
        bars = data.get("bars") if isinstance(data, dict) else None
        token = data.get("next_page_token") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(bars, dict | None):
            msg = f"{self.name} sent a response without a `bars` object; retrying may help"
            raise TransientError(msg)
        if token is not None and not isinstance(token, str):
            msg = f"{self.name} sent a next_page_token that is not a string"
            raise TransientError(msg)
        symbols, objects = _flatten(bars or {}, self.name)
        return symbols, objects, token or None


def _flatten(bars: dict[str, Any], vendor: str, what: str = "bars") -> tuple[list[str], list[Any]]:
    """Every symbol's bars (or trades) in one list, and the symbol of each."""
    symbols: list[str] = []
    objects: list[Any] = []
    for symbol, items in bars.items():
        if items is None:
            continue
        if not isinstance(items, list):
            msg = f"{vendor} sent {what} of {symbol!r} that are not a list"
            raise TransientError(msg)
        symbols.extend(repeat(symbol, len(items)))
        objects.extend(items)
    return symbols, objects


def _actions(source: str, key: str, items: list[dict[str, Any]]) -> list[Action]:
    """The actions of one type list of Alpaca's answer (types barlake does not keep: none)."""
    out: list[Action] = []
    for item in items:
        dates: dict[str, Any] = {
            "record_date": _day(item.get("record_date")),
            "pay_date": _day(item.get("payable_date")),
            "vendor_id": item.get("id"),
        }
        ex = date.fromisoformat(item["ex_date"])
        symbol = item["symbol"]
        if key in ("forward_splits", "reverse_splits"):
            new, old = float(item["new_rate"]), float(item["old_rate"])
            out.append(split(symbol, ex, new, old, source, **dates))
        elif key == "cash_dividends":
            amount = float(item["rate"])
            out.append(
                Action(symbol, "cash_dividend", ex, source, amount=amount, currency="USD", **dates)
            )
        elif key == "stock_dividends":
            ratio = 1 + float(item["rate"])
            out.append(Action(symbol, "stock_dividend", ex, source, ratio=ratio, **dates))
    return out


def _trades(source: str, prints: dict[str, Any]) -> pl.DataFrame:
    """Every symbol's prints of an answer in the lake's trades schema, in the answer's order:
    ``t`` RFC-3339 (nanoseconds), ``x`` the exchange code, ``p``, ``s``, ``c`` the condition
    codes, ``i`` the id (a number, kept as text), ``z`` the tape."""
    symbols, objects = _flatten(prints, source, "trades")
    if not set(map(type, objects)) <= {dict}:
        bad = next(o for o in objects if not isinstance(o, dict))
        msg = f"{source} sent a trade that is not an object: {quoted(repr(bad).encode())}"
        raise TransientError(msg)
    keys = {"ts": "t", "price": "p", "size": "s", "exchange": "x"}
    keys |= {"conditions": "c", "trade_id": "i", "tape": "z"}
    columns = {name: list(map(dict.get, objects, repeat(key))) for name, key in keys.items()}
    return wire_trades(columns, symbols=symbols, source=source, stamps="rfc3339")


def _rfc3339_ns(moment: datetime, ns: int = 0) -> str:
    """``moment`` plus ``ns`` nanoseconds, in RFC 3339 with nine digits of fraction."""
    whole = moment.astimezone(UTC).replace(microsecond=0)
    total = moment.microsecond * 1000 + ns
    whole += timedelta(seconds=total // 1_000_000_000)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{total % 1_000_000_000:09d}Z"


def _day(text: Any) -> date | None:
    return date.fromisoformat(text) if isinstance(text, str) and text else None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
