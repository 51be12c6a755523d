"""Gaps: expected sessions minus covered ones, through ``Lake.gaps`` on real Parquet files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from barlake.calendars.calendar import get_calendar
from barlake.coverage.gaps import find_gaps, listing_window, missing
from barlake.domain.ranges import DateRange
from barlake.lake import Lake

JUNE = (date(2024, 6, 3), date(2024, 6, 28))
# The ``lake`` fixture (conftest.py) runs on a clock fixed at 2025-01-15 22:00 UTC.


def sessions(first: date, last: date, calendar: str = "XNYS") -> list[date]:
    days = get_calendar(calendar).sessions_in(DateRange.inclusive(first, last))
    return [date.fromisoformat(str(d)) for d in days]


def bar_frame(symbol: str, ts: list[datetime]) -> pl.DataFrame:
    n = len(ts)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": ts,
            "open": [10.0] * n,
            "high": [11.0] * n,
            "low": [9.0] * n,
            "close": [10.5] * n,
            "volume": [100.0] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def write_daily(lake: Lake, symbol: str, days: list[date]) -> None:
    lake.store.write(
        "1day", bar_frame(symbol, [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days])
    )


def write_minutes(lake: Lake, symbol: str, days: list[date]) -> int:
    """Every minute bar of each session (early closes included); returns the bar count."""
    cal = get_calendar("XNYS")
    ts: list[datetime] = []
    for d in days:
        opened, closed = cal.open_close(d)
        ts += [opened + timedelta(minutes=i) for i in range(cal.bars_in_session(d, "1min"))]
        assert ts[-1] + timedelta(minutes=1) == closed
    lake.store.write("1min", bar_frame(symbol, ts))
    return len(ts)


def gap(symbol: str, first: str, last: str, n: int, interval: str = "1day") -> dict[str, object]:
    return {"symbol": symbol, "interval": interval, "first": first, "last": last, "sessions": n}


def found(lake: Lake, symbols=None, first=JUNE[0], last=JUNE[1], interval="1day"):
    return [g.to_dict() for g in lake.gaps(symbols, interval=interval, start=first, end=last)]


def without(days: list[date], *drop: date) -> list[date]:
    return [d for d in days if d not in drop]


# -- daily -------------------------------------------------------------------------------------


def test_complete_symbol_has_no_gaps_and_weekends_are_not_gaps(lake):
    lake.add_symbols(["AAPL"])
    write_daily(lake, "AAPL", sessions(*JUNE))
    assert found(lake) == []


def test_a_symbol_without_bars_misses_every_session(lake):
    lake.add_symbols(["AAPL", "BRK/B"])
    write_daily(lake, "AAPL", sessions(*JUNE))
    assert found(lake) == [gap("BRK/B", "2024-06-03", "2024-06-28", 19)]


def test_missing_sessions_across_a_weekend_form_one_gap(lake):
    lake.add_symbols(["AAPL"])
    write_daily(lake, "AAPL", without(sessions(*JUNE), date(2024, 6, 7), date(2024, 6, 10)))
    assert found(lake) == [gap("AAPL", "2024-06-07", "2024-06-10", 2)]


def test_interior_holes_are_exact(lake):
    lake.add_symbols(["AAPL", "MSFT"])
    drop = [date(2024, 6, 3), date(2024, 6, 5), date(2024, 6, 6), date(2024, 6, 24)]
    write_daily(lake, "AAPL", without(sessions(*JUNE), *drop))
    write_daily(lake, "MSFT", without(sessions(*JUNE), date(2024, 6, 28)))
    assert found(lake) == [
        gap("AAPL", "2024-06-03", "2024-06-03", 1),
        gap("AAPL", "2024-06-05", "2024-06-06", 2),
        gap("AAPL", "2024-06-24", "2024-06-24", 1),
        gap("MSFT", "2024-06-28", "2024-06-28", 1),
    ]
    assert found(lake, ["MSFT"]) == [gap("MSFT", "2024-06-28", "2024-06-28", 1)]


@pytest.mark.parametrize(
    ("holiday", "before", "after"),
    [
        (date(2024, 6, 19), date(2024, 6, 18), date(2024, 6, 20)),
        (date(2024, 7, 4), date(2024, 7, 3), date(2024, 7, 5)),
        (date(2024, 11, 28), date(2024, 11, 27), date(2024, 11, 29)),
    ],
)
def test_holidays_are_not_gaps(lake, holiday, before, after):
    lake.add_symbols(["AAPL"])
    first, last = before - timedelta(days=7), after + timedelta(days=7)
    every = sessions(first, last)
    assert holiday not in every
    write_daily(lake, "AAPL", every)
    assert found(lake, first=first, last=last) == []
    # The sessions either side of the holiday are consecutive: one gap, two sessions.
    other = "MSFT"
    lake.add_symbols([other])
    write_daily(lake, other, without(every, before, after))
    assert found(lake, [other], first, last) == [
        gap(other, before.isoformat(), after.isoformat(), 2)
    ]


def test_listed_mid_range_misses_nothing_before_listing(lake):
    lake.add_symbols(["NEWCO"], listed_on=date(2024, 6, 12))
    assert found(lake) == [gap("NEWCO", "2024-06-12", "2024-06-28", 12)]
    write_daily(lake, "NEWCO", sessions(date(2024, 6, 12), JUNE[1]))
    assert found(lake) == []


def test_listed_after_the_window_expects_nothing(lake):
    lake.add_symbols(["NEWCO"], listed_on=date(2024, 9, 3))
    assert found(lake) == []


def test_delisted_symbol_expects_nothing_after_its_last_session(lake):
    lake.add_symbols(["OLDCO"], delisted_on=date(2024, 6, 14))
    write_daily(lake, "OLDCO", sessions(JUNE[0], date(2024, 6, 12)))
    assert found(lake) == [gap("OLDCO", "2024-06-13", "2024-06-14", 2)]


def test_delisted_before_the_window_expects_nothing(lake):
    lake.add_symbols(["OLDCO"], delisted_on=date(2023, 5, 1))
    assert found(lake) == []


def test_sessions_after_now_are_not_expected(lake):
    lake.add_symbols(["AAPL"])
    # The clock is 2025-01-15 22:00 UTC: that session closed; 01-16 and 01-17 have not opened.
    assert found(lake, first=date(2025, 1, 13), last=date(2025, 1, 17)) == [
        gap("AAPL", "2025-01-13", "2025-01-15", 3)
    ]


def test_crypto_on_the_24_7_calendar_misses_weekends(lake):
    lake.add_symbols(["BTCUSD"], calendar="24/7", asset_class="crypto")
    weekdays = [d for d in sessions(JUNE[0], date(2024, 6, 16), "24/7") if d.weekday() < 5]
    write_daily(lake, "BTCUSD", weekdays)
    assert found(lake, first=JUNE[0], last=date(2024, 6, 16)) == [
        gap("BTCUSD", "2024-06-08", "2024-06-09", 2),
        gap("BTCUSD", "2024-06-15", "2024-06-16", 2),
    ]


def test_crypto_by_asset_class_alone_uses_24_7(lake):
    lake.add_symbols(["ETHUSD"], asset_class="crypto")
    assert found(lake, first=date(2024, 6, 1), last=date(2024, 6, 2)) == [
        gap("ETHUSD", "2024-06-01", "2024-06-02", 2)
    ]


# -- ledger ------------------------------------------------------------------------------------


def ledger(symbol: str, start: date, end: date, *, bars: int, final: bool) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "provider": ["demo"],
            "symbol": [symbol],
            "interval": ["1day"],
            "start_date": [start],
            "end_date": [end],
            "bars": [bars],
            "fetched_at": [datetime(2024, 7, 1, tzinfo=UTC)],
            "final": [final],
            "job_id": ["00000000-0000-0000-0000-000000000001"],
        }
    )


def test_a_final_empty_ledger_range_is_covered(lake):
    lake.add_symbols(["HALTCO"])
    halted = [date(2024, 6, 10), date(2024, 6, 11)]
    write_daily(lake, "HALTCO", without(sessions(*JUNE), *halted))
    assert found(lake) == [gap("HALTCO", "2024-06-10", "2024-06-11", 2)]
    lake.catalog.add_ledger(
        ledger("HALTCO", date(2024, 6, 10), date(2024, 6, 12), bars=0, final=True)
    )
    assert found(lake) == []


def test_a_final_ledger_range_covers_only_its_own_dates(lake):
    lake.add_symbols(["HALTCO"])
    lake.catalog.add_ledger(
        ledger("HALTCO", date(2024, 6, 10), date(2024, 6, 11), bars=0, final=True)
    )
    assert found(lake) == [
        gap("HALTCO", "2024-06-03", "2024-06-07", 5),
        gap("HALTCO", "2024-06-11", "2024-06-28", 13),
    ]


def test_a_provisional_ledger_range_over_stored_bars_is_a_gap_again(lake):
    lake.add_symbols(["AAPL"])
    write_daily(lake, "AAPL", sessions(*JUNE))
    lake.catalog.add_ledger(
        ledger("AAPL", date(2024, 6, 27), date(2024, 6, 29), bars=2, final=False)
    )
    assert found(lake) == [gap("AAPL", "2024-06-27", "2024-06-28", 2)]
    # Fetched again once the sessions closed: final wins over the older provisional range.
    lake.catalog.add_ledger(
        ledger("AAPL", date(2024, 6, 27), date(2024, 6, 29), bars=2, final=True)
    )
    assert found(lake) == []


def test_gaps_and_coverage_read_the_ledger_by_one_rule(lake):
    """A final range that came back with bars covers nothing by itself: a bar lost after the
    fetch is a gap for ``gaps`` and a missing cell for ``coverage``, never "empty"."""
    lake.add_symbols(["LOSTCO"])
    june = sessions(*JUNE)
    lost = date(2024, 6, 12)
    write_daily(lake, "LOSTCO", without(june, lost))
    lake.catalog.add_ledger(
        ledger("LOSTCO", JUNE[0], JUNE[1] + timedelta(days=1), bars=len(june), final=True)
    )
    assert found(lake) == [gap("LOSTCO", "2024-06-12", "2024-06-12", 1)]
    cov = lake.coverage("LOSTCO", start=JUNE[0], end=JUNE[1])
    assert cov.state("LOSTCO", lost) == 0  # missing
    gap_cells = {
        d
        for d, s in zip(cov.sessions.tolist(), cov.row("LOSTCO").tolist(), strict=True)
        if s in (0, 2)
    }
    assert gap_cells == {lost}
    # An empty final range over the same day is what covers it (a halt).
    lake.catalog.add_ledger(ledger("LOSTCO", lost, lost + timedelta(days=1), bars=0, final=True))
    assert found(lake) == []
    assert lake.coverage("LOSTCO", start=JUNE[0], end=JUNE[1]).state("LOSTCO", lost) == 3


# -- intraday ----------------------------------------------------------------------------------


def test_early_close_with_210_minute_bars_is_not_a_gap(lake):
    lake.add_symbols(["AAPL"])
    week = sessions(date(2024, 11, 25), date(2024, 11, 29))
    assert write_minutes(lake, "AAPL", week) == 4 * 390 + 210 - 390
    assert found(lake, first=week[0], last=week[-1], interval="1min") == []


def test_minute_gaps_are_whole_sessions_joined_across_a_holiday(lake):
    lake.add_symbols(["AAPL"])
    week = sessions(date(2024, 11, 25), date(2024, 11, 29))
    write_minutes(lake, "AAPL", without(week, date(2024, 11, 27), date(2024, 11, 29)))
    assert found(lake, first=week[0], last=week[-1], interval="1min") == [
        gap("AAPL", "2024-11-27", "2024-11-29", 2, "1min")
    ]


def test_an_illiquid_session_with_few_bars_is_covered(lake):
    lake.add_symbols(["THIN"])
    day = date(2024, 6, 4)
    opened, _ = get_calendar("XNYS").open_close(day)
    lake.store.write("1min", bar_frame("THIN", [opened + timedelta(minutes=m) for m in (7, 200)]))
    assert found(lake, first=day, last=day, interval="1min") == []


def test_dst_week_minute_bars_one_missing_session(lake):
    lake.add_symbols(["AAPL"])
    days = sessions(date(2024, 3, 4), date(2024, 3, 15))
    assert len(days) == 10
    write_minutes(lake, "AAPL", without(days, date(2024, 3, 12)))
    assert found(lake, first=days[0], last=days[-1], interval="1min") == [
        gap("AAPL", "2024-03-12", "2024-03-12", 1, "1min")
    ]


def test_minute_bars_count_only_for_the_minute_interval(lake):
    lake.add_symbols(["AAPL"])
    write_minutes(lake, "AAPL", [date(2024, 6, 3)])
    got = [
        g.to_dict()
        for g in lake.gaps(
            "AAPL", interval=["1day", "1min"], start=date(2024, 6, 3), end=date(2024, 6, 4)
        )
    ]
    assert got == [
        gap("AAPL", "2024-06-03", "2024-06-04", 2, "1day"),
        gap("AAPL", "2024-06-04", "2024-06-04", 1, "1min"),
    ]


def test_gaps_do_not_depend_on_the_machines_time_zone(lake):
    lake.add_symbols(["AAPL"])
    write_daily(lake, "AAPL", sessions(*JUNE))
    write_minutes(lake, "AAPL", sessions(date(2024, 6, 3), date(2024, 6, 5)))
    script = textwrap.dedent(
        f"""
        from datetime import UTC, date, datetime
        from barlake.lake import Lake
        lake = Lake.open({str(lake.root)!r}, clock=lambda: datetime(2025, 1, 15, 22, tzinfo=UTC))
        print(lake.gaps("AAPL", start=date(2024, 6, 3), end=date(2024, 6, 28)))
        print(lake.gaps("AAPL", interval="1min", start=date(2024, 6, 3), end=date(2024, 6, 5)))
        """
    )
    # DuckDB casts timestamps to dates in its session time zone, the machine's by default; west
    # of UTC a daily bar at 00:00 UTC would land on the previous day.
    env = {
        **os.environ,
        "TZ": "America/New_York",
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "[]"]


# -- pure functions ----------------------------------------------------------------------------


def days(*isos: str) -> np.ndarray:
    return np.array(isos, dtype="datetime64[D]")


EXPECTED = days("2024-06-03", "2024-06-04", "2024-06-05", "2024-06-06", "2024-06-07", "2024-06-10")


def test_missing_marks_uncovered_sessions():
    stored = days("2024-06-04", "2024-06-05", "2024-06-10", "2024-06-11")
    assert missing(EXPECTED, stored).tolist() == [True, False, False, True, True, False]
    final = [DateRange(date(2024, 6, 6), date(2024, 6, 7))]
    assert missing(EXPECTED, stored, final).tolist() == [True, False, False, False, True, False]
    provisional = [DateRange(date(2024, 6, 5), date(2024, 6, 11))]
    assert missing(EXPECTED, stored, final, provisional).tolist() == [
        True,
        False,
        True,
        False,
        True,
        True,
    ]


def test_find_gaps_on_arrays():
    stored = days("2024-06-05", "2024-06-06")
    got = find_gaps("AAPL", "1day", EXPECTED, stored)
    assert [g.to_dict() for g in got] == [
        gap("AAPL", "2024-06-03", "2024-06-04", 2),
        gap("AAPL", "2024-06-07", "2024-06-10", 2),
    ]
    assert got[1].range == DateRange(date(2024, 6, 7), date(2024, 6, 11))
    assert find_gaps("AAPL", "1day", EXPECTED, EXPECTED) == []
    assert find_gaps("AAPL", "1day", days(), days()) == []


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.lists(st.booleans(), max_size=40))
def test_gaps_plus_coverage_is_the_request(have, extra):
    expected = np.datetime64("2024-01-01") + np.arange(len(have)) * 2  # every other day
    stored = np.concatenate(
        [
            expected[np.array(have)],
            np.datetime64("2025-01-01") + np.arange(len(extra))[np.array(extra, dtype=bool)],
        ]
    ).astype("datetime64[D]")
    stored = np.concatenate([stored, stored[::2]])[::-1]  # unsorted, with repeats
    got = find_gaps("X", "1day", expected, stored)
    gap_days = set()
    for g in got:
        inside = expected[
            (expected >= np.datetime64(g.range.start)) & (expected < np.datetime64(g.range.end))
        ]
        assert len(inside) == g.sessions
        gap_days |= set(inside.tolist())
    assert gap_days == set(expected[~np.array(have)].tolist())
    assert gap_days.isdisjoint(stored.tolist())


def test_listing_window():
    window = DateRange(date(2024, 1, 1), date(2024, 4, 1))
    assert listing_window(window, None, None) == window
    assert listing_window(window, date(2024, 2, 1), date(2024, 2, 9)) == DateRange(
        date(2024, 2, 1), date(2024, 2, 10)
    )
    assert listing_window(window, date(2024, 6, 3), None) is None
    assert listing_window(window, None, date(2023, 5, 1)) is None
    assert listing_window(window, date(2024, 4, 1), None) is None
    assert listing_window(window, None, date(2024, 1, 1)) == DateRange(
        date(2024, 1, 1), date(2024, 1, 2)
    )


def test_only_the_open_session_of_a_fetch_stays_provisional(lake_root):
    """A fetch made while a session trades settles the sessions that had closed: only the open
    one is a gap again (and the next fill asks for it alone), not the whole range."""
    from datetime import UTC, date, datetime

    from barlake.lake import Lake

    midday = datetime(2025, 1, 15, 17, 0, tzinfo=UTC)  # NYSE open, 12:00 in New York
    lake = Lake.open(lake_root, clock=lambda: midday)
    lake.add_symbols("AAPL")
    window = {"start": date(2025, 1, 8), "end": date(2025, 1, 15)}
    first = lake.fill("AAPL", interval="1day", **window)
    assert first.bars_written == 5  # Jan 9 was a national day of mourning: NYSE closed
    gaps = lake.gaps("AAPL", interval="1day", **window)
    assert [(g.range.start, g.range.last, g.sessions) for g in gaps] == [
        (date(2025, 1, 15), date(2025, 1, 15), 1)
    ]
    again = lake.fill("AAPL", interval="1day", **window)
    assert again.bars_written == 1
