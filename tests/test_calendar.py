"""Exchange calendars: holidays, early closes, DST, and the 24/7 crypto calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from barlake.calendars.calendar import calendar_for, get_calendar
from barlake.domain.ranges import DateRange
from barlake.errors import UsageError


@pytest.fixture(scope="module")
def xnys():
    return get_calendar("XNYS")


def sessions(cal, first: date, last: date) -> list[str]:
    return [str(s) for s in cal.sessions_in(DateRange.inclusive(first, last))]


def test_juneteenth_is_a_holiday(xnys):
    assert sessions(xnys, date(2024, 6, 17), date(2024, 6, 21)) == [
        "2024-06-17",
        "2024-06-18",
        "2024-06-20",
        "2024-06-21",
    ]


def test_independence_day_is_a_holiday(xnys):
    assert sessions(xnys, date(2024, 7, 1), date(2024, 7, 7)) == [
        "2024-07-01",
        "2024-07-02",
        "2024-07-03",
        "2024-07-05",
    ]


def test_thanksgiving_is_a_holiday_and_the_next_day_trades(xnys):
    assert sessions(xnys, date(2024, 11, 25), date(2024, 12, 1)) == [
        "2024-11-25",
        "2024-11-26",
        "2024-11-27",
        "2024-11-29",
    ]


def test_session_count_matches_sessions(xnys):
    window = DateRange.inclusive(date(2024, 11, 25), date(2024, 12, 1))
    assert xnys.session_count(window) == 4


def test_day_after_thanksgiving_closes_early(xnys):
    opened, closed = xnys.open_close(date(2024, 11, 29))
    assert opened == datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
    assert closed == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)
    assert xnys.bars_in_session(date(2024, 11, 29), "1min") == 210
    assert xnys.bars_in_session(date(2024, 11, 27), "1min") == 390
    assert xnys.bars_in_session(date(2024, 11, 27), "5min") == 78
    assert xnys.bars_in_session(date(2024, 11, 29), "1day") == 1


def test_dst_moves_the_utc_open(xnys):
    # US clocks went forward on Sunday 2024-03-10.
    assert xnys.open_close(date(2024, 3, 8)) == (
        datetime(2024, 3, 8, 14, 30, tzinfo=UTC),
        datetime(2024, 3, 8, 21, 0, tzinfo=UTC),
    )
    assert xnys.open_close(date(2024, 3, 11)) == (
        datetime(2024, 3, 11, 13, 30, tzinfo=UTC),
        datetime(2024, 3, 11, 20, 0, tzinfo=UTC),
    )
    assert xnys.bars_in_session(date(2024, 3, 11), "1min") == 390


def test_day_shift_puts_every_bar_on_its_session_date(xnys):
    shift = xnys.day_shift
    assert shift == timedelta(hours=-5)
    for day in (date(2024, 3, 8), date(2024, 3, 11), date(2024, 11, 29)):
        opened, closed = xnys.open_close(day)
        assert (opened + shift).date() == day
        assert (closed - timedelta(minutes=1) + shift).date() == day


def test_open_close_of_a_holiday_is_an_error(xnys):
    with pytest.raises(UsageError, match="not a XNYS session"):
        xnys.open_close(date(2024, 7, 4))


def test_closed_and_opened_before(xnys):
    during = datetime(2024, 11, 29, 16, 0, tzinfo=UTC)
    assert xnys.opened_before(during) == date(2024, 11, 29)
    assert xnys.closed_before(during) == date(2024, 11, 27)
    assert xnys.closed_before(datetime(2024, 11, 29, 18, 0, tzinfo=UTC)) == date(2024, 11, 29)


def test_crypto_trades_every_day_including_weekends():
    cal = get_calendar("24/7")
    assert sessions(cal, date(2024, 6, 1), date(2024, 6, 4)) == [
        "2024-06-01",
        "2024-06-02",
        "2024-06-03",
        "2024-06-04",
    ]
    assert cal.open_close(date(2024, 6, 1)) == (
        datetime(2024, 6, 1, tzinfo=UTC),
        datetime(2024, 6, 2, tzinfo=UTC),
    )
    assert cal.bars_in_session(date(2024, 6, 1), "1hour") == 24
    assert cal.day_shift == timedelta(0)


def test_calendar_for_picks_by_calendar_then_asset_class():
    assert calendar_for(None).name == "XNYS"
    assert calendar_for(None, "crypto").name == "24/7"
    assert calendar_for("XLON", "crypto").name == "XLON"


def test_unknown_calendar_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown calendar 'NOPE'"):
        get_calendar("NOPE")


def test_window_outside_the_calendar_is_a_usage_error(xnys):
    with pytest.raises(UsageError, match="outside the XNYS calendar"):
        xnys.sessions_in(DateRange(date(1980, 1, 1), date(1980, 2, 1)))
