"""Half-open date ranges: construction, algebra, and runs of a boolean mask."""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barlake.domain.ranges import DateRange, merge, runs, session_runs, subtract
from barlake.errors import UsageError

D0 = date(2024, 1, 1)


def d(n: int) -> date:
    return D0 + timedelta(days=n)


def r(a: int, b: int) -> DateRange:
    return DateRange(d(a), d(b))


def dates_of(ranges: list[DateRange]) -> set[date]:
    return {day for x in ranges for day in (x.start + timedelta(i) for i in range(x.days))}


# -- DateRange ---------------------------------------------------------------------------------


def test_inclusive_range_is_half_open_in_code():
    x = DateRange.inclusive(date(2024, 6, 3), date(2024, 6, 7))
    assert x == DateRange(date(2024, 6, 3), date(2024, 6, 8))
    assert x.last == date(2024, 6, 7)
    assert x.days == 5
    assert str(x) == "2024-06-03..2024-06-07"


def test_single_day_inclusive_range():
    x = DateRange.inclusive(date(2024, 6, 3), date(2024, 6, 3))
    assert x.days == 1
    assert date(2024, 6, 3) in x
    assert date(2024, 6, 4) not in x


def test_end_before_start_is_a_usage_error():
    with pytest.raises(UsageError, match="before"):
        DateRange(date(2024, 6, 5), date(2024, 6, 4))
    with pytest.raises(UsageError, match="swap them"):
        DateRange.inclusive(date(2024, 6, 5), date(2024, 6, 4))


def test_empty_range_is_falsy_and_contains_nothing():
    empty = DateRange(d(3), d(3))
    assert not empty
    assert empty.days == 0
    assert d(3) not in empty
    assert r(0, 1)


def test_contains_only_dates():
    assert "2024-01-01" not in r(0, 5)
    assert d(0) in r(0, 5)
    assert d(5) not in r(0, 5)


def test_intersect():
    assert r(0, 10).intersect(r(5, 15)) == r(5, 10)
    assert r(0, 10).intersect(r(10, 15)) is None  # touching, not overlapping
    assert r(0, 10).intersect(r(2, 3)) == r(2, 3)


# -- merge and subtract ------------------------------------------------------------------------


def test_merge_joins_overlapping_and_touching_ranges():
    assert merge([r(5, 8), r(0, 3), r(3, 4), r(7, 10), r(20, 20)]) == [r(0, 4), r(5, 10)]


def test_merge_of_nothing_is_nothing():
    assert merge([]) == []
    assert merge([r(4, 4)]) == []


def test_subtract_cuts_holes():
    assert subtract([r(0, 10)], [r(2, 4), r(6, 7)]) == [r(0, 2), r(4, 6), r(7, 10)]
    assert subtract([r(0, 10)], [r(-5, 20)]) == []
    assert subtract([r(0, 10)], []) == [r(0, 10)]
    assert subtract([r(0, 3), r(5, 8)], [r(2, 6)]) == [r(0, 2), r(6, 8)]


ranges_st = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 15)).map(lambda t: r(t[0], t[0] + t[1])),
    max_size=8,
)


@given(ranges_st)
def test_merge_covers_the_same_dates_sorted_and_disjoint(ranges):
    merged = merge(ranges)
    assert dates_of(merged) == dates_of(ranges)
    assert all(m for m in merged)
    # Sorted, and separated by at least one date (touching ranges would have joined).
    assert all(a.end < b.start for a, b in pairwise(merged))


@given(ranges_st, ranges_st)
def test_subtract_plus_intersection_is_the_original(a, b):
    diff = subtract(a, b)
    inter = dates_of(a) & dates_of(b)
    assert dates_of(diff) | inter == dates_of(a)
    assert not dates_of(diff) & dates_of(b)
    assert diff == merge(diff)


# -- runs --------------------------------------------------------------------------------------


def test_runs_examples():
    assert runs(np.array([], dtype=bool)) == []
    assert runs(np.array([False, False])) == []
    assert runs(np.array([True, True, False, True])) == [(0, 2), (3, 4)]
    assert runs(np.array([False, True, True, True])) == [(1, 4)]


@given(st.lists(st.booleans(), max_size=40))
def test_runs_reconstruct_the_mask(values):
    mask = np.array(values, dtype=bool)
    found = runs(mask)
    rebuilt = np.zeros(mask.shape, dtype=bool)
    for a, b in found:
        assert a < b
        rebuilt[a:b] = True
    assert np.array_equal(rebuilt, mask)
    # Maximal runs: consecutive runs never touch.
    assert all(b1 < a2 for (_, b1), (a2, _) in pairwise(found))


@settings(max_examples=50)
@given(st.lists(st.booleans(), min_size=1, max_size=30))
def test_session_runs_span_first_to_last_session_of_each_run(values):
    sessions = [d(3 * i) for i in range(len(values))]  # gaps between sessions, like weekends
    mask = np.array(values, dtype=bool)
    got = session_runs(sessions, mask)
    assert len(got) == len(runs(mask))
    for (a, b), x in zip(runs(mask), got, strict=True):
        assert x.start == sessions[a]
        assert x.last == sessions[b - 1]


def test_session_runs_join_across_non_sessions():
    sessions = [date(2024, 7, 3), date(2024, 7, 5), date(2024, 7, 8)]  # 4th and weekend closed
    got = session_runs(sessions, np.array([True, True, True]))
    assert got == [DateRange.inclusive(date(2024, 7, 3), date(2024, 7, 8))]
