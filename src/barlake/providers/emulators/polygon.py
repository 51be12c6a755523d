"""Polygon.io / Massive aggregates and grouped daily, emulated.

Serves ``GET /v2/aggs/ticker/{T}/range/{mult}/{timespan}/{from}/{to}`` and
``GET /v2/aggs/grouped/locale/us/market/stocks/{date}``. Like the vendor it takes the key as
``?apiKey=`` or ``Authorization: Bearer`` (else 401 ``{"status": "ERROR", "error": ...}``);
``from``/``to`` are dates (New York days, both inclusive) or epoch milliseconds; ``adjusted``
defaults to true, ``sort`` to asc, ``limit`` (1..50000, default 5000) counts base bars (minute
bars for minute and hour timespans). A page that reaches the limit carries ``next_url``: this
server's URL with ``from`` moved past the last bar and a base64 ``cursor`` holding ``limit``,
``sort`` and ``adjusted``, and never the key. Aggregate ``t`` is the bar start in epoch ms
(daily bars at midnight New York time, hour bars at the top of the hour: a 09:30 open's first
is 09:00); grouped daily ``t`` is 16:00 New York time and each
result has ``T``. A ticker without bars gets ``resultsCount: 0`` and no ``results``. Over the
rate it is 429 with the vendor's ERROR body and, unless ``retry_after=False``, ``Retry-After``.

``GET /v3/reference/splits`` and ``GET /v3/reference/dividends`` serve the demo's splits
(``execution_date``, ``split_from``, ``split_to``) and cash dividends (``ex_dividend_date``,
``cash_amount``, ``currency``, ``pay_date``, ...) of one ``ticker``, filtered by
``execution_date``/``ex_dividend_date`` and their ``.gte .gt .lte .lt`` forms, ``limit``
(1..1000, default 10) a page, ``next_url`` with a base64 ``cursor`` while more follow.

``GET /v3/trades/{ticker}`` serves the emulator's trades (``emulators.trades``) as
``{"results": [...], "status": "OK", "request_id", "next_url"?}``: ``timestamp`` and its
``.gte .gt .lte .lt`` forms (a date, New York day, or epoch nanoseconds, or an RFC-3339
instant; with one bound only, a week from it, or up to now), ``order`` (``desc`` by default:
newest first, as the vendor documents), ``sort``
(``timestamp``, the only one), ``limit`` (1..50000, default 1000). Each result has
``sip_timestamp`` and ``participant_timestamp`` (ns), ``price``, ``size``, ``exchange`` (the
vendor's id of the SIP participant: 10 NYSE, 11 NYSE Arca, 12 Nasdaq, ...), ``conditions``
(the vendor's ids: 12 Form T, 14 intermarket sweep, 37 odd lot; none on a regular sale),
``id``, ``tape`` (1-3 for A-C) and ``sequence_number``. A full page carries ``next_url`` with a
base64 ``cursor`` (filters, order, limit and the last print's time and sequence), never the
key. ``GET /v3/reference/conditions`` lists the condition ids with their SIP codes
(``sip_mapping``: CTA's for tapes A and B, UTP's for C), ``asset_class``, ``data_type``, ``id``
and ``sip`` filters, ``limit`` (1..1000, default 10) and ``next_url``.

The grouped market is the emulator's ``symbols`` (else ``MARKET``). The demo bars are raw:
``adjusted=true`` (the default) divides prices before each split by its ratio and multiplies
volumes. [INFERRED] the 400 texts, Retry-After, the action ids and the declaration, record and
pay dates; a regular sale without conditions, a date filter as a New York day, the trades
cursor's content, the participant time 150-210 µs before the SIP's, the sequence numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode
from zoneinfo import ZoneInfo

import orjson
import polars as pl

from barlake.domain.actions import Action
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.providers.demo.actions import demo_actions
from barlake.providers.demo.splits import split_adjusted
from barlake.providers.emulators.base import Emulator, Quota, Reply, parse_date
from barlake.providers.emulators.trades import corrupt as trade_faults
from barlake.providers.emulators.trades import epoch_ns, json_rows, nanos
from barlake.providers.wire import recoded

NY = ZoneInfo("America/New_York")
MAX_LIMIT = 50_000
#: The grouped-daily market when the emulator is given no symbols.
MARKET = (
    *("AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "TSLA", "BRK.B", "JPM", "V"),
    *("UNH", "XOM", "JNJ", "WMT", "PG", "MA", "HD", "CVX", "KO", "PEP"),
)
_AGGS = re.compile(r"/v2/aggs/ticker/([^/]+)/range/([^/]+)/([^/]+)/([^/]+)/([^/]+)")
_GROUPED = re.compile(r"/v2/aggs/grouped/locale/us/market/stocks/([^/]+)")
_SERVED: dict[tuple[int, str], Interval] = {
    (1, "minute"): "1min",
    (5, "minute"): "5min",
    (15, "minute"): "15min",
    (30, "minute"): "30min",
    (1, "hour"): "1hour",
    (1, "day"): "1day",
}
_BASE_MINUTES = {"minute": 1, "hour": 60, "day": 1}
_TRADES = re.compile(r"/v3/trades/([^/]+)")
_NO_END = 2**63 - 1
#: Massive's exchange id of each SIP participant code (its ``/v3/reference/exchanges``; the
#: lake's demo writes Nasdaq as Q, the vendor's table as T: both are 12).
EXCHANGE_IDS = {
    **{"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "I": 6, "J": 7, "K": 8, "M": 9, "N": 10},
    **{"P": 11, "T": 12, "Q": 12, "S": 13, "L": 14, "V": 15, "W": 16, "X": 17, "Y": 18},
    **{"Z": 19, "H": 20, "U": 21},
}
#: The vendor's ``/v3/reference/conditions`` as the emulator serves it: the stock trade
#: conditions it uses and a few more (an average-price trade, spelled differently by the two
#: SIPs; a trade-through exemption, likewise), and one quote condition.
_SALE = "sale_condition"
CONDITIONS: tuple[dict[str, Any], ...] = tuple(
    {"id": ident, "type": kind, "name": name, "sip_mapping": {"CTA": cta, "UTP": utp}}
    for ident, kind, name, cta, utp in (
        (2, _SALE, "Average Price Trade", "B", "W"),
        (10, _SALE, "Derivatively Priced", "4", "4"),
        (12, _SALE, "Form T", "T", "T"),
        (14, _SALE, "Intermarket Sweep", "F", "F"),
        (37, _SALE, "Odd Lot Trade", "I", "I"),
        (41, "trade_thru_exempt", "Trade Thru Exempt", "1", "X"),
    )
)
_QUOTE_CONDITION = {
    "id": 1,
    "type": "quote_condition",
    "name": "Regular Two-Sided Open",
    "asset_class": "stocks",
    "sip_mapping": {"CTA": "R", "UTP": "R"},
    "data_types": ["bbo", "nbbo"],
}
#: The condition id of each SIP code, per SIP (tapes A and B are CTA's, C is UTP's); a
#: regular sale (``@``) is listed with no condition.
TRADE_CONDITIONS: dict[str, dict[str, int]] = {
    sip: {c["sip_mapping"][sip]: c["id"] for c in CONDITIONS} for sip in ("CTA", "UTP")
}
MAX_REFERENCE = 1000
#: The reference endpoints: each one's date field, and the demo action types it lists.
_REFERENCE: dict[str, tuple[str, tuple[str, ...]]] = {
    "/v3/reference/splits": ("execution_date", ("split", "reverse_split")),
    "/v3/reference/dividends": ("ex_dividend_date", ("cash_dividend",)),
}
_TOO_MANY = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your "
    "subscription to continue. https://polygon.io/pricing"
)


class PolygonEmulator(Emulator):
    """``api.massive.com`` (formerly ``api.polygon.io``) on loopback."""

    vendor = "polygon"
    clock_grid = True

    def __init__(self, *, retry_after: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry_after = retry_after

    def authorize(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply | None:
        bearer = headers.get("authorization", "")
        key = query.get("apiKey") or (bearer[7:] if bearer.startswith("Bearer ") else "")
        if not key:
            return self.error(401, "API Key was not provided")
        if key != self.api_key:
            return self.error(401, "Unknown API Key")
        return None

    def error(self, status: int, message: str) -> Reply:
        if status == 403:
            body = {"status": "NOT_AUTHORIZED", "request_id": self.request_id(), "message": message}
            return Reply(status, body)
        return Reply(status, {"status": "ERROR", "request_id": self.request_id(), "error": message})

    def rate_limited(self, quota: Quota) -> Reply:
        reply = self.error(429, _TOO_MANY)
        if self.retry_after:
            reply.headers["Retry-After"] = str(max(1, math.ceil(quota.retry_after)))
        return reply

    def route(self, path: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        aggs, grouped = _AGGS.fullmatch(path), _GROUPED.fullmatch(path)
        if aggs:
            ticker, mult, timespan, start, end = aggs.groups()
            return self._aggs(unquote(ticker), mult, timespan, start, end, query, faults)
        if grouped:
            return self._grouped(grouped[1], query, faults)
        if path in _REFERENCE:
            return self._reference(path, query)
        if path == "/v3/reference/conditions":
            return self._conditions(query)
        trades = _TRADES.fullmatch(path)
        if trades:
            return self._trades(unquote(trades[1]), query, faults)
        return Reply(404, {"status": "NOT_FOUND", "request_id": self.request_id()})

    def _trades(self, ticker: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        """One page of ``GET /v3/trades/{ticker}``: the prints in the ``timestamp`` filters,
        newest first unless ``order=asc``, ``limit`` (1..50000, default 1000) of them."""
        options = self._options(query)
        if isinstance(options, Reply):
            return options
        try:
            limit = int(options.get("limit") or 1000)
        except ValueError:
            limit = 0
        order, sort = options.get("order", "desc"), options.get("sort", "timestamp")
        if not 1 <= limit <= MAX_LIMIT:
            return self.error(400, "limit must be between 1 and 50000")
        if order not in ("asc", "desc") or sort != "timestamp":
            return self.error(400, f"invalid {'sort' if sort != 'timestamp' else 'order'}")
        # Inclusive nanosecond bounds: each filter (``.gte .gt .lte .lt`` or equality) narrows.
        lo, hi = 0, _NO_END
        for key, value in options.items():
            op = key.removeprefix("timestamp").lstrip(".")
            if not key.startswith("timestamp") or op not in ("", "gte", "gt", "lte", "lt"):
                continue
            bounds = _ns_bounds(value)
            if bounds is None:
                return self.error(400, f"Could not parse {key}: use YYYY-MM-DD or nanoseconds")
            first, last = bounds
            if op in ("", "gte"):
                lo = max(lo, first)
            if op in ("", "lte"):
                hi = min(hi, last)
            if op == "gt":
                lo = max(lo, last + 1)
            if op == "lt":
                hi = min(hi, first - 1)
        # Half bounded, the emulator serves a week (up to now): it computes every session.
        week = 7 * 24 * 3600 * 1_000_000_000
        now = epoch_ns(self.now or datetime.now(UTC))
        if hi == _NO_END:
            hi = min(now, lo + week) if lo > 0 else now
        lo = lo if lo > 0 else hi - week
        descending = order == "desc"
        frame = self.tape.ordered([ticker] if lo <= hi else [], lo, hi, descending=descending)
        at, previous = 0, None
        if "at" in options:
            t, seq = int(options["at"]), int(options["seq"])
            if descending:
                later = (pl.col("_ns") < t) | ((pl.col("_ns") == t) & (pl.col("seq") < seq))
            else:
                later = (pl.col("_ns") > t) | ((pl.col("_ns") == t) & (pl.col("seq") > seq))
            at = frame.height - int(frame.select(later.sum()).item())
            previous = frame.slice(at - 1, 1) if at > 0 else None
        page = frame.slice(at, limit)
        body: dict[str, Any] = {"status": "OK", "request_id": self.request_id()}
        if page.height == limit:
            end = page.row(-1, named=True)
            following = {
                "limit": limit,
                "order": order,
                "sort": sort,
                "timestamp.gte": lo,
                "timestamp.lte": hi,
                "at": end["_ns"],
                "seq": end["seq"],
            }
            cursor = base64.urlsafe_b64encode(urlencode(following).encode()).decode()
            body["next_url"] = f"{self.url}/v3/trades/{quote(ticker, safe='')}?cursor={cursor}"
        page = trade_faults(page, faults, self.faults.rng, start=lo, previous=previous)
        if page.is_empty():
            return Reply(200, body)
        rows = json_rows(_trade_rows(page), faults)
        return Reply(200, b'{"results":' + rows + orjson.dumps(body).replace(b"{", b",", 1))

    def _conditions(self, query: Mapping[str, str]) -> Reply:
        """One page of ``CONDITIONS`` (stock trades) and the quote condition, filtered by
        ``asset_class``, ``data_type``, ``id`` and ``sip``, ``limit`` (1..1000, default 10)."""
        paged = self._paged(query)
        if isinstance(paged, Reply):
            return paged
        options, limit, offset = paged
        trade = {"asset_class": "stocks", "data_types": ["trade"]}
        found = [{**c, **trade} for c in CONDITIONS] + [_QUOTE_CONDITION]
        wanted = {k: options[k] for k in ("asset_class", "data_type", "id", "sip") if k in options}
        found = [
            c
            for c in found
            if wanted.get("asset_class", c["asset_class"]) == c["asset_class"]
            and wanted.get("data_type", c["data_types"][0]) in c["data_types"]
            and wanted.get("id", str(c["id"])) == str(c["id"])
            and ("sip" not in wanted or wanted["sip"] in c["sip_mapping"])
        ]
        page = found[offset : offset + limit]
        body: dict[str, Any] = {
            "results": page,
            "status": "OK",
            "request_id": self.request_id(),
            "count": len(page),
        }
        if offset + limit < len(found):
            body["next_url"] = self._next_url("/v3/reference/conditions", options, offset + limit)
        return Reply(200, body)

    def _paged(self, query: Mapping[str, str]) -> tuple[dict[str, str], int, int] | Reply:
        """A reference endpoint's query (``_options``), ``limit`` (1..1000, default 10) and
        ``offset``, or the refusal."""
        options = self._options(query)
        if isinstance(options, Reply):
            return options
        try:
            limit = int(options.get("limit") or 10)
            offset = int(options.get("offset") or 0)
        except ValueError:
            return self.error(400, "limit must be a number")
        if not 1 <= limit <= MAX_REFERENCE:
            return self.error(400, "limit must be between 1 and 1000")
        return options, limit, offset

    def _next_url(self, path: str, options: Mapping[str, str], offset: int) -> str:
        """``path`` with a cursor holding ``options`` from ``offset`` on, never the key."""
        following = {**options, "offset": str(offset)}
        following.pop("cursor", None)
        following.pop("apiKey", None)
        cursor = base64.urlsafe_b64encode(urlencode(following).encode()).decode()
        return f"{self.url}{path}?cursor={cursor}"

    def _options(self, query: Mapping[str, str]) -> dict[str, str] | Reply:
        """The query of a first page, or the one a ``next_url``'s cursor carries."""
        if not query.get("cursor"):
            return dict(query)
        try:
            return dict(parse_qsl(base64.urlsafe_b64decode(query["cursor"]).decode()))
        except (ValueError, UnicodeDecodeError):
            return self.error(400, "Invalid cursor")

    def _reference(self, path: str, query: Mapping[str, str]) -> Reply:
        """One page of splits or dividends: the demo's actions of ``ticker``."""
        paged = self._paged(query)
        if isinstance(paged, Reply):
            return paged
        options, limit, offset = paged
        field, kinds = _REFERENCE[path]
        # Half-open [low, high): each filter (``.gte .gt .lte .lt`` or equality) narrows it.
        low, high = date(1900, 1, 1), date(2100, 1, 1)
        bounds = (("gte", 0, True), ("gt", 1, True), ("lte", 1, False), ("lt", 0, False))
        for op, shift, lower in (*bounds, ("", 0, True), ("", 1, False)):
            key = f"{field}.{op}" if op else field
            if key not in options:
                continue
            day = parse_date(options[key])
            if day is None:
                return self.error(400, f"{key} must be a date")
            moved = day + timedelta(days=shift)
            low, high = (max(low, moved), high) if lower else (low, min(high, moved))
        tickers = [options["ticker"]] if options.get("ticker") else list(self.symbols or MARKET)
        found = [
            a for a in demo_actions(tickers, DateRange(low, max(low, high))) if a.type in kinds
        ]
        found.sort(key=lambda a: (a.ex_date, a.symbol), reverse=options.get("order") == "desc")
        page = found[offset : offset + limit]
        body: dict[str, Any] = {
            "results": [_reference_row(a) for a in page],
            "status": "OK",
            "request_id": self.request_id(),
        }
        if offset + limit < len(found):
            body["next_url"] = self._next_url(path, options, offset + limit)
        return Reply(200, body)

    def _aggs(
        self,
        ticker: str,
        mult: str,
        timespan: str,
        start: str,
        end: str,
        query: Mapping[str, str],
        faults: frozenset[str],
    ) -> Reply:
        options = dict(query)
        if query.get("cursor"):
            try:
                options.update(parse_qsl(base64.urlsafe_b64decode(query["cursor"]).decode()))
            except (ValueError, UnicodeDecodeError):
                return self.error(400, "Invalid cursor")
        interval = _SERVED.get((int(mult), timespan)) if mult.isdigit() else None
        if interval is None:
            return self.error(400, f"the emulator serves only {sorted(_SERVED.values())}")
        lo, hi = _instant(start, end=False), _instant(end, end=True)
        if lo is None or hi is None:
            which = "from" if lo is None else "to"
            return self.error(
                400, f"Could not parse the time parameter: '{which}'. Use YYYY-MM-DD or Unix MS"
            )
        try:
            limit = int(options.get("limit", 5000))
        except ValueError:
            limit = 0
        sort, adjusted = options.get("sort", "asc"), options.get("adjusted", "true")
        if not 1 <= limit <= MAX_LIMIT or sort not in ("asc", "desc"):
            return self.error(400, f"invalid {'sort' if sort not in ('asc', 'desc') else 'limit'}")
        if adjusted not in ("true", "false"):
            return self.error(400, "adjusted must be true or false")
        # Where the first page started: bars moved `outside` must precede the whole request.
        origin = int(options["origin"]) if options.get("origin", "").isdigit() else lo
        window = DateRange(_day(lo) - timedelta(days=1), _day(hi) + timedelta(days=2))
        frame = self.bars([ticker], interval, window)
        if adjusted == "true":
            frame = split_adjusted(frame)
        frame = frame.with_columns(_wire_t(interval))
        frame = frame.filter((pl.col("t") >= lo) & (pl.col("t") < hi))
        frame = frame.sort("t", descending=sort == "desc")
        size = max(1, limit // (int(mult) * _BASE_MINUTES[timespan]))
        page = frame.head(size)
        body: dict[str, Any] = {
            "ticker": ticker,
            "queryCount": page.height,
            "resultsCount": page.height,
            "adjusted": adjusted == "true",
            "status": "OK",
            "request_id": self.request_id(),
        }
        if page.height == size:
            last = int(page["t"][-1])
            if sort == "asc":
                nxt, to = str(_next_start(last, interval)), end
            else:
                nxt, to = start, str(last - 1)
            cursor = base64.urlsafe_b64encode(
                urlencode(
                    {"limit": limit, "sort": sort, "adjusted": adjusted, "origin": origin}
                ).encode()
            ).decode()
            path = f"/v2/aggs/ticker/{quote(ticker, safe='')}/range/{mult}/{timespan}/{nxt}/{to}"
            body["next_url"] = f"{self.url}{path}?cursor={cursor}"
        page = self.corrupt(
            page.drop("t"), faults, datetime.fromtimestamp(origin / 1000, UTC)
        ).with_columns(_wire_t(interval))
        results = _wire_rows(page)
        if results:
            body["results"] = results
        body["count"] = len(results)
        return Reply(200, body)

    def _grouped(self, text: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        day = parse_date(text)
        if day is None:
            return self.error(400, f"Could not parse the date: {text!r}. Use YYYY-MM-DD")
        if query.get("adjusted", "true") not in ("true", "false"):
            return self.error(400, "adjusted must be true or false")
        today = (self.now or datetime.now(UTC)).astimezone(NY).date()
        if day >= today:
            return self.error(403, "Attempted to request today's data before end of day.")
        market = sorted(self.symbols) if self.symbols is not None else list(MARKET)
        frame = self.bars(market, "1day", DateRange(day, day + timedelta(days=1)))
        if query.get("adjusted", "true") == "true":
            frame = split_adjusted(frame)
        before = datetime(day.year, day.month, day.day, tzinfo=UTC)
        frame = self.corrupt(frame, faults, before).with_columns(_wire_t("1day", grouped=True))
        results = [{"T": row.pop("S"), **row} for row in _wire_rows(frame, ticker=True)]
        body: dict[str, Any] = {
            "adjusted": query.get("adjusted", "true") == "true",
            "queryCount": len(results),
            "resultsCount": len(results),
            "status": "OK",
            "request_id": self.request_id(),
        }
        if results:
            body["results"] = results
        return Reply(200, body)


def _ns_bounds(text: str) -> tuple[int, int] | None:
    """The first and last nanosecond a ``timestamp`` filter value names: a date (New York
    day), epoch nanoseconds, or an RFC-3339 instant."""
    if text.isdigit():
        return int(text), int(text)
    day = parse_date(text)
    if day is not None:
        start = _midnight_ms(day) * 1_000_000
        return start, _midnight_ms(day + timedelta(days=1)) * 1_000_000 - 1
    ns = nanos(text)
    return None if ns is None else (ns, ns)


def _trade_rows(page: pl.DataFrame) -> pl.DataFrame:
    """Prints as ``/v3/trades`` writes them: Massive's exchange ids, condition ids (none on a
    regular sale), tape 1-3, the SIP time, the participant's a little earlier; columns in the
    vendor's (alphabetical) order. ValueError naming an exchange or condition code Massive has
    no id for."""
    unknown = set(page["exchange"].drop_nulls().unique()) - set(EXCHANGE_IDS)
    letters = set(page["conditions"].explode().drop_nulls().unique()) - {"@"}
    unknown |= letters - set(TRADE_CONDITIONS["CTA"]) - set(TRADE_CONDITIONS["UTP"])
    if unknown:
        msg = f"no Massive code for {sorted(unknown)}"
        raise ValueError(msg)
    ns = pl.col("ts").dt.epoch("ns")  # the faults may have moved a print: not ``_ns``

    def recode(codes: list[Any] | None, sip: str) -> list[Any]:
        return [TRADE_CONDITIONS[sip][c] for c in codes or [] if c != "@"]

    sip = pl.when(pl.col("tape") == "C").then(pl.lit("UTP")).otherwise(pl.lit("CTA"))
    return page.select(
        recoded(page, sip, recode, pl.List(pl.Int64())),
        pl.col("exchange").replace_strict(EXCHANGE_IDS, return_dtype=pl.Int64).alias("exchange"),
        pl.col("trade_id").alias("id"),
        (ns - 150_000 - pl.col("seq") % 7 * 10_000).alias("participant_timestamp"),
        "price",
        (pl.col("seq") * 4 + 1).alias("sequence_number"),
        ns.alias("sip_timestamp"),
        "size",
        pl.col("tape").replace_strict({"A": 1, "B": 2, "C": 3}, return_dtype=pl.Int64),
    )


def _instant(text: str, *, end: bool) -> int | None:
    """Epoch ms bounding a ``from`` (inclusive) or ``to`` (made exclusive) path segment."""
    if text.isdigit():
        return int(text) + (1 if end else 0)
    day = parse_date(text)
    if day is None:
        return None
    return _midnight_ms(day + timedelta(days=1) if end else day)


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=NY).timestamp() * 1000)


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, NY).date()


def _next_start(last: int, interval: Interval) -> int:
    """Where the bucket after the one starting at ``last`` starts (DST-proof for days)."""
    if interval == "1day":
        return _midnight_ms(_day(last) + timedelta(days=1))
    return last + spec(interval).seconds * 1000


def _wire_t(interval: Interval, *, grouped: bool = False) -> pl.Expr:
    """The vendor's ``t`` in epoch ms: bar start; daily at midnight New York time, or 16:00
    New York time in grouped daily answers."""
    ts = pl.col("ts")
    if interval == "1day":
        local = ts.dt.replace_time_zone(None) + timedelta(hours=16 if grouped else 0)
        ts = local.dt.replace_time_zone(str(NY)).dt.convert_time_zone("UTC")
    return ts.dt.epoch("ms").alias("t")


def _wire_rows(page: pl.DataFrame, *, ticker: bool = False) -> list[dict[str, Any]]:
    return page.select(
        *([pl.col("symbol").alias("S")] if ticker else []),
        pl.col("volume").alias("v"),
        pl.col("vwap").alias("vw"),
        pl.col("open").alias("o"),
        pl.col("close").alias("c"),
        pl.col("high").alias("h"),
        pl.col("low").alias("l"),
        "t",
        pl.col("trades").alias("n"),
    ).to_dicts()


def _reference_row(action: Action) -> dict[str, Any]:
    """A split or a dividend as the reference endpoints write it."""
    digest = hashlib.blake2b(f"{action.symbol}|{action.type}|{action.ex_date}".encode())
    ident = "E" + digest.hexdigest()[:63]
    day = action.ex_date.isoformat()
    if action.type in ("split", "reverse_split"):
        ratio = action.ratio or 1.0
        split_from, split_to = (1, round(ratio)) if ratio >= 1 else (round(1 / ratio), 1)
        return {
            "execution_date": day,
            "id": ident,
            "split_from": split_from,
            "split_to": split_to,
            "ticker": action.symbol,
        }
    return {
        "cash_amount": action.amount,
        "currency": action.currency or "USD",
        "declaration_date": (action.ex_date - timedelta(days=30)).isoformat(),
        "dividend_type": "CD",
        "ex_dividend_date": day,
        "frequency": 4,
        "id": ident,
        "pay_date": (action.ex_date + timedelta(days=14)).isoformat(),
        "record_date": (action.ex_date + timedelta(days=1)).isoformat(),
        "ticker": action.symbol,
    }
