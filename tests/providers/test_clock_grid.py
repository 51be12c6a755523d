"""Hourly bars on the clock grid: Alpaca and Polygon stamp hours at the
top of the clock hour, so a 09:30 open's first hour is 09:00 and holds 09:30-10:00. The lake
keeps a bar that overlaps its session, stamped as the vendor stamps it; requests, the expected
count per session, gaps and the check agree on that rule."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from barlake.calendars.calendar import get_calendar
from barlake.domain.ranges import DateRange
from barlake.providers.alpaca import AlpacaProvider
from barlake.providers.base import Request
from barlake.providers.demo import generate
from barlake.providers.demo.grids import clock_bars
from barlake.providers.wire import to_sessions
from barlake.quality.rules import timestamp_rule

from .support import expected, stored

DAY = date(2024, 6, 3)  # EDT: the open is 13:30 UTC
XNYS = get_calendar("XNYS")
NY_HOURS = [datetime(2024, 6, 3, h, tzinfo=UTC) for h in range(13, 20)]  # 09:00..15:00


def test_a_session_has_seven_clock_hours_the_first_before_the_open() -> None:
    assert XNYS.first_bar(DAY, "1hour") == datetime(2024, 6, 3, 13, tzinfo=UTC)
    assert XNYS.first_bar(DAY, "30min") == datetime(2024, 6, 3, 13, 30, tzinfo=UTC)
    assert XNYS.bars_in_session(DAY, "1hour") == 7
    assert XNYS.bars_in_session(date(2024, 11, 29), "1hour") == 4  # 09:00..12:00, close 13:00
    assert XNYS.bars_in_session(DAY, "5min") == 78


def test_the_clock_grid_bars_aggregate_the_generator_half_hours() -> None:
    hours = clock_bars(["AAPL"], "1hour", DateRange.inclusive(DAY, DAY))
    halves = generate(["AAPL"], "30min", DateRange.inclusive(DAY, DAY))
    assert hours["ts"].to_list() == NY_HOURS
    assert hours["volume"].sum() == halves["volume"].sum()
    assert hours.row(0, named=True)["close"] == halves.row(0, named=True)["close"]  # 09:30-10:00
    assert hours["high"].max() == halves["high"].max() and hours["low"].min() == halves["low"].min()


def test_to_sessions_keeps_a_bar_overlapping_the_open_and_the_check_accepts_it() -> None:
    stamps = [datetime(2024, 6, 3, h, tzinfo=UTC) for h in range(12, 21)]  # 08:00..16:00
    frame = generate(["AAPL"], "1hour", DateRange.inclusive(DAY, DAY)).head(1)
    frame = pl.concat([frame.with_columns(pl.lit(t).alias("ts")) for t in stamps])
    kept = to_sessions(frame, "1hour", XNYS)
    assert kept["ts"].to_list() == NY_HOURS
    assert timestamp_rule(kept, "1hour", {"AAPL": XNYS}) == []
    # 08:00 ends at the open and 16:00 starts at the close; 13:30 is off both grids.
    outside = frame.filter(pl.col("ts").dt.hour().is_in([12, 20]))
    odd = outside.with_columns(pl.lit(datetime(2024, 6, 3, 14, 15, tzinfo=UTC)).alias("ts"))
    [finding] = timestamp_rule(pl.concat([outside, odd.head(1)]), "1hour", {"AAPL": XNYS})
    assert finding.message == "3 bar(s) off the interval's grid or outside the session"


def test_alpaca_asks_from_the_first_clock_hour() -> None:
    provider = AlpacaProvider()
    params = provider.params(Request("alpaca", ("AAPL",), "1hour", DateRange.inclusive(DAY, DAY)))
    assert params is not None
    assert (params["start"], params["end"]) == ("2024-06-03T13:00:00Z", "2024-06-03T20:00:00Z")
    params = provider.params(Request("alpaca", ("AAPL",), "5min", DateRange.inclusive(DAY, DAY)))
    assert params is not None and params["start"] == "2024-06-03T13:30:00Z"


@pytest.mark.parametrize("vendor", ["alpaca", "polygon"])
def test_a_full_session_of_hours_stores_seven_bars_and_no_gap(vendor, emulator, vendor_lake):
    em = emulator(vendor)
    lake = vendor_lake(vendor, em, ["AAPL", "MSFT"])
    result = lake.fill(interval="1hour", start=DAY, end=date(2024, 6, 4))
    assert (result.status, result.symbol_errors) == ("done", {})
    got = stored(lake.root, "1hour")
    aapl = got.filter(pl.col("symbol") == "AAPL")
    assert aapl.filter(pl.col("ts").dt.date() == DAY)["ts"].to_list() == NY_HOURS
    assert got.height == 2 * 2 * 7
    want = expected(["AAPL", "MSFT"], "1hour", DAY, date(2024, 6, 4), vendor)
    assert got.drop("source").equals(want.drop("source"))
    assert lake.gaps(interval="1hour", start=DAY, end=date(2024, 6, 4)) == []
    findings = lake.check(interval="1hour", start=DAY, end=date(2024, 6, 4)).findings
    assert [f for f in findings if f.rule in ("timestamp", "partial_session", "gap")] == []
