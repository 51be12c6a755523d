"""Yahoo Finance's chart API, as yfinance uses it.

The API is unofficial: no key, no contract, no documented rate limit, and terms that restrict
automated use. One request is one ``GET /v8/finance/chart/{symbol}`` with ``period1``/``period2``
(epoch seconds, end exclusive), ``interval``, ``includePrePost=false`` (regular sessions only)
and yfinance's ``events``; it is sent with a browser ``User-Agent`` (Yahoo 429s without one) and
no cookie or crumb. There are no pages: the planner cuts long ranges (``MAX_DAYS``), one symbol
per request.

Yahoo keeps intraday bars for a while only (``RETENTION``: 1m for 30 days, at most 8 days of
them per request; 5m to 30m for 60 days; 1h for 730 days). A request for days it no longer keeps
is refused before it is sent, naming the limit; one that only reaches back to the edge starts
at the edge instead. Its own refusal (HTTP 422) maps to the same PermanentError.

The answer is parallel arrays: ``timestamp`` (bar start, epoch seconds; daily bars at the
session's open in exchange time) and ``indicators.quote[0]`` open/high/low/close/volume, with
nulls for minutes without trades (dropped). Daily bars are keyed by their date in
``meta.exchangeTimezoneName`` (else ``gmtoffset``). Rows at or past ``period2`` and intraday
rows off the bars' grid are Yahoo's "live" row and are dropped, and so are intraday rows that
do not overlap their day's regular session (``meta.tradingPeriods``): Yahoo's priced row at the
close, volume 0, is no bar. A key seen twice keeps its first row.
Prices are split-adjusted, as Yahoo serves them, and stored so under ``source=yahoo``, which
the lake knows as split-adjusted (``domain.actions.SPLIT_ADJUSTED_SOURCES``): adjusted reads
apply only dividends to its rows and ``lake check`` reports a series mixing them with raw
rows. There is no vwap and no trade count. ``fetch_actions`` reads the chart's ``events``.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from barlake.calendars.calendar import in_session
from barlake.clock import Clock, system_clock
from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.domain.actions import Action, split
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import (
    AuthError,
    PermanentError,
    ProviderError,
    TransientError,
    UnknownAtProviderError,
)
from barlake.providers import urls
from barlake.providers.base import ActionPage, Capabilities, Page, Request
from barlake.providers.http import HttpClient
from barlake.providers.wire import wire_columns

NAME = "yahoo"
BASE_URL = "https://query2.finance.yahoo.com"
PATH = "/v8/finance/chart/{symbol}"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
#: Yahoo's name of each lake interval (``1h`` is what it reports for ``60m`` too).
WIRE: dict[Interval, str] = {
    "1min": "1m",
    "5min": "5m",
    "15min": "15m",
    "30min": "30m",
    "1hour": "1h",
    "1day": "1d",
}
#: Days back from now that Yahoo serves each intraday interval; daily bars have no limit.
RETENTION: dict[Interval, int] = {"1min": 30, "5min": 60, "15min": 60, "30min": 60, "1hour": 730}
#: Calendar days per request. 1m: six days plus the 24 hours of padding below stay within the
#: 7 days Yahoo allowed per request before 2025 (8 since). The others have no per-request cap;
#: modest pieces keep a range that reaches past the retention edge from losing much.
MAX_DAYS: dict[Interval, int] = {"1min": 6, "5min": 30, "15min": 30, "30min": 30, "1hour": 183}
#: Around a request's dates: the symbol's exchange (unknown here) may be 12 hours either side of
#: UTC; daily bars are stamped at a session's open, which may be the previous UTC day.
_PAD_INTRADAY, _PAD_DAILY = timedelta(hours=12), timedelta(days=1)
#: Kept from the retention edge, for clock skew between us and Yahoo.
_MARGIN = timedelta(minutes=10)
#: "No pages": one answer per request, whatever its size (for the planner's estimates).
ONE_ANSWER = 10**9


class YahooOptions(BaseModel):
    """``providers.yahoo.options`` in lake.yaml."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_agent: str = Field(
        default=USER_AGENT, min_length=1, description="Sent with every request; Yahoo wants one."
    )


class YahooProvider:
    """Yahoo's chart endpoint, one symbol and one answer per ``fetch_page``."""

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        name: str = NAME,
        clock: Clock | None = None,
    ) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(YahooOptions, config.options, f"providers.{name}.options")
        self.capabilities = Capabilities(
            intervals=INTERVALS,
            symbols_per_request=1,
            bars_per_page=ONE_ANSWER,
            rate_limit_per_min=config.rate_limit_per_min or 60,  # undocumented: ~1-2 a second
            auth_env=(),
            max_days=dict(MAX_DAYS),
            action_symbols=1,
        )
        #: "Now", which Yahoo's intraday retention windows are measured from.
        self.clock: Clock = clock or system_clock
        self._http = HttpClient(name, config.base_url or BASE_URL, timeout_s=config.timeout_s)

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One symbol of ``request``; the cursor is the index of the next symbol."""
        index = int(cursor or 0)
        symbol = request.symbols[index]
        period1, period2 = self.window(request)
        data = await self._http.get_json(
            PATH.format(symbol=urls.segment(symbol)),
            params={
                "period1": str(period1),
                "period2": str(period2),
                "interval": WIRE[request.interval],
                "includePrePost": "false",
                "events": "div,splits,capitalGains",
            },
            headers={"User-Agent": self.options.user_agent},
            symbol=symbol,
            on_response=lambda status, _, body: self._refusal(status, body, symbol, request),
        )
        frame = self._frame(data, symbol, request, period1, period2)
        return Page(frame, str(index + 1) if index + 1 < len(request.symbols) else None)

    async def fetch_actions(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> ActionPage:
        """The splits and dividends of one symbol in ``window``, from the chart's ``events``.

        The chart is asked from the window's start to now, so that the answer names every
        split after each dividend: Yahoo reports dividends in today's shares, and dividing
        them back by the later splits gives the amount paid then, as the lake keeps it.
        """
        (symbol,) = symbols
        start = datetime.combine(window.start, time(), UTC) - _PAD_DAILY
        end = max(self.clock(), datetime.combine(window.end, time(), UTC)) + _PAD_DAILY
        request = Request(self.name, symbols, "1day", window)
        data = await self._http.get_json(
            PATH.format(symbol=urls.segment(symbol)),
            params={
                "period1": str(int(start.timestamp())),
                "period2": str(int(end.timestamp())),
                "interval": WIRE["1day"],
                "includePrePost": "false",
                "events": "div,splits",
            },
            headers={"User-Agent": self.options.user_agent},
            symbol=symbol,
            on_response=lambda status, _, body: self._refusal(status, body, symbol, request),
        )
        result = _result(data, self.name)
        try:
            found = events(symbol, result, self.name)
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{self.name} sent chart events barlake cannot read ({exc}); retry"
            raise TransientError(msg) from None
        return ActionPage([a for a in found if window.start <= a.ex_date < window.end])

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def window(self, request: Request) -> tuple[int, int]:
        """``period1`` and ``period2`` of ``request``; PermanentError when Yahoo no longer keeps
        its first day at its interval."""
        intraday = spec(request.interval).intraday
        pad = _PAD_INTRADAY if intraday else _PAD_DAILY
        start = datetime.combine(request.range.start, time(), UTC) - pad
        end = datetime.combine(request.range.end, time(), UTC) + pad
        days = RETENTION.get(request.interval)
        if days is not None:
            edge = self.clock() - timedelta(days=days)
            if request.range.start <= edge.date():
                raise PermanentError(self._too_old(request, days, edge.date() + timedelta(1)))
            start = max(start, edge + _MARGIN)
        return int(start.timestamp()), int(end.timestamp())

    def _too_old(self, request: Request, days: int, oldest: date) -> str:
        wire = WIRE[request.interval]
        per_request = "; at most 8 days of them per request" if wire == "1m" else ""
        return (
            f"{self.name} keeps {wire} bars for the last {days} days only{per_request}: "
            f"the oldest whole day it serves is {oldest}, and {request.describe()} starts "
            f"{request.range.start}. Ask for {oldest} or later, or fetch older "
            f"{request.interval} bars from another provider"
        )

    def _refusal(
        self, status: int, body: bytes, symbol: str, request: Request
    ) -> ProviderError | None:
        """Yahoo's own meaning of a 4xx (429 and 5xx are the shared mapping's)."""
        if status < 400 or status == 429 or status >= 500:
            return None
        said = _description(body)
        what = f"{self.name} answered HTTP {status}: {said}"
        if status in (401, 403):
            msg = (
                f"{what}. Yahoo wants a session cookie and crumb, which barlake does not fetch; "
                "try again later, or use another provider"
            )
            return AuthError(msg)
        if status == 404:
            msg = (
                f"{self.name} has no symbol {symbol!r} ({said}); check its Yahoo spelling, "
                "e.g. BRK-B, ^GSPC, BTC-USD"
            )
            return UnknownAtProviderError(msg, symbol=symbol)
        days = RETENTION.get(request.interval)
        if status == 422 and days is not None:
            wire = WIRE[request.interval]
            cap = " (and at most 8 days of them per request)" if wire == "1m" else ""
            msg = (
                f"{what}. Yahoo keeps {wire} bars for the last {days} days only{cap}: ask for "
                f"a more recent range, or fetch {request.interval} bars from another provider"
            )
            return PermanentError(msg, symbol=symbol)
        return PermanentError(what, symbol=symbol)

    def _frame(
        self, data: Any, symbol: str, request: Request, period1: int, period2: int
    ) -> pl.DataFrame:
        """The answer's bars in the lake's schema, cleaned as the module doc says, of the
        request's days where the exchange is (the padding brings neighbours)."""
        interval = request.interval
        result = _result(data, self.name)
        stamps = result.get("timestamp") or []
        if not isinstance(stamps, list):
            msg = f"{self.name} sent a `timestamp` that is not a list; retrying may help"
            raise TransientError(msg)
        quotes = (result.get("indicators") or {}).get("quote") or [{}]
        block = quotes[0] if isinstance(quotes, list) and isinstance(quotes[0], dict) else {}
        columns: dict[str, list[Any]] = {}
        for key in ("open", "high", "low", "close", "volume"):
            values = block.get(key)
            if values is None:
                values = [None] * len(stamps)
            if not isinstance(values, list) or len(values) != len(stamps):
                msg = f"{self.name} sent {key} and timestamp arrays of different lengths"
                raise TransientError(msg)
            columns[key] = values
        frame = wire_columns(
            {"ts": stamps, **columns}, symbols=symbol, source=self.name, stamps="s"
        )
        step = spec(interval).seconds if spec(interval).intraday else 0
        seconds = frame["ts"].dt.epoch("s")
        _check_granularity(seconds.drop_nulls().unique().sort(), step, interval, self.name)
        # A minute without trades, or a halt: no price at all (an unreadable one stays, for
        # validation to reject).
        empty = _absent([columns[k] for k in ("open", "high", "low", "close")])
        # Outside what was asked, or off the grid: Yahoo's "live" row.
        off = ~seconds.is_between(period1, period2, closed="left")
        if step:
            off = off | ((seconds - seconds.min()) % step != 0)
        if step:
            off = off | ~_in_regular_hours(frame["ts"], step, result.get("meta"))
        frame = frame.filter(~empty & ~off.fill_null(value=False))
        day = _local_day(result.get("meta"))
        inside = day.is_between(request.range.start, request.range.end, closed="left")
        frame = frame.filter(inside | pl.col("ts").is_null())
        if not step:
            frame = frame.with_columns(day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
        return frame.unique(subset=["ts"], keep="first", maintain_order=True)


def events(symbol: str, result: Mapping[str, Any], source: str) -> list[Action]:
    """The splits and cash dividends of a chart answer's ``events`` (``{"<ts>": {"date": ts,
    "numerator": 4, "denominator": 1}}``, ``{"<ts>": {"amount": 0.25, "date": ts}}``), each on
    its date where the exchange is. Dividends come in today's shares; each is multiplied back
    by the ratios of the answer's splits after it."""
    found = result.get("events") or {}
    given = result.get("meta")
    meta: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    zone = meta.get("exchangeTimezoneName")
    tz = ZoneInfo(zone) if isinstance(zone, str) and _known_zone(zone) else UTC

    def day(item: Mapping[str, Any]) -> date:
        return datetime.fromtimestamp(int(item["date"]), tz).date()

    splits = [
        split(symbol, day(s), float(s["numerator"]), float(s["denominator"]), source)
        for s in (found.get("splits") or {}).values()
    ]
    dividends = []
    for d in (found.get("dividends") or {}).values():
        ex = day(d)
        later = [s.ratio or 1.0 for s in splits if s.ex_date > ex]
        amount = float(d["amount"]) * functools.reduce(operator.mul, later, 1.0)
        currency = meta.get("currency") if isinstance(meta.get("currency"), str) else None
        dividends.append(
            Action(symbol, "cash_dividend", ex, source, amount=round(amount, 6), currency=currency)
        )
    return sorted(splits + dividends, key=lambda a: (a.ex_date, a.type))


def _result(data: Any, vendor: str) -> dict[str, Any]:
    """``chart.result[0]`` of an answer; empty when there are no bars."""
    chart = data.get("chart") if isinstance(data, dict) else None
    if not isinstance(chart, dict):
        msg = f"{vendor} sent a response without a `chart` object; retrying may help"
        raise TransientError(msg)
    if chart.get("error"):
        msg = f"{vendor} answered an error: {_described(data) or chart['error']}"
        raise PermanentError(msg)
    result = chart.get("result")
    if not result:
        return {}
    if not isinstance(result, list) or not isinstance(result[0], dict):
        msg = f"{vendor} sent a `chart.result` that is not a list of objects; retrying may help"
        raise TransientError(msg)
    return result[0]


def _check_granularity(stamps: pl.Series, step: int, interval: Interval, vendor: str) -> None:
    """PermanentError when intraday bars (``stamps``: their distinct epoch seconds, sorted)
    come further apart than ``interval`` (Yahoo has been seen answering 30m with 60m bars;
    yfinance asks for 15m and resamples)."""
    if not step or len(stamps) < 2:
        return
    closest = stamps.diff().min()
    if isinstance(closest, int) and closest > step:
        msg = (
            f"{vendor} sent bars {closest // 60} minutes apart for {WIRE[interval]}; "
            f"fetch {interval} bars from another provider"
        )
        raise PermanentError(msg)


def _local_day(meta: Any) -> pl.Expr:
    """Each bar's date where its exchange is: a daily bar's session date."""
    meta = meta if isinstance(meta, Mapping) else {}
    zone, offset = meta.get("exchangeTimezoneName"), meta.get("gmtoffset")
    local = pl.col("ts")
    if isinstance(zone, str) and _known_zone(zone):
        local = local.dt.convert_time_zone(zone)
    elif _is_int(offset):
        # The current offset, not the historical one: an hour of DST never moves a session's
        # open (where Yahoo stamps daily bars) to another date.
        local = local + timedelta(seconds=offset)
    return local.dt.date().alias("ts")


def _in_regular_hours(ts: pl.Series, step: int, meta: Any) -> pl.Series:
    """Which intraday rows overlap their day's regular session (``calendar.in_session``):
    not Yahoo's priced row stamped at the close (volume 0), which is no bar. The sessions are
    ``meta.tradingPeriods`` (each day's, early closes included), else the hours of
    ``meta.currentTradingPeriod.regular`` on every day; rows of a day neither names stay."""
    meta = meta if isinstance(meta, Mapping) else {}
    day = _local_day(meta)
    periods = _regular_periods(meta)
    rows = pl.DataFrame({"ts": ts}).with_columns(
        pl.col("ts").dt.epoch("s").alias("s"), day.alias("day")
    )
    if periods:
        opens, closes = zip(*periods, strict=True)
        table = pl.DataFrame({"open": opens, "close": closes}, schema=_PERIOD)
        table = table.with_columns(
            pl.from_epoch("open", time_unit="s").dt.replace_time_zone("UTC").alias("ts")
        ).select(day.alias("day"), "open", "close")
        bounds = rows.join(table.unique("day", keep="first"), on="day", how="left")
    else:
        regular = (meta.get("currentTradingPeriod") or {}).get("regular")
        if not isinstance(regular, Mapping) or not all(
            _is_int(regular.get(k)) for k in ("start", "end")
        ):
            return pl.Series([True] * len(ts))
        # That day's hours on each row's own day: midnight there plus the same offsets.
        moments = pl.Series([regular["start"], regular["end"]]).cast(pl.Int64)
        edges = pl.DataFrame({"ts": pl.from_epoch(moments, time_unit="s")})
        edges = edges.with_columns(pl.col("ts").dt.replace_time_zone("UTC"))
        since = edges.select(pl.col("ts").dt.epoch("s") - _midnight(day, meta)).to_series()
        midnight = rows.select(_midnight(day, meta)).to_series()
        bounds = rows.with_columns(
            (midnight + since[0]).alias("open"), (midnight + since[1]).alias("close")
        )
    inside = in_session(pl.col("s"), step, pl.col("open"), pl.col("close"))
    return bounds.select((pl.col("open").is_null() | inside).fill_null(value=True)).to_series()


_PERIOD = {"open": pl.Int64, "close": pl.Int64}


def _midnight(day: pl.Expr, meta: Mapping[str, Any]) -> pl.Expr:
    """Epoch seconds of the start of ``day`` (a date) in the exchange's time zone."""
    zone = meta.get("exchangeTimezoneName")
    start = day.cast(pl.Datetime("us"))
    if isinstance(zone, str) and _known_zone(zone):
        return start.dt.replace_time_zone(zone, ambiguous="earliest").dt.epoch("s")
    offset = meta.get("gmtoffset")
    return start.dt.epoch("s") - (offset if _is_int(offset) else 0)


def _regular_periods(meta: Mapping[str, Any]) -> list[tuple[int, int]]:
    """``(start, end)`` of each regular period in ``meta.tradingPeriods``: a list of days,
    each a list of periods (``includePrePost=false``), or its ``regular`` member."""
    periods = meta.get("tradingPeriods")
    if isinstance(periods, Mapping):
        periods = periods.get("regular")
    out: list[tuple[int, int]] = []
    for day in periods if isinstance(periods, list) else ():
        for period in day if isinstance(day, list) else [day]:
            if isinstance(period, Mapping) and all(
                _is_int(period.get(k)) for k in ("start", "end")
            ):
                out.append((int(period["start"]), int(period["end"])))
    return sorted(out)


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def _description(body: bytes) -> str:
    """The words of an error body: Yahoo's description, else the text itself."""
    try:
        described = _described(json.loads(body))
    except ValueError:
        described = None
    text = " ".join(body[:200].decode("utf-8", "replace").split())
    return described or text or "(no text)"


def _described(data: Any) -> str | None:
    """``description`` of Yahoo's ``{"chart" or "finance": {"error": {...}}}``."""
    for outer in data.values() if isinstance(data, dict) else ():
        error = outer.get("error") if isinstance(outer, dict) else None
        if isinstance(error, dict) and isinstance(error.get("description"), str):
            return str(error["description"])[:200]
    return None


def _absent(columns: list[list[Any]]) -> pl.Series:
    """The rows where every one of ``columns`` holds JSON null (not merely something that
    does not read as a number)."""
    nulls = [pl.Series(values=[v is None for v in values], dtype=pl.Boolean) for values in columns]
    return functools.reduce(operator.and_, nulls)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
