"""Yahoo's chart API: the emulator's wire format and refusals, the intraday
range caps (cut by the planner, refused before sending, or mapped from Yahoo's 422), keying by
exchange date, Yahoo's null and live rows, and refusals that stop a job."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import httpx
import polars as pl
import pytest

from barlake.cli.exits import exit_code
from barlake.config import ProviderConfig
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, PermanentError
from barlake.providers.base import Request
from barlake.providers.demo.actions import demo_dividends, demo_splits
from barlake.providers.yahoo import YahooProvider

from .support import CLOCK, clock, expected, fetch_all, same_values, stored

UA = {"User-Agent": "Mozilla/5.0 test"}
JUNE_3 = 1717372800  # 2024-06-03 00:00 UTC


def chart(em, symbol: str = "AAPL", headers=UA, **params) -> httpx.Response:
    query = {"period1": JUNE_3, "period2": JUNE_3 + 5 * 86400, "interval": "1d", **params}
    return httpx.get(f"{em.url}/v8/finance/chart/{symbol}", params=query, headers=headers)


def provider(em, clock=clock) -> YahooProvider:
    return YahooProvider(ProviderConfig(base_url=em.url), clock=clock)


def request(interval: str, first: date, last: date, symbol: str = "AAPL") -> Request:
    return Request("yahoo", (symbol,), interval, DateRange.inclusive(first, last))  # type: ignore[arg-type]


# -- the emulator ------------------------------------------------------------------------------


def test_daily_answer_is_parallel_arrays_stamped_at_the_open(emulator) -> None:
    em = emulator("yahoo")
    [result] = chart(em, includePrePost="false", events="div,splits").json()["chart"]["result"]
    meta, quote = result["meta"], result["indicators"]["quote"][0]
    assert meta["exchangeTimezoneName"] == "America/New_York" and meta["gmtoffset"] == -18000
    assert meta["dataGranularity"] == "1d"
    assert "events" not in result or set(result["events"]) <= {"dividends", "splits"}
    assert result["timestamp"][0] == JUNE_3 + 13 * 3600 + 1800  # 09:30 EDT
    assert len(result["timestamp"]) == len(quote["close"]) == 5
    want = expected(["AAPL"], "1day", date(2024, 6, 3), date(2024, 6, 7))
    assert quote["open"] == want["open"].to_list() and isinstance(quote["volume"][0], int)
    adjclose = result["indicators"]["adjclose"][0]["adjclose"]
    assert all(0.9 * c < a <= c for a, c in zip(adjclose, quote["close"], strict=True))
    crypto = chart(em, "BTC-USD").json()["chart"]["result"][0]
    assert crypto["timestamp"][0] == JUNE_3 and crypto["meta"]["exchangeTimezoneName"] == "UTC"


NOW = int(CLOCK.timestamp())
DAY = 86400


@pytest.mark.parametrize(
    ("symbol", "params", "status", "words"),
    [
        ("GHOST", {}, 404, "No data found, symbol may be delisted"),
        ("AAPL", {"interval": "7m"}, 400, "interval=7m is not supported. Valid intervals: [1m"),
        ("AAPL", {"period2": JUNE_3 - 60}, 400, "start date cannot be after end date"),
        ("AAPL", {"interval": "1m", "period1": NOW - 9 * DAY, "period2": NOW}, 422, "Only 8 days"),
        ("AAPL", {"interval": "1m"}, 422, "must be within the last 30 days"),
        ("AAPL", {"interval": "5m", "period1": NOW - 61 * DAY, "period2": NOW}, 422, "60 days"),
        ("AAPL", {"interval": "60m", "period1": NOW - 731 * DAY}, 422, "last 730 days"),
    ],
)
def test_refusals_in_yahoos_words(emulator, symbol, params, status, words) -> None:
    em = emulator("yahoo", symbols=["AAPL"])
    answer = chart(em, symbol, **params)
    assert answer.status_code == status
    error = answer.json()["chart"]["error"]
    assert words in error["description"] and answer.json()["chart"]["result"] is None


def test_no_user_agent_or_too_fast_is_a_plain_429_and_crumbs_are_optional(emulator) -> None:
    em = emulator("yahoo", rate_limit=1, window_s=30)
    bare = chart(em, headers={"User-Agent": ""})
    assert (bare.status_code, bare.text.strip()) == (429, "Too Many Requests")
    assert chart(em, crumb="ignored").status_code == 200
    limited = chart(em)
    assert (limited.status_code, limited.text.strip()) == (429, "Too Many Requests")
    assert "retry-after" not in limited.headers
    refusing = emulator("yahoo", crumb_required=True)
    answer = chart(refusing)
    assert answer.status_code == 401
    assert answer.json()["finance"]["error"] == {
        "code": "Unauthorized",
        "description": "Invalid Crumb",
    }


def test_intraday_regular_hours_priced_close_row_periods_and_the_live_row(emulator) -> None:
    now = datetime(2024, 6, 4, 15, 47, 13, tzinfo=UTC)  # 11:47 EDT, trading
    em = emulator("yahoo", now=now)
    result = chart(em, interval="1h", includePrePost="false").json()["chart"]["result"][0]
    quote = result["indicators"]["quote"][0]
    stamps, close = result["timestamp"], quote["close"]
    opened, closed = JUNE_3 + 13 * 3600 + 1800, JUNE_3 + 20 * 3600
    assert stamps[:8] == [opened + i * 3600 for i in range(7)] + [closed]
    # At the close: Yahoo's priced row, the last price and no volume. Not a bar.
    assert [quote[k][7] for k in ("open", "high", "low", "close", "volume")] == [close[6]] * 4 + [0]
    assert stamps[-1] == int(now.timestamp()) and close[-1] == close[-2]  # the live row
    meta = result["meta"]
    assert meta["dataGranularity"] == "1h" and meta["chartPreviousClose"] > 0
    june_3 = {"timezone": "EDT", "start": opened, "end": closed, "gmtoffset": -14400}
    assert meta["tradingPeriods"][0] == [june_3] and len(meta["tradingPeriods"]) == 2
    current = meta["currentTradingPeriod"]
    assert current["regular"]["start"] == opened + DAY and current["pre"]["end"] == opened + DAY
    assert current["post"] == {**june_3, "start": closed + DAY, "end": closed + DAY + 4 * 3600}
    assert meta["firstTradeDate"] == 345479400  # 1980-12-12 09:30 EST, as Yahoo has it
    extended = chart(em, interval="60m", includePrePost="true").json()["chart"]["result"][0]
    assert extended["timestamp"][0] == opened - 3600
    assert set(extended["meta"]["tradingPeriods"]) == {"pre", "regular", "post"}


def test_the_priced_close_row_is_not_stored(emulator, vendor_lake) -> None:
    em = emulator("yahoo")
    lake = vendor_lake("yahoo", em, ["AAPL"])
    first, last = date(2025, 1, 6), date(2025, 1, 10)  # 09: markets closed for a funeral
    result = lake.fill(interval="5min", start=first, end=last)
    assert (result.status, result.symbol_errors) == ("done", {})
    got = stored(lake.root, "5min")
    assert got.height == 4 * 78 and got["volume"].min() > 0
    assert same_values(got, expected(["AAPL"], "5min", first, last), "yahoo")
    findings = lake.check(interval="5min", start=first, end=last).findings
    assert [f.rule for f in findings if f.severity == "error"] == []


def test_the_period2_bar_the_meta_and_events_are_yahoos(emulator) -> None:
    em = emulator("yahoo")
    crypto = chart(em, "BTC-USD").json()["chart"]["result"][0]
    assert crypto["timestamp"] == [JUNE_3 + i * DAY for i in range(6)]  # period2's bar too
    window = DateRange(date(2014, 6, 1), date(2025, 1, 1))
    dividends = demo_dividends("AAPL", window)
    assert len(dividends) > 40 and demo_splits("AAPL", window)[0].session == date(2014, 6, 9)
    ex = next(d for d in dividends if d.session.year == 2024)
    period1 = int(
        datetime(ex.session.year, ex.session.month, ex.session.day, tzinfo=UTC).timestamp()
    )
    answer = chart(em, period1=period1 - 3 * DAY, period2=period1 + 3 * DAY, events="div,splits")
    result = answer.json()["chart"]["result"][0]
    [(key, paid)] = result["events"]["dividends"].items()
    assert paid == {"amount": ex.amount, "date": int(key)} and "splits" not in result["events"]
    day = datetime.fromtimestamp(int(key), UTC).date()
    assert day == ex.session and int(key) in result["timestamp"]
    quote, adj = result["indicators"]["quote"][0], result["indicators"]["adjclose"][0]["adjclose"]
    later = demo_dividends("AAPL", DateRange(day, CLOCK.date() + timedelta(days=1)))
    before, on = result["timestamp"].index(int(key)) - 1, result["timestamp"].index(int(key))
    assert adj[before] < quote["close"][before] * later[0].factor * 1.000001
    assert adj[on] == pytest.approx(quote["close"][on] * math.prod(d.factor for d in later[1:]))
    split = chart(em, period1=1_402_000_000, period2=1_402_600_000, events="div|split")
    [event] = split.json()["chart"]["result"][0]["events"]["splits"].values()
    assert (event["numerator"], event["denominator"], event["splitRatio"]) == (7, 1, "7:1")


# -- the provider: range caps ------------------------------------------------------------------


def test_planner_cuts_minute_bars_into_requests_yahoo_accepts(emulator, vendor_lake) -> None:
    em = emulator("yahoo")
    lake = vendor_lake("yahoo", em, ["AAPL"])
    first, last = date(2025, 1, 2), date(2025, 1, 15)
    plan = lake.plan("AAPL", interval="1min", start=first, end=last)
    assert [p.request.range.days for p in plan.requests] == [6, 6, 2]
    yahoo = provider(em)
    spans = [end - start for start, end in map(yahoo.window, (p.request for p in plan.requests))]
    assert max(spans) <= 7 * 86400  # within the 7 (now 8) days Yahoo allows per request
    result = lake.run_plan(plan)
    assert (result.status, result.requests) == ("done", 3)
    assert same_values(stored(lake.root, "1min"), expected(["AAPL"], "1min", first, last), "yahoo")


def test_days_yahoo_no_longer_keeps_are_refused_before_asking(emulator, vendor_lake) -> None:
    em = emulator("yahoo")
    lake = vendor_lake("yahoo", em, ["AAPL", "MSFT"])
    # 30 days before the clock (2025-01-15 22:00) is 2024-12-16 22:00: 12-17 is the oldest
    # whole day. AAPL's first pieces start before it; MSFT's one piece reaches it, padded.
    old = lake.fill("AAPL", interval="1min", start=date(2024, 12, 5), end=date(2024, 12, 20))
    edge = lake.fill("MSFT", interval="1min", start=date(2024, 12, 17), end=date(2024, 12, 20))
    error = old.symbol_errors["AAPL"][0]["error"]
    assert "keeps 1m bars for the last 30 days only" in error and "2024-12-17" in error
    assert {status for status, _ in em.log} == {200} and em.requests == 2
    assert (edge.status, edge.requests) == ("done", 1)
    msft = stored(lake.root, "1min").filter(pl.col("symbol") == "MSFT")
    assert same_values(
        msft, expected(["MSFT"], "1min", date(2024, 12, 17), date(2024, 12, 20)), "yahoo"
    )


def test_yahoos_own_refusal_of_a_range_names_the_limit(emulator) -> None:
    em = emulator("yahoo")
    stale = provider(em, clock=lambda: CLOCK - timedelta(days=20))  # thinks Dec 10 is recent
    with pytest.raises(PermanentError, match="last 30 days") as refused:
        fetch_all(stale, request("1min", date(2024, 12, 10), date(2024, 12, 12)))
    assert "The requested range must be within the last 30 days" in str(refused.value)
    assert refused.value.symbol == "AAPL"
    too_long = request("1min", date(2025, 1, 2), date(2025, 1, 12))  # not from the planner
    with pytest.raises(PermanentError, match="Only 8 days worth of 1m"):
        fetch_all(provider(em), too_long)
    assert [status for status, _ in em.log] == [422, 422]


# -- the provider: keys, cleaning, refusals ----------------------------------------------------


def answer(stamps, closes, meta=None) -> dict:
    quote = {k: closes for k in ("open", "high", "low", "close")} | {"volume": [1] * len(closes)}
    result = {"meta": meta or {}, "timestamp": stamps, "indicators": {"quote": [quote]}}
    return {"chart": {"result": [result], "error": None}}


def frame_of(data, interval: str, first: date, last: date) -> pl.DataFrame:
    yahoo = YahooProvider(clock=lambda: datetime(2024, 6, 10, tzinfo=UTC))
    req = request(interval, first, last)
    return yahoo._frame(data, "AAPL", req, *yahoo.window(req))


def test_daily_bars_keyed_by_the_exchange_date() -> None:
    day = date(2024, 6, 4)
    # NZX opens at 10:00 NZST, 22:00 UTC the day before; Tokyo at 09:00 JST, 00:00 UTC.
    auckland = answer([JUNE_3 + 22 * 3600], [1.0], {"exchangeTimezoneName": "Pacific/Auckland"})
    tokyo = answer([JUNE_3 + DAY], [1.0], {"exchangeTimezoneName": "Mars/Base", "gmtoffset": 32400})
    for data in (auckland, tokyo):
        assert frame_of(data, "1day", day, day)["ts"].to_list() == [
            datetime(2024, 6, 4, tzinfo=UTC)
        ]


def test_null_rows_live_rows_and_wrong_granularity_are_cleaned() -> None:
    opened = JUNE_3 + 13 * 3600 + 1800
    stamps = [opened, opened + 1800, opened + 3600, opened + 3600 + 1027, JUNE_3 + 4 * 86400]
    frame = frame_of(
        answer(stamps, [1.0, None, 2.0, 2.5, 3.0]), "30min", date(2024, 6, 3), date(2024, 6, 3)
    )
    assert frame["ts"].dt.epoch("s").to_list() == [opened, opened + 3600]
    assert frame["vwap"].null_count() == frame["trades"].null_count() == 2
    hourly = answer([opened + i * 3600 for i in range(3)], [1.0] * 3)
    with pytest.raises(PermanentError, match="60 minutes apart for 30m"):
        frame_of(hourly, "30min", date(2024, 6, 3), date(2024, 6, 3))
    daily = answer([opened, opened + 15_000], [1.0, 9.0])  # the live row of a trading day
    assert frame_of(daily, "1day", date(2024, 6, 3), date(2024, 6, 3))["close"].to_list() == [1.0]


def test_invalid_crumb_stops_the_job_and_needs_no_key(emulator, vendor_lake) -> None:
    em = emulator("yahoo", crumb_required=True)
    lake = vendor_lake("yahoo", em, ["AAPL", "MSFT", "SPY"])
    with pytest.raises(AuthError, match="Invalid Crumb") as stopped:
        lake.fill(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 7))
    assert "cookie and crumb" in str(stopped.value) and exit_code(stopped.value) == 3
    assert em.requests <= 3 and {status for status, _ in em.log} == {401}
    assert provider(em).capabilities.auth_env == ()


def test_unknown_symbol_fails_by_name(emulator) -> None:
    em = emulator("yahoo", symbols=["AAPL"])
    with pytest.raises(PermanentError, match=r"no symbol 'BRK\.B'.*BRK-B") as refused:
        fetch_all(provider(em), request("1day", date(2024, 6, 3), date(2024, 6, 7), "BRK.B"))
    assert refused.value.symbol == "BRK.B"


def test_unreadable_values_stay_as_nulls_and_priceless_rows_go() -> None:
    opened = JUNE_3 + 13 * 3600 + 1800
    days = [opened + d * 86400 + i * 1800 for d in range(5) for i in range(13)]
    closes: list[object] = [10.0 + i / 100 for i in range(len(days))]
    data = answer(days, closes)
    quote = data["chart"]["result"][0]["indicators"]["quote"][0]
    quote["close"] = [*closes[:20], "x", *closes[21:]]  # unreadable: kept, for validation
    quote["open"] = [*closes[:40], True, *closes[41:]]
    for key in ("open", "high", "low", "close"):  # no price at all: a halt, dropped
        quote[key] = [*quote[key][:30], None, *quote[key][31:]]
    frame = frame_of(data, "30min", date(2024, 6, 3), date(2024, 6, 7))
    assert frame.height == len(days) - 1
    assert frame["ts"].dt.epoch("s").to_list() == days[:30] + days[31:]
    assert frame["close"].null_count() == 1 and frame["close"][20] is None
    assert frame["open"].null_count() == 1 and frame["open"][39] is None
    assert frame["high"].null_count() == frame["low"].null_count() == 0


def test_the_row_at_the_close_is_dropped_by_the_days_trading_periods() -> None:
    opened, closed = JUNE_3 + 13 * 3600 + 1800, JUNE_3 + 20 * 3600  # 09:30 and 16:00 EDT
    early = closed + DAY - 3 * 3600  # a 13:00 close the next day
    stamps = [opened + i * 1800 for i in range(13)] + [closed]
    stamps += [opened + DAY + i * 1800 for i in range(7)] + [early]
    data = answer(stamps, [10.0] * len(stamps))
    quote = data["chart"]["result"][0]["indicators"]["quote"][0]
    quote["volume"] = [5] * 13 + [0] + [5] * 7 + [0]  # the close rows: priced, no volume
    period = {"timezone": "EDT", "gmtoffset": -14400}
    days = [(opened, closed), (opened + DAY, early)]
    data["chart"]["result"][0]["meta"] = {
        "exchangeTimezoneName": "America/New_York",
        "tradingPeriods": [[{**period, "start": a, "end": b}] for a, b in days],
    }
    frame = frame_of(data, "30min", date(2024, 6, 3), date(2024, 6, 4))
    assert frame.height == 20 and frame["volume"].min() == 5
    # Without tradingPeriods, currentTradingPeriod's hours serve every day (not early closes).
    regular = {**period, "start": opened + 2 * DAY, "end": closed + 2 * DAY}
    data["chart"]["result"][0]["meta"] = {
        "exchangeTimezoneName": "America/New_York",
        "currentTradingPeriod": {"regular": regular},
    }
    frame = frame_of(data, "30min", date(2024, 6, 3), date(2024, 6, 4))
    assert frame["ts"].dt.epoch("s").to_list() == stamps[:13] + stamps[14:]
