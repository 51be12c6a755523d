"""Binance spot klines: the emulator's arrays, selection rules, errors, weight
headers, 429s and bans; the provider's pages across the 1000-kline limit, its own brake on the
used weight, and refusals (ban, firewall, location) that wait or stop the job."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from barlake.config import ProviderConfig
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, PermanentError, RateLimitError, TransientError
from barlake.providers.base import Request
from barlake.providers.binance import BinanceProvider, _klines

from .support import expected, fetch_all, same_values, stored

JUNE_3 = 1717372800000  # 2024-06-03 00:00 UTC, in ms
HOUR = 3_600_000
MINUTE = 60_000
DAY_MS = 86_400_000


def klines(em, **params) -> httpx.Response:
    query = {"symbol": "BTCUSDT", "interval": "1h", **params}
    return httpx.get(f"{em.url}/api/v3/klines", params=query)


def provider(em, **options) -> BinanceProvider:
    return BinanceProvider(ProviderConfig(base_url=em.url, options=options))


def request(interval: str, first: date, last: date) -> Request:
    return Request("binance", ("BTCUSDT",), interval, DateRange.inclusive(first, last))  # type: ignore[arg-type]


# -- the emulator ------------------------------------------------------------------------------


def test_klines_are_positional_arrays_of_decimal_strings(emulator) -> None:
    em = emulator("binance")
    first = klines(em, startTime=JUNE_3, limit=2).json()[0]
    want = expected(["BTCUSDT"], "1hour", date(2024, 6, 3), date(2024, 6, 3)).row(0, named=True)
    assert len(first) == 12 and first[0] == JUNE_3 and first[6] == JUNE_3 + HOUR - 1
    assert first[1] == f"{want['open']:.8f}" and float(first[4]) == want["close"]
    assert float(first[7]) / float(first[5]) == pytest.approx(want["vwap"], rel=1e-12)
    assert (first[8], first[11]) == (want["trades"], "0")


def test_selection_follows_start_end_and_limit(emulator) -> None:
    em = emulator("binance", now=datetime(2024, 6, 10, 12, 30, tzinfo=UTC))
    opens = [
        [k[0] for k in klines(em, **p).json()]
        for p in (
            {"startTime": JUNE_3 + 1, "limit": 3},  # the oldest from startTime on
            {"endTime": JUNE_3, "limit": 2},  # the newest up to endTime
            {"startTime": JUNE_3, "endTime": JUNE_3 + 2 * HOUR},  # never past endTime
            {"limit": 1},  # the newest, still forming
        )
    ]
    assert opens[0] == [JUNE_3 + HOUR, JUNE_3 + 2 * HOUR, JUNE_3 + 3 * HOUR]
    assert opens[1] == [JUNE_3 - HOUR, JUNE_3]
    assert opens[2] == [JUNE_3, JUNE_3 + HOUR, JUNE_3 + 2 * HOUR]
    assert opens[3] == [int(datetime(2024, 6, 10, 12, tzinfo=UTC).timestamp() * 1000)]
    assert len(klines(em, startTime=JUNE_3 - 30 * 24 * HOUR).json()) == 500  # the default limit


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"symbol": ""}, -1102, "Mandatory parameter 'symbol'"),
        ({"symbol": "btcusdt"}, -1100, "Illegal characters found in parameter 'symbol'"),
        ({"symbol": "GHOSTUSDT"}, -1121, "Invalid symbol."),
        ({"symbol": "AAPL"}, -1121, "Invalid symbol."),  # a stock: Binance lists crypto only
        ({"interval": "7m"}, -1120, "Invalid interval."),
        ({"limit": 1001}, -1130, "'limit' is not valid"),
        ({"startTime": JUNE_3 + 1, "endTime": JUNE_3}, -1023, "Start time is greater"),
    ],
)
def test_errors_are_codes_and_messages(emulator, params, code, words) -> None:
    em = emulator("binance", symbols=["BTCUSDT", "AAPL"])
    answer = klines(em, **params)
    assert answer.status_code == 400
    assert answer.json()["code"] == code and words in answer.json()["msg"]


def test_weight_headers_429_retry_after_then_a_ban(emulator) -> None:
    em = emulator("binance", rate_limit=2, window_s=30, ban_after=2, ban_s=1)
    answers = [klines(em, startTime=JUNE_3, limit=1) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 418]
    assert [a.headers["X-MBX-USED-WEIGHT-1M"] for a in answers[:4]] == ["2", "4", "4", "4"]
    assert answers[0].headers["X-MBX-USED-WEIGHT"] == "2"
    assert answers[2].json()["code"] == -1003 and "request weight per 1 MINUTE" in answers[2].text
    assert 25 <= int(answers[2].headers["Retry-After"]) <= 30
    assert (
        "IP banned until" in answers[4].json()["msg"] and answers[4].headers["Retry-After"] == "1"
    )
    assert klines(em).status_code == 418  # banned: even a request the limit would allow
    time.sleep(1.05)
    assert klines(em).status_code == 429  # the ban is over; the minute is not


@pytest.mark.parametrize(("block", "status"), [("geo", 451), ("waf", 403)])
def test_blocked_locations_and_firewall(emulator, block, status) -> None:
    answer = klines(emulator("binance", block=block))
    assert answer.status_code == status


# -- the provider ------------------------------------------------------------------------------


@pytest.mark.parametrize(("page_limit", "pages"), [(1000, 3), (960, 3), (959, 4)])
def test_pages_across_the_kline_limit(emulator, vendor_lake, page_limit, pages) -> None:
    # Two days of minute klines are 2,880: pages of 1000+1000+880, or exactly 3 x 960 (no empty
    # fourth page: the last one reaches endTime), or 959+959+959+3.
    em = emulator("binance")
    lake = vendor_lake("binance", em, ["BTCUSDT"], page_limit=page_limit)
    first, last = date(2024, 6, 3), date(2024, 6, 4)
    result = lake.fill(interval="1min", start=first, end=last)
    assert (result.status, result.requests, em.requests) == ("done", pages, pages)
    assert same_values(
        stored(lake.root, "1min"), expected(["BTCUSDT"], "1min", first, last), "binance"
    )


def test_planner_keeps_minute_requests_to_a_week(emulator, vendor_lake) -> None:
    lake = vendor_lake("binance", emulator("binance"), ["BTCUSDT"])
    plan = lake.plan(interval="1min", start=date(2024, 6, 1), end=date(2024, 6, 30))
    ranges = sorted(p.request.range for p in plan.requests)
    assert all(r.days <= 7 for r in ranges)
    assert [r.start for r in ranges[1:]] == [r.end for r in ranges[:-1]]  # June, tiled
    assert (ranges[0].start, ranges[-1].end) == (date(2024, 6, 1), date(2024, 7, 1))
    # 1,440 bars a day in pages of 1,000: 6-day pieces fill 9 pages each, 45 calls in all,
    # the fewest whole-day pieces of at most a week can make (7-day pieces would take 47).
    assert plan.total_requests == 45


def test_used_weight_is_tracked_and_a_full_minute_waits(emulator) -> None:
    em = emulator("binance")
    binance = provider(em, weight_limit=4, page_limit=10)

    day = request("1min", date(2024, 6, 3), date(2024, 6, 3))

    async def three_pages() -> None:
        try:
            cursor = None
            for _ in range(2):
                cursor = (await binance.fetch_page(day, cursor)).next_cursor
            assert binance.used_weight == 4
            with pytest.raises(RateLimitError, match="used 4 of its 4 request weight") as full:
                await binance.fetch_page(day, cursor)
            assert 0 < full.value.retry_after <= 60
        finally:
            await binance.aclose()

    asyncio.run(three_pages())
    assert em.requests == 2  # the third page was never sent


@pytest.mark.parametrize(("ban_s", "kind"), [(60, RateLimitError), (3600, AuthError)])
def test_an_ip_ban_is_waited_out_or_stops_the_job(emulator, ban_s, kind) -> None:
    em = emulator("binance", rate_limit=1, window_s=30, ban_after=1, ban_s=ban_s)
    binance = provider(em)

    async def go_on_after_429() -> BaseException:
        try:
            await binance.fetch_page(request("1day", date(2024, 6, 3), date(2024, 6, 7)))
            with pytest.raises(RateLimitError, match="HTTP 429"):
                await binance.fetch_page(request("1day", date(2024, 6, 3), date(2024, 6, 7)))
            with pytest.raises(kind) as banned:
                await binance.fetch_page(request("1day", date(2024, 6, 3), date(2024, 6, 7)))
            return banned.value
        finally:
            await binance.aclose()

    error = asyncio.run(go_on_after_429())
    assert [status for status, _ in em.log] == [200, 429, 418]
    if kind is RateLimitError:
        assert 55 <= error.retry_after <= 60  # type: ignore[attr-defined]
    else:
        assert "banned this IP" in str(error) and "rate_limit_per_min" in str(error)


@pytest.mark.parametrize(
    ("block", "words"),
    [("geo", "restricted location.*data-api.binance.vision"), ("waf", "firewall")],
)
def test_refusals_of_every_request_stop_the_job(emulator, vendor_lake, block, words) -> None:
    em = emulator("binance", block=block)
    lake = vendor_lake("binance", em, ["BTCUSDT", "ETHUSDT"])
    with pytest.raises(AuthError, match=words):
        lake.fill(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 7))
    assert em.requests <= 2
    assert provider(em).capabilities.auth_env == ()


def test_direct_requests_key_daily_klines_by_utc_date(emulator) -> None:
    em = emulator("binance")
    bars, pages = fetch_all(
        provider(em, page_limit=3), request("1day", date(2024, 6, 3), date(2024, 6, 9))
    )
    assert pages == 3 and bars["ts"].dt.hour().to_list() == [0] * 7
    assert same_values(
        bars, expected(["BTCUSDT"], "1day", date(2024, 6, 3), date(2024, 6, 9)), "binance"
    )


# -- klines read in bulk -----------------------------------------------------------------------

#: What may stand where a decimal string belongs, odd ones included.
ODD = [None, True, 1, 2.5, "x", "", " 1.5 ", "nan", "1e3", "0", "0.00000000", [1]]


def random_klines(seed: int, n: int, odd: float) -> list[list[object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        opened: object = JUNE_3 + i * 60_000
        values: list[object] = [f"{rng.uniform(1, 100):.8f}" for _ in range(6)]
        trades: object = rng.randint(0, 500)
        if rng.random() < odd:
            opened = rng.choice([None, str(opened), float(opened), JUNE_3 - HOUR])
        values = [rng.choice(ODD) if rng.random() < odd else v for v in values]
        if rng.random() < odd:
            trades = rng.choice([None, 2.0, 2.5, True, "3"])
        *prices, volume, quote = values
        closed = opened + MINUTE - 1 if type(opened) is int else opened
        out.append([opened, *prices, volume, closed, quote, trades, "0", "0", "0"])
    return out


def kline_by_kline(klines: list[list[object]], asked: tuple[int, int]) -> pl.DataFrame:
    """The bars of ``klines`` one at a time, by the rules ``_klines`` documents."""

    def decimal(value: object) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return None
        try:
            return float(value)
        except ValueError:
            return None

    def whole(value: object) -> int | None:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    rows = []
    for opened, *fields in klines:
        ms = opened if isinstance(opened, int) and not isinstance(opened, bool) else None
        if ms is not None and not asked[0] <= ms <= asked[1]:
            continue
        o, h, low, c, volume = (decimal(v) for v in fields[:5])
        quote = decimal(fields[6])
        vwap = quote / volume if quote is not None and volume else None
        ts = None if ms is None else datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        rows.append(("BTCUSDT", ts, o, h, low, c, volume, vwap, whole(fields[7]), "binance"))
    return pl.DataFrame(rows, schema=bars.SCHEMA, orient="row")


@pytest.mark.parametrize("odd", [0.0, 0.02, 0.5])
def test_bulk_klines_equal_the_kline_by_kline_reading(odd) -> None:
    klines = random_klines(11, 1000, odd)
    asked = (JUNE_3, JUNE_3 + 900 * 60_000)
    got, latest = _klines(klines, "BTCUSDT", "binance", asked, MINUTE)
    assert_frame_equal(got, kline_by_kline(klines, asked), check_exact=True)
    kept = [k[0] for k in klines if type(k[0]) is int and asked[0] <= k[0] <= asked[1]]
    assert latest == max(kept)


def test_a_short_kline_deep_in_a_page_fails_the_page_naming_it() -> None:
    klines: list[object] = list(random_klines(13, 1000, 0.0))
    klines[600] = [JUNE_3, "1.0", "1.0"]
    with pytest.raises(TransientError, match=r"^binance sent a kline that is not an array") as e:
        _klines(klines, "BTCUSDT", "binance", (JUNE_3, JUNE_3 + 1000 * 60_000), MINUTE)
    assert str(e.value).endswith("[1717372800000, '1.0', '1.0']") and e.value.retryable


def test_a_kline_closing_after_another_interval_is_not_a_bar() -> None:
    # A week's kline answered for a day: its close time says so, and nothing is stored.
    day = [JUNE_3, "1.0", "2.0", "0.5", "1.5", "700.0", JUNE_3 + DAY_MS - 1, "1050.0", 7]
    week = [JUNE_3 + DAY_MS, "1.5", "3.0", "1.0", "2.0", "4900.0", JUNE_3 + 8 * DAY_MS - 1, "9800"]
    got, _ = _klines([day], "BTCUSDT", "binance", (JUNE_3, JUNE_3 + 9 * DAY_MS), DAY_MS)
    assert got["volume"].to_list() == [700.0]
    with pytest.raises(PermanentError, match=r"closes at 1718063999999 \(10080 minutes long\)"):
        _klines([day, [*week, 9]], "BTCUSDT", "binance", (JUNE_3, JUNE_3 + 9 * DAY_MS), DAY_MS)
    with pytest.raises(PermanentError, match="where 1440 minutes were asked for") as caught:
        _klines([[*day[:6], None, *day[7:]]], "BTCUSDT", "binance", (JUNE_3, JUNE_3), DAY_MS)
    assert caught.value.symbol == "BTCUSDT"


def test_real_pairs_such_as_bnbbtc_are_served_and_stored(emulator, vendor_lake) -> None:
    em = emulator("binance")
    answer = klines(em, symbol="BNBBTC", interval="1d", startTime=JUNE_3, limit=7).json()
    assert [k[0] for k in answer] == [JUNE_3 + i * DAY_MS for i in range(7)]  # a weekend too
    assert all(k[6] == k[0] + DAY_MS - 1 for k in answer)
    lake = vendor_lake("binance", em, ["BNBBTC", "ETHBTC"])
    result = lake.fill(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 9))
    assert (result.status, result.symbol_errors) == ("done", {})
    got = stored(lake.root, "1day")
    assert got.group_by("symbol").len().sort("symbol").rows() == [("BNBBTC", 7), ("ETHBTC", 7)]
    assert lake.gaps(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 9)) == []


@pytest.mark.parametrize("name", ["BTC/USDT", "BTC-USDT"])
def test_a_pair_written_with_a_separator_is_sent_as_binance_spells_it(emulator, name) -> None:
    em = emulator("binance")
    asked = Request(
        "binance", (name,), "1day", DateRange.inclusive(date(2024, 6, 3), date(2024, 6, 5))
    )
    bars, _ = fetch_all(provider(em), asked)
    assert bars["symbol"].unique().to_list() == [name]
    want = expected(["BTCUSDT"], "1day", date(2024, 6, 3), date(2024, 6, 5))
    assert same_values(bars, want.with_columns(pl.lit(name).alias("symbol")), "binance")
