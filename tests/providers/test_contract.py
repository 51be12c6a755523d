"""The contract every real provider meets, run against each vendor's emulator over loopback HTTP
through the real ``Lake`` API: same bars as the demo generator, nothing asked twice, pages of
every shape, empty symbols, rate limits and every injected fault handled."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest

from barlake import bars as bars_
from barlake.providers.emulators import FAULTS

from .support import expected, same_values, stored

FIRST, LAST = date(2024, 6, 3), date(2024, 6, 14)  # 10 sessions
SYMBOLS = ["AAA", "BBB", "CCC"]


def hourly_pages(vendor: str, bars: int) -> int:
    """A ``page_limit`` giving pages of ``bars`` hourly bars: Polygon's limit counts the minute
    bars that hourly bars are made of."""
    return bars * 60 if vendor == "polygon" else bars


def fill(lake, symbols=None, interval="1day", first=FIRST, last=LAST):
    return lake.fill(symbols, interval=interval, start=first, end=last)


def test_fill_serves_the_demo_bars_then_asks_nothing(vendor, emulator, vendor_lake) -> None:
    em = emulator(vendor)
    symbols = ["AAPL", "BRK/B", "MSFT"]
    lake = vendor_lake(vendor, em, symbols)
    result = fill(lake, interval=["1day", "1hour"])
    assert (result.status, result.symbol_errors) == ("done", {})
    for interval in ("1day", "1hour"):
        got = stored(lake.root, interval)
        assert same_values(got, expected(symbols, interval, FIRST, LAST)), interval
        assert got["source"].unique().to_list() == [vendor]
    served = em.requests
    again = fill(lake, interval=["1day", "1hour"])
    assert (again.requests, again.requests_planned, again.bars_written) == (0, 0, 0)
    assert em.requests == served


@pytest.mark.parametrize("shape", ["mid-symbol", "exactly-full"])
def test_pages_ending_mid_symbol_or_exactly_full(vendor, emulator, vendor_lake, shape) -> None:
    # 3 symbols x 10 sessions. Alpaca's limit spans symbols (30 bars in one query); Polygon
    # pages each symbol's 10 bars. A full page always has a successor, empty if need be.
    limits = {
        "alpaca": {"mid-symbol": 7, "exactly-full": 15},
        "polygon": {"mid-symbol": 4, "exactly-full": 5},
    }
    limit = limits[vendor][shape]
    em = emulator(vendor)
    lake = vendor_lake(vendor, em, SYMBOLS, page_limit=limit)
    result = fill(lake)
    assert result.status == "done"
    assert same_values(stored(lake.root, "1day"), expected(SYMBOLS, "1day", FIRST, LAST))

    def pages(n: int) -> int:
        return math.ceil(n / limit) + (n % limit == 0)

    want = pages(30) if vendor == "alpaca" else 3 * pages(10)
    assert (result.requests, em.requests) == (want, want)


def test_symbols_without_data_are_covered_once(vendor, emulator, vendor_lake) -> None:
    # NEWCO lists on 2024-06-03 (demo rule); GHOST is unknown to the vendor.
    em = emulator(vendor, symbols=["AAPL", "NEWCO"])
    lake = vendor_lake(vendor, em, ["AAPL", "GHOST", "NEWCO"])
    first, last = date(2024, 5, 20), date(2024, 5, 31)
    result = fill(lake, first=first, last=last)
    assert (result.status, result.symbol_errors) == ("done", {})
    got = stored(lake.root, "1day")
    assert got["symbol"].unique().to_list() == ["AAPL"]
    assert same_values(got, expected(["AAPL"], "1day", first, last))
    again = fill(lake, first=first, last=last)
    assert again.requests == 0


@pytest.mark.parametrize(
    ("vendor", "settings"),
    [
        ("alpaca", {}),  # X-RateLimit-Reset
        ("polygon", {"retry_after": True}),  # Retry-After
        ("polygon", {"retry_after": False}),  # no hint: the scheduler backs off
    ],
)
def test_rate_limited_fill_completes_with_retries(emulator, vendor_lake, vendor, settings) -> None:
    em = emulator(vendor, rate_limit=4, window_s=0.4, **settings)
    lake = vendor_lake(vendor, em, SYMBOLS, page_limit=4)
    result = fill(lake)
    assert (result.status, result.symbol_errors) == ("done", {})
    refused = sum(1 for status, _ in em.log if status == 429)
    assert refused > 0 and result.retries >= refused
    assert same_values(stored(lake.root, "1day"), expected(SYMBOLS, "1day", FIRST, LAST))


#: Faults after which the fill must be complete and exact; the others fail one symbol.
RECOVERED = {
    "5xx",
    "slow",
    "timeout",
    "truncated",
    "malformed",
    "duplicate",
    "unordered",
    "outside",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_recovered_or_recorded(vendor, emulator, vendor_lake, fault) -> None:
    em = emulator(vendor, hang_s=1.5, seed=3)
    em.faults.force(fault, 2)
    lake = vendor_lake(vendor, em, SYMBOLS, page_limit=hourly_pages(vendor, 16), timeout_s=0.5)
    first, last = date(2024, 6, 3), date(2024, 6, 7)
    result = fill(lake, interval=["1day", "1hour"], first=first, last=last)
    assert em.faults.injected[fault] == 2
    for interval in ("1day", "1hour"):
        assert_only_true_bars(stored(lake.root, interval), expected(SYMBOLS, interval, first, last))
    if fault in RECOVERED:
        assert (result.status, result.symbol_errors) == ("done", {})
        for interval in ("1day", "1hour"):
            want = expected(SYMBOLS, interval, first, last)
            assert same_values(stored(lake.root, interval), want)
    else:
        # An impossible bar fails its symbol at validation, unless it was a pre- or
        # post-market bar, which the adapter drops anyway.
        assert {e["stage"] for e in result.symbol_errors.values()} <= {"validate"}
        assert result.status == ("partial" if result.symbol_errors else "done")
    if fault in {"5xx", "timeout", "truncated", "malformed"}:
        assert result.retries >= 2


@pytest.mark.parametrize("fault", ["nan", "negative"])
def test_impossible_bars_fail_their_symbol_at_validation(vendor, emulator, vendor_lake, fault):
    em = emulator(vendor, seed=5)
    em.faults.force(fault)
    lake = vendor_lake(vendor, em, SYMBOLS)
    result = fill(lake)
    assert result.status == "partial"
    [(bad, error)] = result.symbol_errors.items()
    assert error["stage"] == "validate" and "impossible" in error["error"]
    got, want = stored(lake.root, "1day"), expected(SYMBOLS, "1day", FIRST, LAST)
    assert_only_true_bars(got, want)
    assert got.height == want.height - 1  # the bad bar only
    assert lake.gaps(bad, interval="1day", start=FIRST, end=LAST)  # asked again next time


def test_random_faults_never_store_a_bad_bar(vendor, emulator, vendor_lake) -> None:
    spec = (
        "5xx=0.1,slow=0.05,timeout=0.02,truncated=0.05,malformed=0.05,duplicate=0.1,"
        "unordered=0.1,outside=0.1,nan=0.03,negative=0.03"
    )
    em = emulator(vendor, faults=spec, seed=11, hang_s=1.0, slow_s=0.05)
    symbols = [f"R{i}" for i in range(6)]
    lake = vendor_lake(vendor, em, symbols, page_limit=hourly_pages(vendor, 6), timeout_s=0.4)
    result = fill(lake, interval=["1day", "1hour"])
    assert sum(em.faults.injected.values()) > 0
    assert {e["stage"] for e in result.symbol_errors.values()} <= {"fetch", "validate"}
    for interval in ("1day", "1hour"):
        assert_only_true_bars(stored(lake.root, interval), expected(symbols, interval, FIRST, LAST))
    failed = set(result.symbol_errors)
    for interval in ("1day", "1hour"):
        ok = [s for s in symbols if s not in failed]
        got = stored(lake.root, interval).filter(pl.col("symbol").is_in(ok))
        assert same_values(got, expected(ok, interval, FIRST, LAST))


def assert_only_true_bars(got: pl.DataFrame, want: pl.DataFrame) -> None:
    """Every stored bar is valid, unique and exactly the generator's bar at its key."""
    if got.is_empty():
        return
    assert not bars_.invalid_rows(got).any()
    assert got.select("symbol", "ts").is_duplicated().sum() == 0
    joined = got.join(want, on=["symbol", "ts"], how="left", suffix="_want")
    assert joined["open_want"].null_count() == 0, "a bar outside the generator's bars was stored"
    for column in ("open", "high", "low", "close", "volume", "vwap", "trades"):
        assert (joined[column] == joined[f"{column}_want"]).all(), column
