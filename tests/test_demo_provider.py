"""The offline demo provider: deterministic bars, real sessions, pages, and injected failures."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from barlake.calendars.calendar import get_calendar
from barlake.domain import bars
from barlake.domain.intervals import INTERVALS, Interval
from barlake.domain.ranges import DateRange
from barlake.errors import PermanentError, RateLimitError, TransientError
from barlake.providers.base import Page, Request
from barlake.providers.demo import (
    NEW_LISTING,
    DemoConfig,
    DemoProvider,
    demo_calendar,
    demo_halted,
    demo_listing_date,
    demo_sessions,
    generate,
)

# Symbols always listed and never halted (well-known tickers); checked by test_known_symbols.
NORMAL = ("AAPL", "MSFT", "SPY")
NOVEMBER = DateRange(date(2024, 11, 1), date(2024, 12, 1))


def days(first: str, last: str) -> DateRange:
    return DateRange.inclusive(date.fromisoformat(first), date.fromisoformat(last))


def request(symbols: tuple[str, ...], interval: Interval, window: DateRange) -> Request:
    return Request("demo", symbols, interval, window)


def fetch_all(provider: DemoProvider, req: Request) -> list[Page]:
    async def main() -> list[Page]:
        pages = [await provider.fetch_page(req)]
        while pages[-1].next_cursor is not None:
            assert len(pages) < 1000, "cursors must terminate"
            pages.append(await provider.fetch_page(req, pages[-1].next_cursor))
        await provider.aclose()
        return pages

    return asyncio.run(main())


def fetch_one(provider: DemoProvider, req: Request) -> Page:
    return asyncio.run(provider.fetch_page(req))


def session_dates(frame: pl.DataFrame) -> list[date]:
    return frame.select(pl.col("ts").dt.date().unique().sort()).to_series().to_list()


def test_known_symbols() -> None:
    window = days("2024-01-01", "2024-12-31")
    for symbol in NORMAL:
        assert (demo_listing_date(symbol) or date.min) < date(2000, 1, 1)  # SPY: 1993
        assert not any(demo_halted(symbol, d) for d in demo_sessions(symbol, window))
    assert demo_listing_date("NEWCO") == NEW_LISTING == date(2024, 6, 3)
    assert demo_listing_date("HALTME") is None


def test_bars_have_the_lake_schema_source_and_order() -> None:
    for interval in INTERVALS:
        window = days("2024-11-25", "2024-11-29")
        frame = generate(["SPY", "AAPL", "BTCUSDT", "ETH-USD", "AAPL"], interval, window)
        assert frame.schema == pl.Schema(bars.SCHEMA)
        assert frame.height > 0
        assert frame["source"].unique().to_list() == ["demo"]
        assert frame.equals(frame.sort(bars.KEY))
        assert frame.select(bars.KEY).is_duplicated().sum() == 0


def test_empty_requests_still_have_the_schema() -> None:
    weekend = days("2024-07-06", "2024-07-07")
    frame = generate(["AAPL"], "1min", weekend)
    assert frame.height == 0
    assert frame.schema == pl.Schema(bars.SCHEMA)
    assert generate([], "1day", NOVEMBER).schema == pl.Schema(bars.SCHEMA)


@pytest.mark.parametrize("interval", ["1min", "5min", "1hour", "1day"])
def test_a_bar_does_not_depend_on_the_range_that_fetched_it(interval: Interval) -> None:
    wide = days("2024-01-01", "2024-12-31") if interval in ("1hour", "1day") else NOVEMBER
    narrow = days("2024-11-18", "2024-11-22")
    whole = generate(["AAPL", "BTCUSDT"], interval, wide)
    part = generate(["AAPL", "BTCUSDT"], interval, narrow)
    assert part.height > 0
    in_narrow = pl.col("ts").dt.date().is_between(narrow.start, narrow.last)
    if interval != "1day":  # intraday bars belong to sessions, which XNYS keys by local date
        in_narrow = pl.col("ts").is_between(part["ts"].min(), part["ts"].max())
    assert_frame_equal(whole.filter(in_narrow), part)


def test_daily_bars_match_across_far_apart_cuts() -> None:
    long = generate(["MSFT"], "1day", days("2000-01-01", "2024-12-31"))
    for first, last in (("2024-12-02", "2024-12-06"), ("2000-01-03", "2000-01-03")):
        short = generate(["MSFT"], "1day", days(first, last))
        in_short = pl.col("ts").dt.date().is_between(short["ts"].min(), short["ts"].max())
        assert short.height > 0
        assert_frame_equal(long.filter(in_short), short)


def test_a_bar_does_not_depend_on_which_symbols_share_its_request() -> None:
    alone = generate(["AAPL"], "1min", days("2024-11-25", "2024-11-27"))
    packed = generate(["ZZZ", "AAPL", "ETHUSDT", "NEWCO"], "1min", days("2024-11-25", "2024-11-27"))
    assert_frame_equal(packed.filter(pl.col("symbol") == "AAPL"), alone)


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(0, 330),
    length=st.integers(1, 40),
    symbols=st.lists(
        st.sampled_from(["AAPL", "HALTX", "NEWCO", "BTCUSDT", "Q1", "Q2"]), min_size=1
    ),
)
def test_any_cut_of_a_year_of_daily_bars_is_a_slice_of_it(
    start: int, length: int, symbols: list[str]
) -> None:
    year = days("2024-01-01", "2024-12-31")
    first = year.start + timedelta(days=start)
    cut = DateRange(first, first + timedelta(days=length))
    # Through the last cut's end: a cut from late December reaches into 2025.
    span = DateRange(year.start, max(year.end, cut.end))
    whole = generate(["AAPL", "HALTX", "NEWCO", "BTCUSDT", "Q1", "Q2"], "1day", span)
    expected = whole.filter(
        pl.col("symbol").is_in(symbols) & pl.col("ts").dt.date().is_between(cut.start, cut.last)
    )
    assert_frame_equal(generate(symbols, "1day", cut), expected)


def test_sessions_have_their_real_length() -> None:
    for symbol in NORMAL:
        minutes = generate([symbol], "1min", days("2024-11-27", "2024-11-29"))
        per_day = dict(minutes.group_by(pl.col("ts").dt.date()).len().iter_rows())
        assert per_day == {date(2024, 11, 27): 390, date(2024, 11, 29): 210}  # 28th: Thanksgiving
        first = minutes.filter(pl.col("ts").dt.date() == date(2024, 11, 27))["ts"].min()
        assert first == datetime(2024, 11, 27, 14, 30, tzinfo=UTC)  # 09:30 New York
    hours = generate(["AAPL"], "1hour", days("2024-11-27", "2024-11-29"))
    assert hours.group_by(pl.col("ts").dt.date()).len().sort("ts")["len"].to_list() == [7, 4]
    fives = generate(["AAPL"], "5min", days("2024-07-01", "2024-07-01"))
    assert fives.height == 78


def test_no_bars_on_weekends_and_holidays() -> None:
    for interval in ("1min", "1day"):
        frame = generate(list(NORMAL), interval, days("2024-07-03", "2024-07-08"))
        assert session_dates(frame) == [date(2024, 7, 3), date(2024, 7, 5), date(2024, 7, 8)]


def test_crypto_trades_every_day_around_the_clock() -> None:
    frame = generate(["BTCUSDT"], "1min", days("2023-07-04", "2023-07-09"))
    assert frame.height == 6 * 1440
    assert generate(["ETH-USD"], "1day", days("2025-07-04", "2025-07-06")).height == 3


def test_new_symbols_have_no_bars_before_their_listing() -> None:
    frame = generate(["NEWCO"], "1day", days("2024-01-01", "2024-12-31"))
    assert frame["ts"].dt.date().min() == NEW_LISTING
    minutes = generate(["NEWCO"], "1min", days("2024-05-20", "2024-06-05"))
    assert session_dates(minutes) == [date(2024, 6, 3), date(2024, 6, 4), date(2024, 6, 5)]


def test_halt_symbols_miss_every_fifth_session_at_every_interval() -> None:
    window = days("2024-03-01", "2024-03-29")
    traded = demo_sessions("HALTME", window)
    normal = demo_sessions("AAPL", window)
    halted = [d for d in normal if d not in traded]
    assert len(halted) == pytest.approx(len(normal) / 5, abs=1)
    assert all(demo_halted("HALTME", d) for d in halted)
    assert not any(demo_halted("HALTME", d) for d in traded)
    for interval in ("1min", "30min", "1day"):
        assert session_dates(generate(["HALTME"], interval, window)) == traded


def test_listings_and_halts_are_predictable_for_any_symbol() -> None:
    symbols = [f"SYM{i}" for i in range(2000)]
    listed = [s for s in symbols if demo_listing_date(s) is not None]
    assert 0.06 < len(listed) / len(symbols) < 0.14
    for s in listed:
        listing = demo_listing_date(s)
        assert listing is not None
        assert date(2024, 1, 1) <= listing <= date(2025, 12, 31)

    window = days("2023-06-01", "2025-12-31")
    every = demo_sessions("AAPL", window)
    sample = symbols[:200]
    frame = generate(sample, "1day", window, now=datetime(2026, 1, 1, tzinfo=UTC))
    seen = frame.group_by("symbol").agg(pl.col("ts").dt.date())
    present = {row[0]: row[1] for row in seen.iter_rows()}
    halting = 0
    for s in sample:
        expected = demo_sessions(s, window)
        assert present.get(s, []) == expected
        listing = demo_listing_date(s) or date.min
        trading = set(expected)
        missing = [d for d in every if d not in trading]
        halts = [d for d in missing if d >= listing]
        assert all(demo_halted(s, d) for d in halts)
        assert not any(demo_halted(s, d) for d in expected[:50])
        if halts:
            halting += 1
            assert len(halts) < 0.05 * len(every)
    assert 8 <= halting <= 45  # about one symbol in eight


def test_bars_are_consistent_over_a_large_sample() -> None:
    symbols = [f"T{i}" for i in range(150)] + ["BTCUSDT", "ETH-USD"]
    frames = [
        generate(symbols, "1day", days("1995-01-01", "2025-12-31")),
        generate(symbols[:40], "1min", days("2025-03-03", "2025-03-14")),
        generate(symbols[:60], "5min", days("2024-01-01", "2024-02-29")),
        generate(symbols[:80], "1hour", days("2024-01-01", "2024-12-31")),
    ]
    for frame in frames:
        assert frame.height > 100_000
        assert bars.invalid_rows(frame).sum() == 0
        checks = frame.select(
            ok_high=(pl.col("high") >= pl.max_horizontal("open", "close", "low")).all(),
            ok_low=(pl.col("low") <= pl.min_horizontal("open", "close", "high")).all(),
            ok_positive=(pl.col("low") > 0).all(),
            ok_vwap=pl.col("vwap").is_between(pl.col("low"), pl.col("high")).all(),
            ok_volume=(pl.col("volume") > 0).all(),
            ok_trades=(pl.col("trades") > 0).all(),
        )
        assert all(checks.row(0)), checks
        assert sum(frame.null_count().row(0)) == 0
    daily = frames[0]
    assert daily["close"].min() > 1
    assert daily["close"].max() < 10_000
    returns = daily.select(pl.col("close").log().diff().over("symbol").drop_nulls())
    assert 0.01 < returns.to_series().std() < 0.03


def test_intraday_bars_open_and_close_with_their_day() -> None:
    window = days("2024-11-25", "2024-11-29")
    # XNYS and 24/7 sessions both fall within one UTC date, so it names the session.
    day = pl.col("ts").dt.date().alias("day")
    daily = generate(["AAPL", "BTCUSDT"], "1day", window).select("symbol", day, "open", "close")
    assert daily.height == 4 + 5
    for interval in ("1min", "15min", "1hour"):
        intraday = generate(["AAPL", "BTCUSDT"], interval, window)
        ends = intraday.group_by("symbol", day).agg(pl.col("open").first(), pl.col("close").last())
        assert_frame_equal(ends.sort("symbol", "day"), daily)


def test_sessions_in_progress_and_in_the_future_are_cut_at_now() -> None:
    now = datetime(2024, 11, 27, 15, 0, 30, tzinfo=UTC)  # 30.5 minutes after the open
    window = days("2024-11-25", "2024-12-06")
    minutes = generate(["AAPL"], "1min", window, now=now)
    today = minutes.filter(pl.col("ts").dt.date() == date(2024, 11, 27))
    assert today.height == 31
    assert today["ts"].max() < now
    assert minutes["ts"].dt.date().max() == date(2024, 11, 27)
    hours = generate(["AAPL"], "1hour", window, now=now)
    assert hours.filter(pl.col("ts").dt.date() == date(2024, 11, 27)).height == 1
    daily = generate(["AAPL"], "1day", window, now=now)
    assert session_dates(daily)[-1] == date(2024, 11, 27)
    before_open = generate(["AAPL"], "1day", window, now=now.replace(hour=14, minute=30, second=0))
    assert session_dates(before_open)[-1] == date(2024, 11, 26)
    assert_frame_equal(minutes, generate(["AAPL"], "1min", window).filter(pl.col("ts") < now))


def test_the_future_has_no_bars() -> None:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    assert generate(
        ["AAPL", "BTCUSDT"], "1day", DateRange(tomorrow, tomorrow + timedelta(7))
    ).is_empty()


def test_pages_add_up_to_the_generator() -> None:
    provider = DemoProvider()
    symbols = (*(f"P{i}" for i in range(20)), "BTCUSDT")
    req = request(symbols, "1min", days("2024-10-01", "2024-10-31"))
    pages = fetch_all(provider, req)
    assert len(pages) >= 3
    assert all(page.bars.height <= provider.capabilities.bars_per_page for page in pages)
    assert all(page.bars.height == provider.capabilities.bars_per_page for page in pages[:-1])
    union = pl.concat([page.bars for page in pages])
    assert_frame_equal(union, generate(symbols, "1min", req.range))


def test_small_pages_skip_empty_symbols_and_split_symbols() -> None:
    provider = DemoProvider()
    provider.capabilities = dataclasses.replace(provider.capabilities, bars_per_page=997)
    # NEWCO and Q1 list in June, HALTME misses sessions: the cursor must step over them.
    symbols = ("AAPL", "NEWCO", "HALTME", "Q1", "ETH-USD", "Q7")
    req = request(symbols, "5min", days("2024-05-01", "2024-05-31"))
    pages = fetch_all(provider, req)
    assert [p.bars.height for p in pages[:-1]] == [997] * (len(pages) - 1)
    assert 0 < pages[-1].bars.height <= 997
    union = pl.concat([page.bars for page in pages])
    assert_frame_equal(union, generate(symbols, "5min", req.range))
    assert "NEWCO" not in union["symbol"].to_list()


def test_an_empty_request_is_one_empty_page() -> None:
    page = fetch_one(DemoProvider(), request(("AAPL",), "1day", days("2024-07-04", "2024-07-04")))
    assert page.bars.is_empty()
    assert page.bars.schema == pl.Schema(bars.SCHEMA)
    assert page.next_cursor is None


def test_unknown_symbols_are_permanent_errors() -> None:
    provider = DemoProvider(DemoConfig(unknown_symbols=("NOPE",)))
    with pytest.raises(PermanentError, match="demo does not know symbol 'NOPE'"):
        fetch_one(provider, request(("AAPL", "NOPE"), "1day", NOVEMBER))
    assert fetch_one(provider, request(("AAPL",), "1day", NOVEMBER)).bars.height > 0


def test_requests_beyond_the_capabilities_are_refused() -> None:
    provider = DemoProvider()
    too_many = tuple(f"S{i}" for i in range(201))
    with pytest.raises(PermanentError, match="at most 200 symbols"):
        fetch_one(provider, request(too_many, "1day", NOVEMBER))
    with pytest.raises(PermanentError, match="at most 31 days"):
        fetch_one(provider, request(("AAPL",), "1min", days("2024-01-01", "2024-03-01")))
    with pytest.raises(PermanentError, match="cursor"):
        asyncio.run(provider.fetch_page(request(("AAPL",), "1day", NOVEMBER), "garbage"))


def test_injected_transient_failures() -> None:
    provider = DemoProvider(DemoConfig(transient_rate=1.0))
    with pytest.raises(TransientError) as caught:
        fetch_one(provider, request(("AAPL",), "1day", NOVEMBER))
    assert caught.value.retryable


def test_injected_rate_limits_carry_retry_after() -> None:
    provider = DemoProvider(DemoConfig(rate_limit_rate=1.0, retry_after_s=0.25))
    with pytest.raises(RateLimitError) as caught:
        fetch_one(provider, request(("AAPL",), "1day", NOVEMBER))
    assert caught.value.retry_after == 0.25


def test_fault_injection_is_seeded() -> None:
    def outcomes(seed: int) -> list[str]:
        provider = DemoProvider(DemoConfig(transient_rate=0.3, rate_limit_rate=0.3, seed=seed))
        seen = []
        for _ in range(40):
            try:
                fetch_one(provider, request(("AAPL",), "1day", days("2024-11-01", "2024-11-05")))
                seen.append("ok")
            except TransientError:
                seen.append("503")
            except RateLimitError:
                seen.append("429")
        return seen

    assert outcomes(1) == outcomes(1)
    assert outcomes(1) != outcomes(2)
    assert {"ok", "503", "429"} <= set(outcomes(1))


def test_the_server_side_rate_limit_triggers() -> None:
    provider = DemoProvider(DemoConfig(rate_limit_per_min=3))
    assert provider.capabilities.rate_limit_per_min == 3
    req = request(("AAPL",), "1day", NOVEMBER)
    for _ in range(3):
        fetch_one(provider, req)
    with pytest.raises(RateLimitError) as caught:
        fetch_one(provider, req)
    assert caught.value.retry_after is not None
    assert 59 < caught.value.retry_after <= 60


def test_zero_rate_limit_means_unlimited() -> None:
    provider = DemoProvider(DemoConfig(rate_limit_per_min=0))
    assert provider.capabilities.rate_limit_per_min == 60000
    req = request(("AAPL",), "1day", days("2024-11-01", "2024-11-05"))
    for _ in range(100):
        fetch_one(provider, req)


def test_latency_delays_each_page() -> None:
    provider = DemoProvider(DemoConfig(latency_ms=30))
    started = time.monotonic()
    fetch_one(provider, request(("AAPL",), "1day", days("2024-11-01", "2024-11-05")))
    assert time.monotonic() - started >= 0.03


def test_capabilities() -> None:
    caps = DemoProvider().capabilities
    assert DemoProvider.name == "demo"
    assert caps.intervals == INTERVALS
    assert (caps.symbols_per_request, caps.bars_per_page) == (200, 50_000)
    assert caps.max_days["1min"] == 31
    assert "1day" not in caps.max_days
    assert caps.auth_env == ()
    assert not caps.grouped_daily


def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        DemoConfig.model_validate({"latency": 5})
    with pytest.raises(pydantic.ValidationError):
        DemoConfig(transient_rate=1.5)
    config = DemoConfig(seed=3)
    with pytest.raises(pydantic.ValidationError):
        config.seed = 4  # type: ignore[misc]


def test_generation_throughput_is_printed() -> None:
    """Not a benchmark: prints throughput for a manual run with ``-s``; asserts nothing."""
    get_calendar("XNYS")  # loading the calendar takes a second; it is not generation
    symbols = [f"G{i}" for i in range(50)]
    cases: list[tuple[Interval, DateRange]] = [
        ("1min", days("2024-03-01", "2024-03-31")),
        ("1day", days("2015-01-01", "2024-12-31")),
    ]
    for interval, window in cases:
        started = time.perf_counter()
        height = generate(symbols, interval, window).height
        elapsed = time.perf_counter() - started
        print(f"demo {interval}: {height} bars in {elapsed:.3f}s = {height / elapsed:,.0f} bars/s")


def test_well_known_tickers_keep_their_real_listing_and_never_halt() -> None:
    # Their names' hashes would list TSLA on 2024-11-18 and V in 2025, halt AMZN at random.
    assert demo_listing_date("TSLA") == date(2010, 6, 29)
    assert demo_listing_date("V") == date(2008, 3, 19)
    assert demo_listing_date("AAPL") is None  # listed before 1990, where the calendar starts
    window = days("2024-01-01", "2025-12-31")
    every = [d.astype(date) for d in get_calendar("XNYS").sessions_in(window)]
    for symbol in ("TSLA", "V", "JNJ", "AMZN", "META", "PEP", "BRK.B"):
        assert demo_sessions(symbol, window) == every, symbol
    assert demo_calendar("BNBBTC").name == "24/7" and demo_listing_date("BNBBTC") == date(
        2017, 7, 14
    )
    assert demo_calendar("BTC-USD").name == demo_calendar("ETHUSDT").name == "24/7"
    assert demo_calendar("SETH").name == demo_calendar("AAPL").name == "XNYS"
