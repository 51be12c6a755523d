"""The contract every real provider meets, run against each vendor's emulator over loopback HTTP
through the real ``Lake`` API: same bars as the demo generator, nothing asked twice, pages of
every shape, empty symbols, rate limits and every injected fault handled.

Where vendors genuinely differ the expectation says so: Binance lists crypto pairs (24/7, so
12 daily bars where stocks have 10 sessions), Yahoo has no pages, no vwap and no trade count,
and both refuse an unknown symbol where Alpaca and Polygon answer it with no bars."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest

from barlake.domain import bars as bars_
from barlake.providers.emulators import FAULTS

from .support import (
    KEYLESS,
    as_vendor_writes,
    compared_columns,
    expected,
    names,
    page_options,
    same_values,
    stored,
    stored_trades,
    trade_truth,
)

FIRST, LAST = date(2024, 6, 3), date(2024, 6, 14)  # 10 sessions, 12 days
SYMBOLS = ["AAA", "BBB", "CCC"]


def fill(lake, symbols=None, interval="1day", first=FIRST, last=LAST):
    return lake.fill(symbols, interval=interval, start=first, end=last)


def test_fill_serves_the_demo_bars_then_asks_nothing(vendor, emulator, vendor_lake) -> None:
    em = emulator(vendor)
    symbols = names(vendor, ["AAPL", "BRK/B", "MSFT"])
    lake = vendor_lake(vendor, em, symbols)
    result = fill(lake, interval=["1day", "1hour"])
    assert (result.status, result.symbol_errors) == ("done", {})
    for interval in ("1day", "1hour"):
        got = stored(lake.root, interval)
        assert same_values(got, expected(symbols, interval, FIRST, LAST, vendor), vendor), interval
        assert got["source"].unique().to_list() == [vendor]
    served = em.requests
    again = fill(lake, interval=["1day", "1hour"])
    assert (again.requests, again.requests_planned, again.bars_written) == (0, 0, 0)
    assert em.requests == served


@pytest.mark.parametrize("shape", ["mid-symbol", "exactly-full"])
def test_pages_ending_mid_symbol_or_exactly_full(vendor, emulator, vendor_lake, shape) -> None:
    # 3 symbols x 10 sessions. Alpaca's limit spans symbols (30 bars in one query); Polygon
    # pages each symbol's 10 bars. A full page always has a successor, empty if need be.
    # Binance pages each pair's 12 days, and stops at endTime: no empty page.
    if vendor == "yahoo":
        pytest.skip("Yahoo has no pages: one answer per request (its range cuts: test_yahoo)")
    limits = {
        "alpaca": {"mid-symbol": 7, "exactly-full": 15},
        "polygon": {"mid-symbol": 4, "exactly-full": 5},
        "binance": {"mid-symbol": 5, "exactly-full": 6},
    }
    limit = limits[vendor][shape]
    symbols = names(vendor, SYMBOLS)
    em = emulator(vendor)
    lake = vendor_lake(vendor, em, symbols, page_limit=limit)
    result = fill(lake)
    assert result.status == "done"
    assert same_values(stored(lake.root, "1day"), expected(symbols, "1day", FIRST, LAST), vendor)

    def pages(n: int) -> int:
        return math.ceil(n / limit) + (n % limit == 0)

    want = {
        "alpaca": pages(30),
        "polygon": 3 * pages(10),
        "binance": 3 * math.ceil(12 / limit),
    }[vendor]
    assert (result.requests, em.requests) == (want, want)


def test_symbols_without_data_are_covered_once_the_vendor_has_shown_them(
    vendor, emulator, vendor_lake
) -> None:
    # NEWCO lists on 2024-06-03 (demo rule); GHOST is unknown to the vendor.
    aapl, ghost, newco = names(vendor, ["AAPL", "GHOST", "NEWCO"])
    em = emulator(vendor, symbols=[aapl, newco])
    lake = vendor_lake(vendor, em, [aapl, ghost, newco])
    first, last = date(2024, 5, 20), date(2024, 5, 31)
    result = fill(lake, first=first, last=last)
    got = stored(lake.root, "1day")
    assert got["symbol"].unique().to_list() == [aapl]
    assert same_values(got, expected([aapl], "1day", first, last), vendor)
    # An empty answer proves nothing of a symbol the vendor never showed: a warning, asked
    # again. Binance refuses unknown pairs, so its empty answer for a known one is final.
    empty = {"alpaca": [ghost, newco], "polygon": [ghost, newco], "yahoo": [newco]}
    warned = empty.get(vendor, [])
    assert result.status == "partial"
    for symbol in warned:
        assert result.symbol_errors[symbol][0]["stage"] == "fetch"
        assert "no 1day bars for any session" in result.symbol_errors[symbol][0]["error"]
    if vendor in KEYLESS:
        # Yahoo (404) and Binance (-1121) refuse an unknown symbol: it fails by name, once,
        # and is set aside.
        [error] = result.symbol_errors[ghost]
        assert error["stage"] == "fetch" and ghost in error["error"]
    assert sorted(result.symbol_errors) == sorted({*warned, ghost})
    again = fill(lake, first=first, last=last)
    assert sorted(again.symbol_errors) == sorted(warned)
    assert (again.requests > 0) == bool(warned)
    # Once the vendor has shown NEWCO's bars, its empty days before the listing are final.
    assert fill(lake, [newco], first=date(2024, 6, 3), last=date(2024, 6, 7)).status == "done"
    assert fill(lake, [newco], first=first, last=last).symbol_errors == {}
    assert fill(lake, [newco], first=first, last=last).requests == 0


@pytest.mark.parametrize(
    ("vendor", "settings"),
    [
        ("alpaca", {}),  # X-RateLimit-Reset
        ("polygon", {"retry_after": True}),  # Retry-After
        ("polygon", {"retry_after": False}),  # no hint: the scheduler backs off
        # plain-text 429, no hint; one request per symbol, 3 at once
        ("yahoo", {"rate_limit": 2, "window_s": 0.2}),
        ("binance", {}),  # Retry-After, and a ban for clients that do not wait
    ],
)
def test_rate_limited_fill_completes_with_retries(emulator, vendor_lake, vendor, settings) -> None:
    em = emulator(vendor, **{"rate_limit": 4, "window_s": 0.4, **settings})
    symbols = names(vendor, SYMBOLS)
    lake = vendor_lake(vendor, em, symbols, **page_options(vendor, 4))
    result = fill(lake)
    assert (result.status, result.symbol_errors) == ("done", {})
    refused = sum(1 for status, _ in em.log if status == 429)
    assert refused > 0 and result.retries >= refused
    assert {status for status, _ in em.log} == {200, 429}  # never banned
    want = expected(symbols, "1day", FIRST, LAST)
    assert same_values(stored(lake.root, "1day"), want, vendor)


#: Faults after which the fill must be complete and exact; the others fail one symbol.
RECOVERED = {
    "5xx",
    "echo",
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
    symbols = names(vendor, SYMBOLS)
    pages = page_options(vendor, 16, "1hour")
    lake = vendor_lake(vendor, em, symbols, **pages, timeout_s=0.5)
    first, last = date(2024, 6, 3), date(2024, 6, 7)
    result = fill(lake, interval=["1day", "1hour"], first=first, last=last)
    assert em.faults.injected[fault] == 2
    for interval in ("1day", "1hour"):
        want = expected(symbols, interval, first, last, vendor)
        assert_only_true_bars(stored(lake.root, interval), want, vendor)
    if fault in RECOVERED:
        assert (result.status, result.symbol_errors) == ("done", {})
        for interval in ("1day", "1hour"):
            want = expected(symbols, interval, first, last, vendor)
            assert same_values(stored(lake.root, interval), want, vendor)
    else:
        # An impossible bar fails its symbol at validation, unless it was a pre- or
        # post-market bar, which the adapter drops anyway.
        assert {e["stage"] for es in result.symbol_errors.values() for e in es} <= {"validate"}
        assert result.status == ("partial" if result.symbol_errors else "done")
    if fault in {"5xx", "echo", "timeout", "truncated", "malformed"}:
        assert result.retries >= 2


@pytest.mark.parametrize("fault", ["nan", "negative"])
def test_impossible_bars_fail_their_symbol_at_validation(vendor, emulator, vendor_lake, fault):
    em = emulator(vendor, seed=5)
    em.faults.force(fault)
    symbols = names(vendor, SYMBOLS)
    lake = vendor_lake(vendor, em, symbols)
    result = fill(lake)
    assert result.status == "partial"
    [(bad, [error])] = result.symbol_errors.items()
    assert error["stage"] == "validate" and "impossible" in error["error"]
    got, want = stored(lake.root, "1day"), expected(symbols, "1day", FIRST, LAST)
    assert_only_true_bars(got, want, vendor)
    assert got.height == want.height - 1  # the bad bar only
    assert lake.gaps(bad, interval="1day", start=FIRST, end=LAST)  # asked again next time


def test_random_faults_never_store_a_bad_bar(vendor, emulator, vendor_lake) -> None:
    spec = (
        "5xx=0.1,slow=0.05,timeout=0.02,truncated=0.05,malformed=0.05,duplicate=0.1,"
        "unordered=0.1,outside=0.1,nan=0.03,negative=0.03"
    )
    em = emulator(vendor, faults=spec, seed=11, hang_s=1.0, slow_s=0.05)
    symbols = names(vendor, [f"R{i}" for i in range(6)])
    pages = page_options(vendor, 6, "1hour")
    lake = vendor_lake(vendor, em, symbols, **pages, timeout_s=0.4)
    result = fill(lake, interval=["1day", "1hour"])
    assert sum(em.faults.injected.values()) > 0
    assert {e["stage"] for es in result.symbol_errors.values() for e in es} <= {"fetch", "validate"}
    for interval in ("1day", "1hour"):
        want = expected(symbols, interval, FIRST, LAST, vendor)
        assert_only_true_bars(stored(lake.root, interval), want, vendor)
    failed = set(result.symbol_errors)
    for interval in ("1day", "1hour"):
        ok = [s for s in symbols if s not in failed]
        got = stored(lake.root, interval).filter(pl.col("symbol").is_in(ok))
        assert same_values(got, expected(ok, interval, FIRST, LAST, vendor), vendor)


def assert_only_true_bars(got: pl.DataFrame, want: pl.DataFrame, vendor: str) -> None:
    """Every stored bar is valid, unique and exactly the generator's bar at its key (in the
    columns the vendor sends: see ``support.same_values``)."""
    if got.is_empty():
        return
    assert not bars_.invalid_rows(got).any()
    assert got.select("symbol", "ts").is_duplicated().sum() == 0
    joined = got.join(want, on=["symbol", "ts"], how="left", suffix="_want")
    assert joined["open_want"].null_count() == 0, "a bar outside the generator's bars was stored"
    for column in compared_columns(vendor)[2:]:
        assert (joined[column] == joined[f"{column}_want"]).all(), column


# -- trades ---------------------------------------------------------------------------------

TRADE_SESSIONS = [date(2024, 6, 3), date(2024, 6, 4)]
TRADING = ("alpaca", "polygon")


def faulty(emulator, vendor: str, fault: str, times: int = 1, seed: int = 0):
    """An emulator whose next ``times`` trades pages suffer ``fault`` (Massive's provider asks
    for the vendor's table of conditions first: that answer is only slowed)."""
    em = emulator(vendor, trades_per_minute=4, seed=seed, slow_s=0.01)
    if vendor == "polygon":
        em.faults.force("slow")
    em.faults.force(fault, times)
    return em


def fill_trades(lake, symbols=("AAPL", "MSFT")):
    first, last = TRADE_SESSIONS[0], TRADE_SESSIONS[-1]
    return lake.fill(",".join(symbols), interval="trades", start=first, end=last)


def test_trades_fill_stores_the_demo_prints_then_asks_nothing(vendor, emulator, vendor_lake):
    em = emulator(vendor, trades_per_minute=4)
    symbols = names(vendor, ["AAPL", "MSFT"])
    pages = {"trades_page_limit": 1000} if vendor in TRADING else {}
    lake = vendor_lake(vendor, em, symbols, **pages)
    if vendor not in TRADING:  # Yahoo and Binance serve no trades: plans say so
        plan = lake.plan(symbols, interval="trades", start=FIRST, end=LAST)
        [skip] = [s for s in plan.skipped if s.interval == "trades"]
        assert f"{vendor} serves no trades" in skip.reason and plan.trades == ()
        return
    result = fill_trades(lake)
    assert (result.status, result.symbol_errors) == ("done", {})
    want = as_vendor_writes(vendor, trade_truth(symbols, TRADE_SESSIONS, 4))
    assert stored_trades(lake.root).equals(want)
    assert result.trades_written == want.height == 2 * 2 * 390 * 4
    # 3,120 prints a session over both symbols in pages of 1,000 (Alpaca), or 1,560 a symbol
    # and session (Massive, plus its table of conditions): 8 pages either way.
    assert result.trade_requests == 8 and em.requests == 8 + (vendor == "polygon")
    served = em.requests
    again = fill_trades(lake)
    assert (again.requests, again.trade_requests, again.trades_written) == (0, 0, 0)
    assert em.requests == served


@pytest.mark.parametrize("fault", ["duplicate", "unordered", "5xx", "truncated", "slow"])
def test_trade_pages_repeated_reordered_or_lost_are_recovered(emulator, vendor_lake, fault):
    for vendor in TRADING:
        em = faulty(emulator, vendor, fault, 2, seed=2)
        lake = vendor_lake(vendor, em, ["AAPL", "MSFT"], trades_page_limit=700)
        result = fill_trades(lake)
        assert (result.status, result.symbol_errors) == ("done", {}), vendor
        assert em.faults.injected[fault] == 2 + (fault == "slow" and vendor == "polygon")
        want = as_vendor_writes(vendor, trade_truth(["AAPL", "MSFT"], TRADE_SESSIONS, 4))
        assert stored_trades(lake.root).equals(want), vendor


@pytest.mark.parametrize("fault", ["nan", "negative", "zero", "outside"])
def test_impossible_prints_reject_their_session_at_validation(emulator, vendor_lake, fault):
    for vendor in TRADING:
        em = faulty(emulator, vendor, fault, seed=4)  # the first page: the first session's
        lake = vendor_lake(vendor, em, ["AAPL"], trades_page_limit=700)
        result = fill_trades(lake, ["AAPL"])
        assert result.status == "partial", vendor
        [entry] = result.symbol_errors["AAPL"]
        assert (entry["stage"], entry["interval"]) == ("validate", "trades")
        assert str(TRADE_SESSIONS[0]) in entry["error"], entry["error"]
        # Never stored: the spoiled session stays a gap, the next one is whole.
        want = as_vendor_writes(vendor, trade_truth(["AAPL"], TRADE_SESSIONS[1:], 4))
        assert stored_trades(lake.root).equals(want), vendor
        gaps = lake.gaps("AAPL", interval="trades", start=TRADE_SESSIONS[0], end=LAST)
        assert gaps and gaps[0].range.start == TRADE_SESSIONS[0]
