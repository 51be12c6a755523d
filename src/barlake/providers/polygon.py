"""Polygon.io, now sold as Massive: aggregates and grouped daily bars, and trades.

A one-symbol request is ``GET /v2/aggs/ticker/{T}/range/{mult}/{timespan}/{from}/{to}`` with
the first and last session dates (both inclusive), ``adjusted=false`` (the lake stores raw
prices; the vendor's default adjusts for splits), ``sort=asc`` and ``limit=50000``. Its pages
follow ``next_url``, which carries no key: only its path and query are kept, resolved against
our own base URL (so the key never goes to another host), and the key is added again.

A daily request for several symbols and one session, which the planner makes when that is
cheaper (``Capabilities.grouped_daily``), is one ``GET /v2/aggs/grouped/locale/us/market/
stocks/{date}``: the whole market in one answer, filtered to the requested symbols. Any other
request for several symbols is served one symbol after the other, the cursor saying where.

``t`` is epoch milliseconds: the window start for aggregates (midnight New York time for daily
bars), 16:00 New York time for grouped daily; both map to the session date.

Trades are ``GET /v3/trades/{ticker}``, one symbol and one session at a time:
``timestamp.gte`` the open and ``timestamp.lt`` the close in nanoseconds, ``order=asc`` (the
vendor answers newest first by default), ``sort=timestamp``, ``limit=50000``, following
``next_url`` as for bars. ``sip_timestamp`` (nanoseconds) is the print's ``ts``. The vendor
writes exchanges, conditions and tapes as numbers. Conditions are stored as the SIP codes
Alpaca and the demo write (``"I"`` odd lot, ``"F"`` intermarket sweep, ``"T"`` Form T), so
that the lake's condition filters read every source alike: the provider reads the vendor's own
table, ``/v3/reference/conditions`` (once per provider, before its first trades request), and
takes each id's code for the print's SIP (UTP for tape C, CTA for A and B); an id that table
does not list is kept as its decimal text; a regular sale lists no condition. Exchange ids are
stored as their decimal text (``"11"`` is NYSE Arca in the vendor's
``/v3/reference/exchanges``): nothing in the lake reads them, and no table is guessed. The tape
number becomes its documented letter (1, 2, 3 = A, B, C), the trade ``id`` stays as it is.
Prints are passed on as they came: duplicates, disorder and impossible values are the core's to
drop or record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date, datetime
from itertools import repeat
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.calendars.calendar import get_calendar
from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.domain import trades as trades_
from barlake.domain.actions import Action, split
from barlake.domain.intervals import INTERVALS, Interval
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, PermanentError, TransientError
from barlake.providers import urls
from barlake.providers.base import ActionPage, Capabilities, Page, Request, TradePage
from barlake.providers.http import Credentials, HttpClient, credentials
from barlake.providers.wire import recoded, to_sessions, wire_bars, wire_trades

NAME = "polygon"
BASE_URL = "https://api.massive.com"
KEY_ENV = ("POLYGON_API_KEY", "MASSIVE_API_KEY")
GROUPED = "/v2/aggs/grouped/locale/us/market/stocks/{date}"
TRADES = "/v3/trades/{ticker}"
CONDITIONS = "/v3/reference/conditions"
#: The vendor's condition ids and each one's code per SIP (``{37: {"CTA": "I", "UTP": "I"}}``).
Codes: TypeAlias = dict[int, dict[str, str]]
#: The tape letter of each of the vendor's tape numbers ("1 = A, 2 = B, 3 = C").
TAPES = {1: "A", 2: "B", 3: "C"}

#: ``(multiplier, timespan)`` of each lake interval.
SPANS: dict[Interval, tuple[int, str]] = {
    "1min": (1, "minute"),
    "5min": (5, "minute"),
    "15min": (15, "minute"),
    "30min": (30, "minute"),
    "1hour": (1, "hour"),
    "1day": (1, "day"),
}

#: ``limit`` counts minute bars for every intraday timespan; 50,000 of them are about 52
#: sessions with extended hours, so a request of 62 calendar days is usually one page.
MAX_DAYS: dict[Interval, int] = {i: 62 for i in INTERVALS if i != "1day"}


class PolygonOptions(BaseModel):
    """``providers.polygon.options`` (or ``providers.massive.options``) in lake.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str | None = Field(default=None, description="Else POLYGON_API_KEY/MASSIVE_API_KEY.")
    auth: Literal["header", "query"] = Field(
        default="header", description="Send the key as `Authorization: Bearer` or `?apiKey=`."
    )
    page_limit: int = Field(default=50_000, ge=1, le=50_000, description="`limit` per page.")
    actions_page_limit: int = Field(
        default=1000, ge=1, le=1000, description="`limit` per page of splits and dividends."
    )
    grouped_daily: bool = Field(
        default=True, description="Plan grouped-daily requests when they are cheaper."
    )
    trades_page_limit: int = Field(
        default=50_000, ge=1, le=50_000, description="`limit` per page of trades."
    )
    stream_feed: Literal["realtime", "delayed"] = Field(
        default="realtime",
        description="The stocks stream `lake follow` uses: real-time, or 15-minute delayed.",
    )
    stream_url: str | None = Field(
        default=None,
        description="Root of the stocks stream (else wss://socket.massive.com, or "
        "wss://delayed.massive.com for the delayed feed); `lake follow` connects to its /stocks.",
    )


class PolygonProvider:
    """Polygon/Massive aggregates, one page per ``fetch_page``."""

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        name: str = NAME,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(PolygonOptions, config.options, f"providers.{name}.options")
        self.capabilities = Capabilities(
            intervals=INTERVALS,
            symbols_per_request=1,
            bars_per_page=self.options.page_limit,
            rate_limit_per_min=config.rate_limit_per_min or 5,
            grouped_daily=self.options.grouped_daily,
            auth_env=KEY_ENV if name == NAME else KEY_ENV[::-1],
            max_days=dict(MAX_DAYS),
            action_symbols=1,
            trade_symbols=1,
            trades_per_page=self.options.trades_page_limit,
        )
        self.calendar = get_calendar("XNYS")
        self._http = HttpClient(name, config.base_url or BASE_URL, timeout_s=config.timeout_s)
        self._prefix = urlsplit(self._http.base_url).path.rstrip("/")
        self._environ = environ
        self._creds: Credentials | None = None
        self._codes: Codes | None = None
        self._reading: asyncio.Task[Codes] | None = None

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One page of ``request``; the cursor is ``"<symbol index> <next_url path>"``."""
        creds = self._credentials()
        sessions = self.calendar.sessions_in(request.range)
        if not len(sessions):
            return Page(wire_bars(self.name, [], symbols=[], source=self.name, stamps="ms"))
        first, last = (date.fromisoformat(str(d)) for d in (sessions[0], sessions[-1]))
        symbols = request.symbols
        grouped_day = request.interval == "1day" and first == last
        if len(symbols) > 1 and grouped_day and self.options.grouped_daily:
            grouped = GROUPED.format(date=first.isoformat())
            data = await self._get(grouped, {"adjusted": "false"}, creds, None)
            wanted = set(symbols)
            results = _results(data, self.name)
            chosen = [r for r in results if isinstance(r, dict) and r.get("T") in wanted]
            return Page(self._frame(chosen, [r["T"] for r in chosen], request.interval))
        index, path = _parse_cursor(cursor)
        symbol = symbols[min(index, len(symbols) - 1)]
        params: dict[str, str] = {}
        if path is None:
            multiplier, timespan = SPANS[request.interval]
            ticker = urls.segment(symbol)
            path = f"/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{first}/{last}"
            params = {"adjusted": "false", "sort": "asc", "limit": str(self.options.page_limit)}
        data = await self._get(path, params, creds, symbol)
        results = _results(data, self.name)
        following = self._follow(data.get("next_url"))
        if following is not None:
            token: str | None = f"{index} {following}"
        else:
            token = f"{index + 1}" if index + 1 < len(symbols) else None
        return Page(self._frame(results, symbol, request.interval), token)

    async def fetch_actions(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> ActionPage:
        """One page of ``/v3/reference/splits`` (ratio ``split_to / split_from``), then of
        ``/v3/reference/dividends`` (``cash_amount``), of the one symbol asked
        (``action_symbols`` is 1: the endpoints filter by one ticker); the cursor is
        ``"<endpoint> <next_url path>"``."""
        creds = self._credentials()
        (symbol,) = symbols
        endpoint, _, path = (cursor or "splits").partition(" ")
        field = "execution_date" if endpoint == "splits" else "ex_dividend_date"
        params: dict[str, str] = {}
        if not path:
            path = f"/v3/reference/{endpoint}"
            params = {
                "ticker": symbol,
                f"{field}.gte": window.start.isoformat(),
                f"{field}.lte": window.last.isoformat(),
                "limit": str(self.options.actions_page_limit),
                "order": "asc",
            }
        data = await self._get(path, params, creds, symbol)
        try:
            found = [_action(self.name, endpoint, r) for r in _results(data, self.name)]
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{self.name} sent a corporate action barlake cannot read ({exc}); retry"
            raise TransientError(msg) from None
        following = self._follow(data.get("next_url"))
        if following is not None:
            token: str | None = f"{endpoint} {following}"
        else:
            token = "dividends" if endpoint == "splits" else None
        return ActionPage(found, token)

    async def fetch_trades(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> TradePage:
        """One page of ``GET /v3/trades/{ticker}``: one symbol's prints in one session of
        ``window`` at a time (``timestamp.gte`` its open, ``timestamp.lt`` its close, in
        nanoseconds), ``order=asc`` (the vendor's default is newest first), ``sort=timestamp``;
        the cursor is ``"<symbol index> <session index> <next_url path>"``, or the two indices
        alone for the next symbol or session's first page."""
        creds = self._credentials()
        sessions = self.calendar.sessions_in(window)
        first, at, path = _trade_cursor(cursor)
        if at >= len(sessions) or first >= len(symbols):
            return TradePage(_trades(self.name, [], "", {}))
        symbol = symbols[first]
        params: dict[str, str] = {}
        if path is None:
            opened, closed = self.calendar.open_close(date.fromisoformat(str(sessions[at])))
            path = TRADES.format(ticker=urls.segment(symbol))
            params = {
                "timestamp.gte": str(_ns(opened)),
                "timestamp.lt": str(_ns(closed)),
                "order": "asc",
                "sort": "timestamp",
                "limit": str(self.options.trades_page_limit),
            }
        codes = await self._condition_codes(creds)
        data = await self._get(path, params, creds, symbol)
        prints = _trades(self.name, _results(data, self.name), symbol, codes)
        following = self._follow(data.get("next_url"))
        token: str | None
        if following is not None:
            token = f"{first} {at} {following}"
        elif at + 1 < len(sessions):
            token = f"{first} {at + 1}"
        else:
            token = f"{first + 1} 0" if first + 1 < len(symbols) else None
        return TradePage(prints, token)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _condition_codes(self, creds: Credentials) -> Codes:
        """The vendor's stock trade conditions, ``{id: {SIP: code}}``, read once from
        ``/v3/reference/conditions`` and kept; requests running side by side wait for the same
        reading (a failed one is tried again by the next request)."""
        if self._codes is not None:
            return self._codes
        loop = asyncio.get_running_loop()
        task = self._reading
        if task is None or task.get_loop() is not loop:
            task = self._reading = loop.create_task(self._read_codes(creds))
        try:
            self._codes = await asyncio.shield(task)
        finally:
            if task.done() and (task.cancelled() or task.exception() is not None):
                self._reading = None
        return self._codes

    async def _read_codes(self, creds: Credentials) -> Codes:
        """Every page of the vendor's table of stock trade conditions."""
        codes: Codes = {}
        path: str | None = CONDITIONS
        params = {"asset_class": "stocks", "data_type": "trade", "limit": "1000"}
        while path is not None:
            data = await self._get(path, params, creds, None)
            for row in _results(data, self.name):
                ident = row.get("id") if isinstance(row, dict) else None
                mapping = row.get("sip_mapping") if isinstance(row, dict) else None
                if isinstance(ident, int) and isinstance(mapping, dict):
                    codes[ident] = {k: v for k, v in mapping.items() if isinstance(v, str)}
            path, params = self._follow(data.get("next_url")), {}
        return codes

    async def _get(
        self, path: str, params: dict[str, str], creds: Credentials, symbol: str | None
    ) -> dict[str, Any]:
        headers = {}
        if self.options.auth == "header":
            headers["Authorization"] = f"Bearer {creds.key}"
        else:
            params = {**params, "apiKey": creds.key}
        try:
            data = await self._http.get_json(
                path, params=params, headers=headers, creds=creds, symbol=symbol
            )
        except AuthError as exc:
            # A free plan's 403 for a session that has not ended is about that session, not
            # the key: the other sessions can still be fetched.
            if "before end of day" not in str(exc):
                raise
            raise PermanentError(f"{exc}; fetch this session after its close", symbol) from None
        if not isinstance(data, dict):
            msg = f"{self.name} sent a response that is not a JSON object; retrying may help"
            raise TransientError(msg)
        status = data.get("status")
        if status == "NOT_AUTHORIZED":
            msg = f"{self.name} refused the request: {creds.redact(str(data.get('message')))}"
            raise AuthError(msg)
        if status == "ERROR":
            msg = f"{self.name} answered an error: {creds.redact(str(data.get('error')))}"
            raise TransientError(msg)
        return data

    def _follow(self, next_url: Any) -> str | None:
        """The path and query of ``next_url`` relative to our base URL, without any key."""
        if not isinstance(next_url, str) or not next_url:
            return None
        parts = urlsplit(next_url)
        path = parts.path
        if self._prefix and path.startswith(self._prefix + "/"):
            path = path[len(self._prefix) :]
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "apiKey"]
        return path + (f"?{urlencode(query)}" if query else "")

    def _frame(
        self, results: list[Any], symbols: str | list[str], interval: Interval
    ) -> pl.DataFrame:
        frame = wire_bars(self.name, results, symbols=symbols, source=self.name, stamps="ms")
        return to_sessions(frame, interval, self.calendar)

    def _credentials(self) -> Credentials:
        if self._creds is None:
            env = self.capabilities.auth_env
            self._creds = credentials(
                self.name, self.options.model_dump(), env, environ=self._environ
            )
        return self._creds


def _results(data: dict[str, Any], vendor: str) -> list[Any]:
    """The ``results`` of an answer: absent when there are none."""
    results = data.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        msg = f"{vendor} sent `results` that are not a list; retrying may help"
        raise TransientError(msg)
    return results


def _action(source: str, endpoint: str, row: dict[str, Any]) -> Action:
    """One result of the splits or dividends endpoint as an action."""
    more: dict[str, Any] = {"vendor_id": None if row.get("id") is None else str(row["id"])}
    if endpoint == "splits":
        ex = date.fromisoformat(row["execution_date"])
        return split(
            row["ticker"], ex, float(row["split_to"]), float(row["split_from"]), source, **more
        )
    for ours, theirs in (("record_date", "record_date"), ("pay_date", "pay_date")):
        more[ours] = date.fromisoformat(row[theirs]) if row.get(theirs) else None
    return Action(
        row["ticker"],
        "cash_dividend",
        date.fromisoformat(row["ex_dividend_date"]),
        source,
        amount=float(row["cash_amount"]),
        currency=row.get("currency") or "USD",
        **more,
    )


def _trades(source: str, results: list[Any], symbol: str, codes: Codes) -> pl.DataFrame:
    """The prints of one answer in the lake's trades schema, in the answer's order:
    ``sip_timestamp`` is ``ts``; the exchange id is kept as its decimal text ("11" is NYSE
    Arca: the vendor's ``/v3/reference/exchanges`` names it), the tape number as its letter,
    each condition id as its SIP's code in ``codes`` (UTP's on tape C, CTA's on A and B, the
    other SIP's when that one has none; the id's decimal text when the vendor's table does not
    list it)."""
    if not set(map(type, results)) <= {dict}:
        msg = f"{source} sent a trade that is not an object; retrying may help"
        raise TransientError(msg)
    keys = {"ts": "sip_timestamp", "price": "price", "size": "size", "exchange": "exchange"}
    keys |= {"conditions": "conditions", "trade_id": "id", "tape": "tape"}
    columns = {name: list(map(dict.get, results, repeat(key))) for name, key in keys.items()}
    columns["tape"] = [TAPES.get(t, t) if isinstance(t, int) else t for t in columns["tape"]]
    frame = wire_trades(columns, symbols=symbol, source=source, stamps="ns")
    if not codes or frame.is_empty():
        return frame
    by_sip = {
        sip: {str(i): c.get(sip) or next(iter(c.values())) for i, c in codes.items() if c}
        for sip in ("CTA", "UTP")
    }

    def recode(ids: list[Any] | None, sip: str) -> list[Any] | None:
        return None if ids is None else [by_sip[sip].get(i, i) for i in ids]

    sip = pl.when(pl.col("tape") == "C").then(pl.lit("UTP")).otherwise(pl.lit("CTA"))
    return frame.with_columns(recoded(frame, sip, recode, trades_.SCHEMA["conditions"]))


def _trade_cursor(cursor: str | None) -> tuple[int, int, str | None]:
    if cursor is None:
        return 0, 0, None
    first, at, *path = cursor.split(" ", 2)
    return int(first), int(at), path[0] if path else None


def _ns(moment: datetime) -> int:
    whole = moment.replace(microsecond=0)
    return int(whole.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _parse_cursor(cursor: str | None) -> tuple[int, str | None]:
    if cursor is None:
        return 0, None
    index, _, path = cursor.partition(" ")
    return int(index), path or None
