"""Yahoo Finance's chart API, emulated.

Serves ``GET /v8/finance/chart/{symbol}`` with ``period1`` and ``period2`` in epoch seconds (a
bar starting at ``period2`` is answered too, as Yahoo does; yfinance drops it), ``interval``,
``includePrePost`` and ``events`` (``div``/``split``: the demo's dividends and splits,
``demo.actions``, keyed by their session's open). As Yahoo's, prices and volumes are
split-adjusted (the demo's raw bars divided by the splits after them) and so are dividends. The
answer is Yahoo's parallel arrays under ``chart.result[0]``: ``timestamp`` (bar start; daily
bars at the session's open), and ``indicators.quote[0]`` (plus ``adjclose`` for daily bars: the
close adjusted for the dividends since, up to now), with ``meta`` as Yahoo's: the exchange's
time zone, ``firstTradeDate``, ``regularMarketPrice``, ``chartPreviousClose``,
``currentTradingPeriod`` (pre, regular, post) and, intraday, ``tradingPeriods`` (each session's
regular period, or all three with ``includePrePost``). Crypto symbols (``BTC-USD``) trade 24/7
in UTC, others on XNYS.

Like the vendor it wants a ``User-Agent`` (else 429 ``Too Many Requests`` as plain text, also its
answer over the rate limit, without ``Retry-After``); ignores a ``crumb``, or refuses every
request with 401 ``Invalid Crumb`` when ``crumb_required``; answers 404 for unknown symbols,
400 for bad intervals and periods, and 422 past the intraday caps in Yahoo's words (1m: 8 days
per request, within 30 days; 5m to 30m: 60 days; 1h: 730 days). Its 5xx is Yahoo's HTML page.
With ``quirks`` (default) intraday answers carry a priced row at each past session's close (its
last price, volume 0), and while a session is trading a request reaching back before ``now``
ends with a "live" row stamped at ``now``, as Yahoo's do.

[INFERRED] the 400 texts for periods, the 5xx page and the 401 body on this endpoint (it was
observed on ``/v7/finance/quote``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.providers.demo import demo_calendar, demo_listing_date, generate
from barlake.providers.demo.actions import demo_dividends, demo_splits
from barlake.providers.demo.names import LISTED
from barlake.providers.demo.splits import dividend_as_adjusted, split_adjusted
from barlake.providers.emulators.base import Emulator, Quota, Reply

DAY = 86_400
_CHART = re.compile(r"/v8/finance/chart/([^/]+)")
VALID = ("1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo")
SERVED: dict[str, Interval] = {
    "1m": "1min",
    "5m": "5min",
    "15m": "15min",
    "30m": "30min",
    "60m": "1hour",
    "1h": "1hour",
    "1d": "1day",
}
#: Days back each intraday interval is kept.
KEPT = {"1m": 30, "2m": 60, "5m": 60, "15m": 60, "30m": 60, "90m": 60, "60m": 730, "1h": 730}
MAX_1M_DAYS = 8
RANGES = ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]
_REASONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity"}
_DOWN = (
    b"<html><body><h1>Will be right back...</h1><p>Thank you for your patience.</p></body></html>"
)


class YahooEmulator(Emulator):
    """``query1|query2.finance.yahoo.com`` on loopback."""

    vendor = "yahoo"

    def __init__(self, *, crumb_required: bool = False, quirks: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.crumb_required, self.quirks = crumb_required, quirks

    def authorize(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply | None:
        if not headers.get("user-agent"):
            return self.rate_limited(None)
        if self.crumb_required:
            error = {"code": "Unauthorized", "description": "Invalid Crumb"}
            return Reply(401, {"finance": {"result": None, "error": error}})
        return None

    def error(self, status: int, message: str) -> Reply:
        if status >= 500:
            return Reply(status, _DOWN, {"Content-Type": "text/html"})
        error = {"code": _REASONS.get(status, "Error"), "description": message}
        return Reply(status, {"chart": {"result": None, "error": error}})

    def rate_limited(self, quota: Quota | None) -> Reply:
        return Reply(429, b"Too Many Requests\r\n", {"Content-Type": "text/plain"})

    def route(self, path: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        chart = _CHART.fullmatch(path)
        if chart is None:
            return self.error(404, "HTTP 404 Not Found")
        symbol = unquote(chart[1])
        if self.symbols is not None and symbol not in self.symbols:
            return self.error(404, "No data found, symbol may be delisted")
        wire = query.get("interval", "1d")
        if wire not in VALID:
            valid = ", ".join(VALID)
            return self.error(
                400, f"Invalid input - interval={wire} is not supported. Valid intervals: [{valid}]"
            )
        interval = SERVED.get(wire)
        if interval is None:
            return self.error(400, f"the emulator serves only {', '.join(SERVED)}")
        period1, period2 = query.get("period1", ""), query.get("period2", "")
        if not (period1.lstrip("-").isdigit() and period2.lstrip("-").isdigit()):
            return self.error(400, "Invalid input - period1 and period2 must be unix seconds")
        start, end = int(period1), int(period2)
        if end <= start:
            return self.error(400, "Invalid input - start date cannot be after end date")
        now = self.now or datetime.now(UTC)
        refusal = self._caps(wire, start, end, now)
        if refusal is not None:
            return refusal
        cal = demo_calendar(symbol)
        pre_post = query.get("includePrePost") == "true"
        frame = self._bars(symbol, interval, start, end, pre_post=pre_post)
        before = datetime.fromtimestamp(start, UTC)
        frame = self.corrupt(frame, faults, before)
        frame = frame.with_columns(_stamps(frame, interval, cal))
        rows = frame.select("t", "open", "high", "low", "close", "volume").rows()
        if self.quirks:
            rows = self._quirks(rows, frame, interval, cal, (start, end), now, faults)
        meta = _meta(symbol, wire, cal, now)
        meta.update(_prices(symbol, cal, start, now))
        if spec(interval).intraday:
            meta["tradingPeriods"] = _trading_periods(cal, frame, pre_post=pre_post)
        result: dict[str, Any] = {"meta": meta, "indicators": {"quote": [{}]}}
        asked = DateRange(_day(start, cal), _day(end, cal) + timedelta(days=1))
        events = _events(symbol, cal, asked, query.get("events", ""))
        if events:
            result["events"] = events
        if rows:
            t, o, h, low, c, v = (list(column) for column in zip(*rows, strict=True))
            result["timestamp"] = t
            quote = {"open": o, "high": h, "low": low, "close": c, "volume": _volumes(v)}
            result["indicators"] = {"quote": [quote]}
            if interval == "1day":
                adjusted = _adjclose(symbol, cal, t, c, now)
                result["indicators"]["adjclose"] = [{"adjclose": adjusted}]
        return Reply(200, {"chart": {"result": [result], "error": None}})

    def _caps(self, wire: str, start: int, end: int, now: datetime) -> Reply | None:
        days = KEPT.get(wire)
        if days is None:
            return None
        said = f"{wire} data not available for startTime={start} and endTime={end}."
        if wire == "1m" and end - start > MAX_1M_DAYS * DAY:
            return self.error(
                422,
                f"{said} Only {MAX_1M_DAYS} days worth of 1m granularity data are allowed to "
                "be fetched per request.",
            )
        if start < now.timestamp() - days * DAY:
            return self.error(
                422, f"{said} The requested range must be within the last {days} days."
            )
        return None

    def _bars(
        self, symbol: str, interval: Interval, start: int, end: int, *, pre_post: bool
    ) -> pl.DataFrame:
        """Demo bars of ``symbol`` starting in [start, end) (daily: opening in it)."""
        first = datetime.fromtimestamp(start, UTC).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, UTC).date() + timedelta(days=2)
        window = DateRange(first, last)
        cal = demo_calendar(symbol)
        if pre_post and cal.name != "24/7":
            frame = self.bars([symbol], interval, window)
        else:
            frame = generate([symbol], interval, window, now=self.now)
        frame = split_adjusted(frame)  # Yahoo's prices and volumes are split-adjusted
        t = _stamps(frame, interval, cal)
        # period2 is exclusive for yfinance, but Yahoo answers the bar starting there too.
        return frame.filter((t >= start) & (t <= end))

    def _quirks(
        self,
        rows: list[tuple[Any, ...]],
        frame: pl.DataFrame,
        interval: Interval,
        cal: Calendar,
        window: tuple[int, int],
        now: datetime,
        faults: frozenset[str],
    ) -> list[tuple[Any, ...]]:
        """``rows`` with Yahoo's priced row at each past session's close (its last price,
        volume 0), and its live row."""
        start, end = window
        stamp = int(now.timestamp())
        extra: list[tuple[Any, ...]] = []
        if spec(interval).intraday and frame.height and cal.name != "24/7":
            closing = (
                frame.sort("ts")
                .group_by(pl.col("ts").dt.date().alias("day"))
                .agg(pl.col("close").last())
            )
            days = closing["day"].to_numpy().astype("datetime64[D]")
            closes = cal.closes[np.searchsorted(cal.sessions, days)] // 1_000_000
            extra += [
                (int(t), c, c, c, c, 0)
                for t, c in zip(closes, closing["close"], strict=True)
                if t <= stamp
            ]
        opened = cal.opened_before(now)
        trading = opened is not None and now < cal.open_close(opened)[1]
        if rows and trading and start <= stamp < end + DAY:
            last = max(rows, key=lambda row: row[0])
            extra.append((stamp, *last[1:]))
        if "unordered" in faults:
            return rows + extra
        return sorted(rows + extra, key=lambda row: row[0])


def _stamps(frame: pl.DataFrame, interval: Interval, cal: Calendar) -> pl.Series:
    """Yahoo's ``timestamp``: bar start in epoch seconds; daily bars at the session's open."""
    if spec(interval).intraday:
        return frame["ts"].dt.epoch("s").alias("t")
    days = frame["ts"].dt.date().to_numpy().astype("datetime64[D]")
    index = np.searchsorted(cal.sessions, days).clip(0, len(cal.sessions) - 1)
    return pl.Series("t", cal.opens[index] // 1_000_000, dtype=pl.Int64)


def _meta(symbol: str, wire: str, cal: Calendar, now: datetime) -> dict[str, Any]:
    crypto = cal.name == "24/7"
    zone = "UTC" if crypto else "America/New_York"
    local = now.astimezone(ZoneInfo(zone))
    offset = local.utcoffset() or timedelta(0)
    return {
        "currency": "USD",
        "symbol": symbol,
        "exchangeName": "CCC" if crypto else "NMS",
        "fullExchangeName": "CCC" if crypto else "NasdaqGS",
        "instrumentType": "CRYPTOCURRENCY" if crypto else "EQUITY",
        "regularMarketTime": int(now.timestamp()),
        "hasPrePostMarketData": not crypto,
        "gmtoffset": int(offset.total_seconds()),
        "timezone": local.tzname(),
        "exchangeTimezoneName": zone,
        "priceHint": 2,
        "dataGranularity": "1h" if wire == "60m" else wire,
        "range": "",
        "validRanges": RANGES,
    }


def _period(zone: str, start: int, end: int) -> dict[str, Any]:
    """One of Yahoo's trading periods: epoch seconds and the zone's name and offset then."""
    local = datetime.fromtimestamp(start, ZoneInfo(zone))
    offset = int((local.utcoffset() or timedelta(0)).total_seconds())
    return {"timezone": local.tzname(), "start": start, "end": end, "gmtoffset": offset}


def _hours(cal: Calendar, i: int) -> dict[str, dict[str, Any]]:
    """Session ``i``'s pre-market (from 04:00), regular and post-market (to 20:00) periods;
    crypto has no extended hours (they start and end at the open and the close)."""
    zone = "UTC" if cal.name == "24/7" else cal.tz
    opened, closed = int(cal.opens[i] // 1_000_000), int(cal.closes[i] // 1_000_000)
    pre, post = (opened, closed) if cal.name == "24/7" else (opened - 19_800, closed + 14_400)
    return {
        "pre": _period(zone, pre, opened),
        "regular": _period(zone, opened, closed),
        "post": _period(zone, closed, post),
    }


def _trading_periods(cal: Calendar, frame: pl.DataFrame, *, pre_post: bool) -> Any:
    """``meta.tradingPeriods`` of an intraday answer: each of its sessions' regular period
    (a list per day), or with ``includePrePost`` the pre, regular and post lists."""
    days = frame["ts"].dt.date().unique().sort().to_numpy().astype("datetime64[D]")
    hours = [_hours(cal, int(i)) for i in np.searchsorted(cal.sessions, days)]
    if not pre_post:
        return [[h["regular"]] for h in hours]
    return {kind: [[h[kind]] for h in hours] for kind in ("pre", "regular", "post")}


def _prices(symbol: str, cal: Calendar, start: int, now: datetime) -> dict[str, Any]:
    """``meta``'s prices and dates: ``firstTradeDate`` (the listing's open),
    ``regularMarketPrice`` (the last close by ``now``), ``chartPreviousClose`` (the last
    close before ``start``) and ``currentTradingPeriod`` (of the last session opened)."""
    listed = demo_listing_date(symbol) or LISTED.get(symbol)
    first = listed or cal.sessions[0].astype(date)
    crypto = cal.name == "24/7"
    opening = datetime.combine(first, time() if crypto else time(9, 30), ZoneInfo(cal.tz))
    first_trade = int(opening.timestamp())
    before = datetime.fromtimestamp(start, UTC)
    daily = generate([symbol], "1day", DateRange(before.date() - timedelta(14), before.date()))
    recent = generate([symbol], "1day", DateRange(now.date() - timedelta(14), now.date()), now=now)
    daily, recent = split_adjusted(daily), split_adjusted(recent)
    out: dict[str, Any] = {"firstTradeDate": first_trade}
    if recent.height:
        out["regularMarketPrice"] = recent["close"][-1]
    if daily.height:
        out["chartPreviousClose"] = daily["close"][-1]
    opened = cal.opened_before(now)
    if opened is not None:
        i = int(np.searchsorted(cal.sessions, np.datetime64(opened, "D")))
        out["currentTradingPeriod"] = _hours(cal, i)
    return out


def _events(symbol: str, cal: Calendar, window: DateRange, asked: str) -> dict[str, Any]:
    """``events`` of an answer: the dividends and splits in ``window`` that ``asked``
    (yfinance's ``div,splits``, or ``div|split``) wants, keyed by their session's open."""

    def stamp(day: date) -> int:
        i = int(np.searchsorted(cal.sessions, np.datetime64(day, "D")))
        return int(cal.opens[i] // 1_000_000)

    out: dict[str, Any] = {}
    if "div" in asked:
        dividends = {
            str(stamp(d.session)): {
                "amount": dividend_as_adjusted(symbol, d.session, d.amount),
                "date": stamp(d.session),
            }
            for d in demo_dividends(symbol, window)
        }
        if dividends:
            out["dividends"] = dividends
    if "split" in asked:
        splits = {
            str(stamp(s.session)): {
                "date": stamp(s.session),
                "numerator": s.numerator,
                "denominator": s.denominator,
                "splitRatio": f"{s.numerator}:{s.denominator}",
            }
            for s in demo_splits(symbol, window)
        }
        if splits:
            out["splits"] = splits
    return out


def _adjclose(
    symbol: str, cal: Calendar, stamps: list[Any], closes: list[Any], now: datetime
) -> list[Any]:
    """Each daily close adjusted for the dividends after it, up to ``now`` (Yahoo's
    ``adjclose``; prices are split-adjusted already)."""
    days = [_day(t, cal) for t in stamps]
    since = DateRange(min(days) + timedelta(days=1), now.date() + timedelta(days=1))
    later = demo_dividends(symbol, since) if since else []
    out = []
    for day, close in zip(days, closes, strict=True):
        factor = math.prod(d.factor for d in later if day < d.session)
        out.append(None if close is None else round(close * factor, 6))
    return out


def _day(seconds: int, cal: Calendar) -> date:
    return datetime.fromtimestamp(seconds, ZoneInfo(cal.tz)).date()


def _volumes(values: list[Any]) -> list[Any]:
    """Whole volumes as JSON integers, as Yahoo sends them."""
    return [
        int(v) if isinstance(v, float) and math.isfinite(v) and v.is_integer() else v
        for v in values
    ]
