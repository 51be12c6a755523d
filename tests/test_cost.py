"""The cost model: the cheapest request shapes for a gap set, and the lower bound no plan beats.

The lower bound is checked against the true optimum, found by brute force on small gap sets.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from barlake.calendars.calendar import get_calendar
from barlake.coverage.gaps import Gap
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.planning import exact
from barlake.planning.cost import plan_shapes
from barlake.planning.plan import PlannedRequest, lower_bound_for, order, requests_for
from barlake.planning.pricing import Axis, Pricing
from barlake.providers.base import Capabilities, Request
from barlake.providers.urls import url_chars

XNYS = get_calendar("XNYS")
SESSIONS = [d.astype(date) for d in XNYS.sessions_in(DateRange(date(2024, 1, 2), date(2025, 1, 1)))]


def caps(**changes: object) -> Capabilities:
    base: dict[str, object] = {
        "intervals": ("1day", "1min"),
        "symbols_per_request": 200,
        "bars_per_page": 10_000,
        "rate_limit_per_min": 200,
    }
    return Capabilities(**{**base, **changes})  # type: ignore[arg-type]


def gap(symbol: str, first: int, last: int, interval: str = "1day") -> Gap:
    window = DateRange(SESSIONS[first], SESSIONS[last] + ONE_DAY)
    return Gap(symbol, interval, window, last - first + 1)  # type: ignore[arg-type]


def calls(planned: list[PlannedRequest]) -> int:
    return sum(p.pages for p in planned)


def asked(planned: list[PlannedRequest]) -> set[tuple[str, date]]:
    return {
        (s, d.astype(date))
        for p in planned
        for s in p.request.symbols
        for d in XNYS.sessions_in(p.request.range)
    }


def missing(gaps: list[Gap]) -> set[tuple[str, date]]:
    return {(g.symbol, d.astype(date)) for g in gaps for d in XNYS.sessions_in(g.range)}


def test_one_new_session_for_many_symbols_packs_to_the_bound() -> None:
    gaps = [gap(f"S{i:04d}", 200, 200) for i in range(3_000)]
    planned = requests_for("alpaca", caps(), gaps, XNYS)
    assert calls(planned) == len(planned) == 15
    assert all(len(p.request.symbols) == 200 for p in planned)
    assert lower_bound_for(caps(), gaps, XNYS) == 15


def test_grouped_daily_takes_one_call_per_session_many_symbols_miss() -> None:
    per_ticker = caps(symbols_per_request=1, bars_per_page=50_000, grouped_daily=True)
    gaps = [gap(f"S{i:04d}", 200, 200) for i in range(3_000)]
    planned = requests_for("polygon", per_ticker, gaps, XNYS)
    assert len(planned) == 1 and len(planned[0].request.symbols) == 3_000
    assert lower_bound_for(per_ticker, gaps, XNYS) == 1
    # A few symbols missing a long stretch go per ticker; the session everyone misses, grouped.
    gaps += [gap(s, 10, 150) for s in ("AAA", "BBB")]
    planned = requests_for("polygon", per_ticker, gaps, XNYS)
    shapes = sorted((len(p.request.symbols), p.request.range.days > 1) for p in planned)
    assert shapes == [(1, True), (1, True), (3_000, False)]
    assert missing(gaps) <= asked(planned)


def test_nearby_gaps_of_a_symbol_merge_unless_rereading_costs_too_much() -> None:
    per_ticker = caps(symbols_per_request=1, bars_per_page=50_000)
    gaps = [gap("AAPL", 10, 11), gap("AAPL", 16, 16)]
    merged = requests_for("x", per_ticker, gaps, XNYS)
    assert [p.request.range for p in merged] == [DateRange(SESSIONS[10], SESSIONS[16] + ONE_DAY)]
    apart = requests_for("x", per_ticker, gaps, XNYS, reread_weight=1e9)
    assert [p.request.range.days for p in apart] == [gaps[0].range.days, 1]


def test_minute_gaps_far_apart_stay_apart_when_a_merge_saves_no_call() -> None:
    gaps = [gap("AAPL", 10, 10, "1min"), gap("AAPL", 40, 40, "1min")]
    planned = requests_for("x", caps(), gaps, XNYS)
    assert len(planned) == 2 and all(p.sessions == 1 for p in planned)


def test_symbols_with_alike_ranges_share_requests_and_every_missing_session_is_asked() -> None:
    rng = random.Random(7)
    gaps = []
    for i in range(300):
        first = rng.randrange(100, 110)
        gaps.append(gap(f"S{i:03d}", first, first + rng.randrange(0, 5)))
    planned = requests_for("alpaca", caps(), gaps, XNYS)
    assert missing(gaps) <= asked(planned)
    assert calls(planned) <= 3  # 300 symbols x 15 sessions fit two requests of one page each
    assert calls(planned) <= 1.5 * lower_bound_for(caps(), gaps, XNYS)


def test_packs_respect_the_url_budget() -> None:
    names = [f"LONGNAME{i:03d}.X/Y" for i in range(100)]
    budget = caps(symbols_chars=300)
    planned = requests_for("alpaca", budget, [gap(s, 5, 5) for s in names], XNYS)
    assert all(url_chars(p.request.symbols) <= 300 for p in planned)
    assert sorted(s for p in planned for s in p.request.symbols) == sorted(names)
    assert 1 < len(planned) <= math.ceil(url_chars(names) / 300) + 1  # no needless splits


def test_long_minute_gaps_are_cut_alike_to_the_range_limit() -> None:
    limited = caps(max_days={"1min": 14})
    gaps = [gap(s, 100, 141, "1min") for s in ("A", "B", "C")]
    planned = requests_for("alpaca", limited, gaps, XNYS)
    assert all(p.request.range.days <= 14 for p in planned)
    assert all(p.request.symbols == ("A", "B", "C") for p in planned)
    assert missing(gaps) == asked(planned)
    # 8 sessions x 3 symbols x 390 bars fill one page; 42 sessions need 6 such pieces at best.
    assert calls(planned) == 6
    # 49,140 bars fill 5 pages, but a call holds at most 8 sessions of all three symbols
    # (9,360 bars) and 42 sessions need 6 such: the symbols' shares of the calls prove it.
    assert lower_bound_for(limited, gaps, XNYS) == 6


def test_order_puts_priority_first_then_takes_turns_by_symbol() -> None:
    def req(symbol: str, first: int, interval: str = "1min") -> PlannedRequest:
        window = DateRange(SESSIONS[first], SESSIONS[first] + ONE_DAY)
        return PlannedRequest(Request("x", (symbol,), interval, window), 1, 1, 1)  # type: ignore[arg-type]

    huge = [req("HUGE", i) for i in range(50)]
    small = [req(f"S{i}", 60) for i in range(10)]
    urgent = [req("VIP", 100), req("VIP", 99, "1day")]
    out = order(huge + small + urgent, {"VIP": 3})
    assert [p.request.symbols for p in out[:2]] == [("VIP",), ("VIP",)]
    assert out[0].request.interval == "1day"
    first_round = {p.request.symbols[0] for p in out[2:13]}
    assert first_round == {"HUGE", *(f"S{i}" for i in range(10))}
    assert [p.request.range.start for p in out if p.request.symbols == ("HUGE",)] == [
        SESSIONS[i] for i in range(50)
    ]


# -- the lower bound against the true optimum --------------------------------------------------


def optimum(
    caps_: Capabilities,
    holes: set[tuple[int, int]],
    n_symbols: int,
    n_days: int,
    listed: Sequence[int] = (),
) -> int:
    """Fewest calls covering ``holes`` (symbol, session index), by dynamic programming over
    every request shape: any symbol subset within the limit, any range of sessions. Symbol
    ``s`` has bars from session ``listed[s]`` on."""
    listed = list(listed) or [0] * n_symbols
    cells = sorted(holes)
    index = {c: i for i, c in enumerate(cells)}
    shapes: list[tuple[int, int]] = []  # (mask of holes covered, calls)
    for k in range(1, min(caps_.symbols_per_request, n_symbols) + 1):
        for group in itertools.combinations(range(n_symbols), k):
            for a in range(n_days):
                for b in range(a, n_days):
                    mask = 0
                    for s in group:
                        for d in range(a, b + 1):
                            if (s, d) in index:
                                mask |= 1 << index[(s, d)]
                    if mask:
                        bars = sum(max(0, b + 1 - max(a, listed[s])) for s in group)
                        shapes.append((mask, max(1, math.ceil(bars / caps_.bars_per_page))))
    if caps_.grouped_daily:
        for d in range(n_days):
            mask = sum(1 << index[(s, d)] for s in range(n_symbols) if (s, d) in index)
            if mask:
                shapes.append((mask, 1))
    full = (1 << len(cells)) - 1

    @functools.cache
    def best(left: int) -> int:
        if not left:
            return 0
        low = left & -left  # the first uncovered hole must be covered by some shape
        return min(c + best(left & ~m) for m, c in shapes if m & low)

    return best(full)


@dataclass(frozen=True)
class Small:
    """A small gap set: ``holes`` (symbol, session) of ``n_symbols`` over ``n_days``, symbol
    ``s`` listed at session ``listed[s]``, at a provider with ``caps``."""

    caps: Capabilities
    holes: set[tuple[int, int]]
    listed: list[int]
    n_symbols: int
    n_days: int

    def optimum(self) -> int:
        return optimum(self.caps, self.holes, self.n_symbols, self.n_days, self.listed)


@st.composite
def small_gap_sets(draw: st.DrawFn) -> Small:
    n_symbols, n_days = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    listed = draw(st.lists(st.integers(0, n_days - 1), min_size=n_symbols, max_size=n_symbols))
    cells = [(s, d) for s in range(n_symbols) for d in range(listed[s], n_days)]
    holes = set(draw(st.lists(st.sampled_from(cells), min_size=1, max_size=8, unique=True)))
    c = caps(
        symbols_per_request=draw(st.integers(1, 3)),
        bars_per_page=draw(st.integers(1, 8)),
        grouped_daily=draw(st.booleans()),
    )
    return Small(c, holes, listed, n_symbols, n_days)


@settings(max_examples=40, deadline=None)
@given(small_gap_sets())
def test_lower_bound_never_exceeds_the_optimum_and_the_plan_is_near_it(case: Small) -> None:
    gaps = [gap(f"S{s}", 20 + d, 20 + d) for s, d in sorted(case.holes)]
    listings = {f"S{s}": (SESSIONS[20 + at], None) for s, at in enumerate(case.listed)}
    bound = lower_bound_for(case.caps, gaps, XNYS, listings=listings)
    best = case.optimum()
    planned = requests_for("x", case.caps, gaps, XNYS, reread_weight=0, listings=listings)
    assert bound <= best <= calls(planned)
    assert missing(gaps) <= asked(planned)
    assert calls(planned) <= 2 * best


@settings(max_examples=40, deadline=None)
@given(small_gap_sets())
def test_the_integer_program_bounds_the_optimum_and_its_plan_closes_every_gap(case: Small) -> None:
    axis = Axis.of(XNYS, "1day", DateRange(SESSIONS[20], SESSIONS[20 + case.n_days]))
    active = {f"S{s}": (at, case.n_days) for s, at in enumerate(case.listed) if at}
    price = Pricing(case.caps, "1day", axis, 0.0, active)
    holes = case.holes
    indices = {
        f"S{s}": np.array(sorted(d for t, d in holes if t == s), dtype=np.int64)
        for s in range(case.n_symbols)
    }
    found = exact.solve(price, indices)
    best = case.optimum()
    assert found is not None
    assert found.bound <= best
    if found.shapes:  # the solver's numbers dealt into requests
        assert sum(1 if s.grouped else price.calls(s.bars) for s in found.shapes) >= best
        asked_ = {
            (s, d) for sh in found.shapes for s in sh.symbols for d in range(sh.first, sh.last + 1)
        }
        assert {(f"S{s}", d) for s, d in holes} <= asked_


def test_the_integer_program_finds_windows_that_unlike_symbols_share() -> None:
    # S3 in small: 350 symbols miss the same 13 sessions of a year, 30 more were listed at
    # session 65 and miss those after it. At 200 symbols and 10,000 bars a request, two windows
    # carry everyone in 7 calls, and no plan makes fewer; deciding each group's windows on its
    # own finds 8.
    marks = [0, 5, 28, 61, 102, 108, 110, 121, 139, 140, 157, 186, 197]
    late = [m for m in marks if m >= 65]
    holes = {f"F{i:03d}": marks for i in range(350)} | {f"L{i:03d}": late for i in range(30)}
    gaps = [gap(s, m, m) for s, ms in holes.items() for m in ms]
    listed = {f"L{i:03d}": (SESSIONS[65], None) for i in range(30)}
    axis = Axis.of(XNYS, "1day", DateRange(SESSIONS[0], SESSIONS[198]))
    price = Pricing(caps(), "1day", axis, 0.5, {s: (65, 198) for s in listed})
    alone = plan_shapes(price, {s: np.array(ms, dtype=np.int64) for s, ms in holes.items()})
    assert sum(price.calls(s.bars) for s in alone) == 8
    planned = requests_for("alpaca", caps(), gaps, XNYS, listings=listed)
    assert calls(planned) == 7 == lower_bound_for(caps(), gaps, XNYS, listings=listed)
    assert missing(gaps) <= asked(planned)
    assert all(len(p.request.symbols) <= 200 for p in planned)


def test_symbols_left_out_of_the_integer_program_join_its_windows() -> None:
    # 350 symbols miss the same 13 sessions; 12 more, each listed on a day of its own, miss
    # those after their listing: 13 alike groups. The program keeps the largest few and the
    # others join the windows it chose; the plan still makes the fewest calls there can be.
    marks = [0, 5, 28, 61, 102, 108, 110, 121, 139, 140, 157, 186, 197]
    holes = {f"F{i:03d}": marks for i in range(350)}
    listed = {}
    for i in range(12):
        holes[f"L{i:03d}"] = [m for m in marks if m >= 30 + 10 * i]
        listed[f"L{i:03d}"] = (SESSIONS[30 + 10 * i], None)
    gaps = [gap(s, m, m) for s, ms in holes.items() for m in ms]
    planned = requests_for("alpaca", caps(), gaps, XNYS, listings=listed)
    assert calls(planned) == 6 == lower_bound_for(caps(), gaps, XNYS, listings=listed)
    assert missing(gaps) <= asked(planned)
    axis = Axis.of(XNYS, "1day", DateRange(SESSIONS[0], SESSIONS[198]))
    active = {s: (30 + 10 * i, 198) for i, s in enumerate(sorted(listed))}
    price = Pricing(caps(), "1day", axis, 0.5, active)
    found = exact.solve(price, {s: np.array(ms, dtype=np.int64) for s, ms in holes.items()}, 4)
    assert found is not None
    assert found.groups == 13  # the planner stops widening the program once it holds them all


def test_without_the_solver_the_cost_models_plan_and_bounds_stand(monkeypatch) -> None:
    monkeypatch.setattr(exact, "_highs", lambda: None)
    marks = [0, 5, 28, 61, 102, 108, 110, 121, 139, 140, 157, 186, 197]
    late = [m for m in marks if m >= 65]
    holes = {f"F{i:03d}": marks for i in range(350)} | {f"L{i:03d}": late for i in range(30)}
    gaps = [gap(s, m, m) for s, ms in holes.items() for m in ms]
    listed = {f"L{i:03d}": (SESSIONS[65], None) for i in range(30)}
    planned = requests_for("alpaca", caps(), gaps, XNYS, listings=listed)
    assert missing(gaps) <= asked(planned)
    assert lower_bound_for(caps(), gaps, XNYS, listings=listed) <= 7 < calls(planned)


def test_a_symbol_listed_mid_window_returns_bars_only_from_its_listing() -> None:
    # A misses sessions 0..19; B, listed at session 10, misses 10..19. One request carries
    # both (30 bars fit a page of 40); B brings 10 bars, not 20.
    gaps = [gap("A", 0, 19), gap("B", 10, 19)]
    small = caps(bars_per_page=40)
    listed = {"B": (SESSIONS[10], None)}
    (planned,) = requests_for("x", small, gaps, XNYS, listings=listed)
    assert (planned.request.symbols, planned.bars, planned.pages) == (("A", "B"), 30, 1)
    assert lower_bound_for(small, gaps, XNYS, listings=listed) == 1
    # Not knowing the listing, it counts B's first ten sessions too.
    (blind,) = requests_for("x", small, gaps, XNYS)
    assert blind.bars == 40


def test_weekdays_stand_for_sessions_without_a_calendar() -> None:
    gaps = [Gap("A", "1day", DateRange(date(2024, 6, 17), date(2024, 6, 24)), 4)]
    planned = requests_for("x", caps(), gaps, None)
    assert planned[0].sessions == 5  # Juneteenth counts without a calendar
    assert lower_bound_for(caps(), gaps, None) == 1
    assert planned[0].request.range == DateRange(date(2024, 6, 17), date(2024, 6, 22))


def test_packs_over_one_range_are_dealt_so_that_pages_come_out_full() -> None:
    gaps = [gap(f"S{i:03d}", 10, 181) for i in range(500)]  # 172 sessions each
    planned = requests_for("alpaca", caps(), gaps, XNYS)
    # 86,000 bars: 9 pages at best; packs of 200, 200 and 100 would take 4 + 4 + 2.
    assert calls(planned) == 9 == lower_bound_for(caps(), gaps, XNYS)
    assert all(len(p.request.symbols) <= 200 for p in planned)
    assert sorted(s for p in planned for s in p.request.symbols) == [g.symbol for g in gaps]


def test_gaps_many_symbols_share_merge_only_when_the_pack_gains() -> None:
    # For one symbol, one request over both holes is cheapest (1 call); for 400 symbols in
    # packs of 200, re-reading 138 stored sessions would cost 3 pages a pack instead of 1.
    lone = [gap("SOLO", 10, 11), gap("SOLO", 150, 151)]
    assert len(requests_for("alpaca", caps(), lone, XNYS)) == 1
    many = [gap(f"S{i:03d}", a, b) for i in range(400) for a, b in ((10, 11), (150, 151))]
    planned = requests_for("alpaca", caps(), many, XNYS)
    assert calls(planned) == 4 == lower_bound_for(caps(), many, XNYS)
    assert all(p.sessions == 2 for p in planned)
