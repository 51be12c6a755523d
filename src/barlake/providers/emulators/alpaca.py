"""Alpaca Market Data v2 historical bars, emulated.

Serves ``GET /v2/stocks/bars`` (``{"bars": {SYM: [...]}, "next_page_token": ...}``) and
``GET /v2/stocks/{symbol}/bars`` (``{"bars": [...], "symbol": ..., "next_page_token": ...}``).
Like the vendor it wants both ``APCA-API-KEY-ID`` and ``APCA-API-SECRET-KEY`` (else 401
``{"code": 40110000, "message": "request is not authorized"}``), validates ``timeframe``
(422 ``invalid timeframe``), ``limit`` (1..10000), ``start``/``end`` (RFC-3339 or a date, both
inclusive), ``feed``, ``sort`` and ``adjustment`` (the demo's bars are raw; ``split`` and
``all`` divide prices before each split by its ratio and multiply volumes, dividends are not
applied); refuses ``feed=sip`` for the last 15
minutes (403); sorts by symbol, then time, applies ``limit`` across symbols, omits symbols
without bars, and pages with base64 tokens ``SYMBOL|unit|last t``. Every answer, a 401
included, carries ``X-RateLimit-Limit/Remaining/Reset`` (``rate_limit`` a minute, by default
the paid plan's 10,000); over the rate it is 429.
``GET /v1/corporate-actions`` serves the demo's splits and dividends (``demo.actions``) as
``{"corporate_actions": {"forward_splits": [...], "reverse_splits": [...], "cash_dividends":
[...]}, "next_page_token": ...}``: ``symbols``, ``types``, ``start``/``end`` (dates, inclusive,
default today, on the process date), ``limit`` (1..1000, default 100, over all types) and
``page_token``; splits carry ``new_rate``/``old_rate``, dividends ``rate`` a share.
``GET /v2/stocks/trades`` serves the emulator's trades (``emulators.trades``) as ``{"trades":
{SYM: [{"t", "x", "p", "s", "c", "i", "z"}, ...]}, "next_page_token": ...}`` (and
``/v2/stocks/{symbol}/trades`` as ``{"trades": [...], "symbol": ..., ...}``): ``symbols``,
``start``/``end`` (RFC-3339 with up to nanoseconds, or a date; both inclusive; by default today
and now), ``limit`` (1..10000, default 1000, over all symbols), ``feed`` (``sip`` refused for
the last 15 minutes, as for bars), ``sort`` (by symbol, then time ascending or descending) and
``page_token``; ``t`` is written as Go's RFC3339Nano (fraction without trailing zeros), ``i``
is a number, pre- and post-market prints are included, symbols without prints are omitted, and
the data faults spoil pages of prints as ``emulators.trades`` says.
Daily bars are stamped at midnight New York time; intraday bars at their start on the clock
grid (1Hour bars at the top of the hour: a 09:30 open's first is 09:00), with one pre- and one
post-market bar per session.

[INFERRED] A full page always carries a token (bars, trades and actions alike), even when
nothing follows (the next page is then empty); the action ids, CUSIPs, record and payable dates
and the process date equal to the ex-date are made up; trade sizes are written as the truth
holds them (the demo's are fractional; the vendor's are whole shares); the trades page token is
made up; the 401 body is the trading host's (the data host's is unrecorded); error codes other
than 42210000 and 40110000 and the 400/404 texts are made up.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import orjson
import polars as pl

from barlake.domain.actions import Action
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange
from barlake.providers.demo.actions import demo_actions
from barlake.providers.demo.splits import split_adjusted
from barlake.providers.emulators.base import Emulator, Quota, Reply, parse_date
from barlake.providers.emulators.trades import corrupt as trade_faults
from barlake.providers.emulators.trades import epoch_ns, json_rows, nanos

TZ = "America/New_York"
MAX_LIMIT = 10_000
#: Requests a minute when no ``rate_limit`` is given: the paid plan's (the free one has 200).
PLAN_LIMIT = 10_000
_TIMEFRAME = re.compile(r"^([0-9]+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"Min": "T", "T": "T", "Hour": "H", "H": "H", "Day": "D", "D": "D"}
_BOUNDS = {"Min": 59, "T": 59, "Hour": 23, "H": 23, "Day": 1, "D": 1, "Week": 1, "W": 1}
_SERVED: dict[tuple[int, str], Interval] = {
    (1, "T"): "1min",
    (5, "T"): "5min",
    (15, "T"): "15min",
    (30, "T"): "30min",
    (1, "H"): "1hour",
    (1, "D"): "1day",
}
#: A print's keys on the wire, and the column of each (``t`` aside).
_TRADE_KEYS = {
    "x": "exchange",
    "p": "price",
    "s": "size",
    "c": "conditions",
    "i": "seq",
    "z": "tape",
}
#: A time as the emulator reads a query's: a datetime for bars, epoch nanoseconds for trades.
_Moment = TypeVar("_Moment", datetime, int)
_FEEDS = ("sip", "iex", "otc", "boats", "overnight", "delayed_sip")
_ADJUSTMENTS = ("raw", "split", "dividend", "spin-off", "all")
MAX_ACTIONS = 1000
#: The vendor's action types the emulator serves, and the key of each in the answer.
_ACTION_KEYS = {
    "forward_split": "forward_splits",
    "reverse_split": "reverse_splits",
    "cash_dividend": "cash_dividends",
    "stock_dividend": "stock_dividends",
}


class AlpacaEmulator(Emulator):
    """``data.alpaca.markets`` on loopback."""

    vendor = "alpaca"
    clock_grid = True

    def __init__(self, **kwargs: Any) -> None:
        kwargs["rate_limit"] = kwargs.get("rate_limit") or PLAN_LIMIT
        super().__init__(**kwargs)

    def authorize(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply | None:
        key, secret = headers.get("apca-api-key-id"), headers.get("apca-api-secret-key")
        if key == self.api_key and secret == self.api_secret and key:
            return None
        return self.error(401, "request is not authorized", 40110000)

    def error(self, status: int, message: str, code: int | None = None) -> Reply:
        return Reply(status, {"code": code or status * 100_000, "message": message})

    def quota_headers(self, quota: Quota) -> dict[str, str]:
        if not quota.limit:  # a window without a limit (benchmarks set one): the plan's
            quota = Quota(
                allowed=True,
                limit=PLAN_LIMIT,
                remaining=PLAN_LIMIT,
                reset=time.time() + 60,
                retry_after=0,
            )
        return {
            "X-RateLimit-Limit": str(quota.limit),
            "X-RateLimit-Remaining": str(quota.remaining),
            "X-RateLimit-Reset": str(math.ceil(quota.reset)),
        }

    def rate_limited(self, quota: Quota) -> Reply:
        return self.error(429, "rate limit exceeded", 42910000)

    def route(self, path: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        single = re.fullmatch(r"/v2/stocks/([^/]+)/bars", path)
        if path == "/v1/corporate-actions":
            return self.corporate_actions(query)
        one = re.fullmatch(r"/v2/stocks/([^/]+)/trades", path)
        if path == "/v2/stocks/trades" or one:
            return self.trades(query, faults, unquote(one[1]) if one else None)
        if path == "/v2/stocks/bars":
            symbols = [s for s in query.get("symbols", "").split(",") if s]
            if not symbols:
                return self.error(400, "missing symbols", 40010001)
        elif single:
            symbols = [unquote(single[1])]
        else:
            return self.error(404, "endpoint not found", 40410000)
        parsed = self._params(query)
        if isinstance(parsed, Reply):
            return parsed
        interval, unit, start, end, limit, descending, split = parsed
        window = DateRange(_ny(start).date() - timedelta(days=1), _ny(end).date() + timedelta(2))
        frame = self.bars(symbols, interval, window)
        frame = (split_adjusted(frame) if split else frame).with_columns(_wire_t(interval))
        frame = frame.filter(pl.col("t").is_between(start, end)).sort(
            "symbol", "t", descending=[False, descending]
        )
        token = query.get("page_token")
        if token:
            after = _decode_token(token)
            if after is None:
                return self.error(422, "invalid page token", 42210000)
            sym, t = after
            later = pl.col("t") < t if descending else pl.col("t") > t
            frame = frame.filter((pl.col("symbol") > sym) | ((pl.col("symbol") == sym) & later))
        page = frame.head(limit)
        next_token = None
        if page.height == limit:
            last = page.row(-1, named=True)
            next_token = _encode_token(last["symbol"], unit, last["t"])
        page = self.corrupt(page.drop("t"), faults, start).with_columns(_wire_t(interval))
        arrays = _wire_arrays(page)
        if single:
            bars = arrays.get(symbols[0], b"null")
            head = b'{"bars":' + bars + b',"symbol":' + orjson.dumps(symbols[0])
            return Reply(200, head + b',"next_page_token":' + orjson.dumps(next_token) + b"}")
        keyed = b",".join(orjson.dumps(s) + b":" + a for s, a in arrays.items())
        body = b'{"bars":{' + keyed + b'},"next_page_token":' + orjson.dumps(next_token) + b"}"
        return Reply(200, body)

    def trades(self, query: Mapping[str, str], faults: frozenset[str], single: str | None) -> Reply:
        """One page of ``GET /v2/stocks/trades`` (or of one symbol's ``/v2/stocks/{symbol}/
        trades``): the prints of ``symbols`` in [start, end] (both inclusive, nanoseconds), by
        symbol then time, ``limit`` (1..10000, default 1000) of them over all symbols."""
        symbols = [single] if single else [s for s in query.get("symbols", "").split(",") if s]
        if not symbols:
            return self.error(400, "missing symbols", 40010001)
        limit = self._limit(query)
        span = self._span(query, _nanos, epoch_ns)
        if isinstance(limit, Reply) or isinstance(span, Reply):
            return limit if isinstance(limit, Reply) else cast(Reply, span)
        start, end = span
        recent = epoch_ns(self._now() - timedelta(minutes=15)) < end
        descending = self._descending(query, recent=recent)
        if isinstance(descending, Reply):
            return descending
        frame = self.tape.ordered(symbols, start, end, descending=descending)
        at, previous = 0, None
        if query.get("page_token"):
            after = _decode_trade_token(query["page_token"])
            if after is None:
                return self.error(422, "invalid page token", 42210000)
            sym, t, seq = after
            if descending:
                later = (pl.col("_ns") < t) | ((pl.col("_ns") == t) & (pl.col("seq") < seq))
            else:
                later = (pl.col("_ns") > t) | ((pl.col("_ns") == t) & (pl.col("seq") > seq))
            mask = (pl.col("symbol") > sym) | ((pl.col("symbol") == sym) & later)
            at = frame.height - int(frame.select(mask.sum()).item())
            previous = frame.slice(at - 1, 1) if at > 0 else None
        page = frame.slice(at, limit)
        token = None
        if page.height == limit:
            last = page.row(-1, named=True)
            token = _encode_trade_token(last["symbol"], last["_ns"], last["seq"])
        page = trade_faults(page, faults, self.faults.rng, start=start, previous=previous)
        wire = [pl.col(column).alias(key) for key, column in _TRADE_KEYS.items()]
        page = page.select("symbol", _wire_trade_t().alias("t"), *wire)
        tail = b',"next_page_token":' + orjson.dumps(token) + b"}"
        if single:
            listed = json_rows(page.drop("symbol"), faults)
            return Reply(200, b'{"trades":' + listed + b',"symbol":' + orjson.dumps(single) + tail)
        keyed = [
            orjson.dumps(sym) + b":" + json_rows(part.drop("symbol"), faults)
            for (sym,), part in page.partition_by(
                "symbol", maintain_order=True, as_dict=True
            ).items()
        ]
        return Reply(200, b'{"trades":{' + b",".join(keyed) + b"}" + tail)

    def corporate_actions(self, query: Mapping[str, str]) -> Reply:
        """The demo's actions of ``symbols`` processed in [start, end], by the vendor's types,
        ``limit`` of them a page."""
        symbols = [s for s in query.get("symbols", "").split(",") if s]
        types = [t for t in query.get("types", "").split(",") if t] or list(_ACTION_KEYS)
        if any(t not in _ACTION_KEYS for t in types):
            return self.error(422, "invalid types", 42210000)
        today = (self.now or datetime.now(UTC)).date()
        start = parse_date(query["start"]) if query.get("start") else today
        end = parse_date(query["end"]) if query.get("end") else today
        if start is None or end is None or end < start:
            return self.error(422, "invalid start or end", 42210000)
        try:
            limit = int(query.get("limit") or 100)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_ACTIONS:
            return self.error(422, "invalid limit: must be in range 1-1000", 42210000)
        if not symbols:
            return self.error(422, "symbols are required by the emulator", 42210000)
        found = [
            (kind, a)
            for a in demo_actions(symbols, DateRange(start, end + timedelta(days=1)))
            if (kind := _alpaca_type(a.type)) in types
        ]
        found.sort(key=lambda pair: (pair[1].ex_date, pair[1].symbol, pair[0]))
        offset = 0
        if query.get("page_token"):
            try:
                offset = int(base64.b64decode(query["page_token"], validate=True).decode())
            except (ValueError, UnicodeDecodeError):
                return self.error(422, "invalid page token", 42210000)
        page = found[offset : offset + limit]
        token = None
        if len(page) == limit:
            token = base64.b64encode(str(offset + limit).encode()).decode()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for kind, action in page:
            grouped.setdefault(_ACTION_KEYS[kind], []).append(_alpaca_action(kind, action))
        return Reply(200, {"corporate_actions": grouped, "next_page_token": token})

    def _params(
        self, query: Mapping[str, str]
    ) -> Reply | tuple[Interval, str, datetime, datetime, int, bool, bool]:
        """The validated query, or the vendor's refusal of it."""
        match = _TIMEFRAME.match(query.get("timeframe", ""))
        n = int(match[1]) if match else 0
        if not match or not 1 <= n <= _BOUNDS.get(match[2], 12):
            return self.error(422, "invalid timeframe", 42210000)
        interval = _SERVED.get((n, _UNITS.get(match[2], "")))
        if interval is None:
            served = "1Min, 5Min, 15Min, 30Min, 1Hour, 1Day"
            return self.error(422, f"the emulator serves only {served}", 42210000)
        limit = self._limit(query)
        span = self._span(query, _time, lambda moment: moment)
        if isinstance(limit, Reply) or isinstance(span, Reply):
            return limit if isinstance(limit, Reply) else cast(Reply, span)
        start, end = span
        descending = self._descending(query, recent=self._now() - timedelta(minutes=15) < end)
        if isinstance(descending, Reply):
            return descending
        adjustments = query.get("adjustment", "raw").split(",")
        if any(a not in _ADJUSTMENTS for a in adjustments):
            return self.error(422, "invalid adjustment", 42210000)
        split = bool({"split", "all"} & set(adjustments))
        return interval, _UNITS[match[2]], start, end, limit, descending, split

    def _now(self) -> datetime:
        return self.now or datetime.now(UTC)

    def _limit(self, query: Mapping[str, str]) -> int | Reply:
        """``limit`` (bars or trades over all symbols: 1..10000, default 1000), or the
        refusal."""
        try:
            limit = int(query.get("limit") or 1000)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            return self.error(422, "invalid limit: must be in range 1-10000", 42210000)
        return limit

    def _span(
        self,
        query: Mapping[str, str],
        read: Callable[[str], _Moment | None],
        stamp: Callable[[datetime], _Moment],
    ) -> tuple[_Moment, _Moment] | Reply:
        """``start`` and ``end`` as ``read`` reads them (by default the start of today and
        now, as ``stamp`` writes those), or the refusal."""
        now = self._now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        start = read(query["start"]) if query.get("start") else stamp(midnight)
        end = read(query["end"]) if query.get("end") else stamp(now)
        if start is None or end is None:
            which = "start" if start is None else "end"
            return self.error(422, f"invalid {which}", 42210000)
        if end < start:
            return self.error(422, "end should not be before start", 42210000)
        return start, end

    def _descending(self, query: Mapping[str, str], *, recent: bool) -> bool | Reply:
        """Whether ``sort`` is ``desc``, or the refusal of the ``feed`` or ``sort`` (``sip``
        within the last 15 minutes, ``recent``, is refused as without a subscription)."""
        feed, sort = query.get("feed", "sip"), query.get("sort", "asc")
        if feed not in _FEEDS or sort not in ("asc", "desc"):
            return self.error(422, f"invalid {'feed' if feed not in _FEEDS else 'sort'}", 42210000)
        if feed == "sip" and recent:
            message = "subscription does not permit querying recent SIP data"
            return self.error(403, message, 42210000)
        return sort == "desc"


def _alpaca_type(kind: str) -> str:
    return "forward_split" if kind == "split" else kind


def _alpaca_action(kind: str, action: Action) -> dict[str, Any]:
    """One action as Alpaca's corporate-actions endpoint writes it (dates ISO, the process
    date the ex-date, a CUSIP and id made up from the symbol)."""
    digest = hashlib.blake2b(f"{action.symbol}|{kind}|{action.ex_date}".encode()).hexdigest()
    cusip = hashlib.blake2b(action.symbol.encode()).hexdigest()[:9].upper()
    day = action.ex_date.isoformat()
    out: dict[str, Any] = {
        "id": f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}",
        "symbol": action.symbol,
    }
    if kind == "reverse_split":
        out |= {"old_cusip": cusip, "new_cusip": cusip[::-1]}
    else:
        out["cusip"] = cusip
    if kind in ("forward_split", "reverse_split"):
        new, old = _rates(action.ratio or 1.0)
        out |= {"new_rate": new, "old_rate": old}
    else:
        out |= {"rate": action.amount, "special": False, "foreign": False}
    payable = (action.ex_date + timedelta(days=14)).isoformat()
    record = (action.ex_date + timedelta(days=1)).isoformat()
    return out | {
        "process_date": day,
        "ex_date": day,
        "record_date": record,
        "payable_date": payable,
    }


def _rates(ratio: float) -> tuple[int, int]:
    """Whole new and old share counts of a split ratio (4.0 -> 4, 1; 0.1 -> 1, 10)."""
    return (round(ratio), 1) if ratio >= 1 else (1, round(1 / ratio))


def _wire_t(interval: Interval) -> pl.Expr:
    """The vendor's ``t``: the bar start, daily bars at midnight New York time."""
    if interval != "1day":
        return pl.col("ts").alias("t")
    midnight = pl.col("ts").dt.replace_time_zone(None).dt.replace_time_zone(TZ)
    return midnight.dt.convert_time_zone("UTC").alias("t")


def _wire_arrays(page: pl.DataFrame) -> dict[str, bytes]:
    """Each symbol's bars of ``page`` as the JSON array Alpaca sends, written by polars in one
    go (a page of 10,000 bars through Python dicts took most of the emulator's time). Volumes
    are whole shares on the wire (alpaca-go: uint64); a NaN goes out bare, as a sloppy vendor
    would send it."""

    def number(column: str) -> pl.Expr:
        return pl.col(column).cast(pl.String).fill_null("null")

    v = pl.col("volume")
    whole = v.is_finite() & (v == v.floor())
    volume = pl.when(whole).then(v.cast(pl.Int64, strict=False)).cast(pl.String)
    volume = pl.when(whole).then(volume).otherwise(v.cast(pl.String)).fill_null("null")
    t = pl.concat_str(pl.lit('"'), pl.col("t").dt.strftime("%Y-%m-%dT%H:%M:%SZ"), pl.lit('"'))
    fields = [("t", t.fill_null("null")), ("o", number("open")), ("h", number("high"))]
    fields += [("l", number("low")), ("c", number("close")), ("v", volume)]
    fields += [("n", number("trades")), ("vw", number("vwap"))]
    parts: list[pl.Expr] = []
    for i, (key, value) in enumerate(fields):
        parts += [pl.lit(("{" if i == 0 else ",") + f'"{key}":'), value]
    bar = pl.concat_str([*parts, pl.lit("}")])
    grouped = page.group_by("symbol", maintain_order=True).agg(bar.str.join(",").alias("json"))
    return {s: f"[{j}]".encode() for s, j in grouped.iter_rows()}


def _time(text: str | None) -> datetime | None:
    """An RFC-3339 instant or a date (midnight UTC), as the vendor accepts them."""
    if not text:
        return None
    day = parse_date(text)
    if day is not None:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)


def _nanos(text: str) -> int | None:
    """An RFC-3339 instant (up to nanoseconds) or a date (midnight UTC) in epoch nanoseconds."""
    day = parse_date(text)
    if day is not None:
        return epoch_ns(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return nanos(text)


def _wire_trade_t() -> pl.Expr:
    """A print's ``t`` as the vendor writes it (Go's RFC3339Nano): UTC, the fraction of a
    second without trailing zeros, none at all on a whole second."""
    fraction = pl.col("ts").dt.nanosecond().cast(pl.String).str.zfill(9).str.strip_chars_end("0")
    point = pl.concat_str(pl.lit("."), fraction)
    dotted = pl.when(fraction == "").then(pl.lit("")).otherwise(point)
    return pl.concat_str(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S"), dotted, pl.lit("Z"))


def _encode_trade_token(symbol: str, ns: int, seq: int) -> str:
    return base64.b64encode(f"{symbol}|{ns}|{seq}".encode()).decode()


def _decode_trade_token(token: str) -> tuple[str, int, int] | None:
    try:
        symbol, ns, seq = base64.b64decode(token, validate=True).decode().split("|")
        return symbol, int(ns), int(seq)
    except (ValueError, UnicodeDecodeError):
        return None


def _ny(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(TZ))


def _encode_token(symbol: str, unit: str, t: datetime) -> str:
    stamp = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
    return base64.b64encode(f"{symbol}|{unit}|{stamp}".encode()).decode()


def _decode_token(token: str) -> tuple[str, datetime] | None:
    try:
        symbol, _, stamp = base64.b64decode(token, validate=True).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return None
    moment = _time(stamp)
    return (symbol, moment) if moment is not None else None
