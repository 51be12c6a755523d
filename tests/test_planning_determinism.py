"""A plan is a function of its gap set: the integer program (``barlake.planning.exact``) stops on a
budget of work, not of seconds, so the same gaps give the same requests on a quiet machine,
on one whose every core is busy, and run after run. HiGHS also says nothing on the way:
``lake plan --json`` owns stdout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import barlake
from barlake.calendars.calendar import get_calendar
from barlake.coverage.gaps import Gap
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.planning import exact
from barlake.planning.plan import Plan, price
from barlake.planning.pricing import Axis, Pricing
from barlake.providers.base import Capabilities

XNYS = get_calendar("XNYS")
SESSIONS = [d.astype(date) for d in XNYS.sessions_in(DateRange(date(2024, 1, 2), date(2025, 1, 1)))]
MARKS = [0, 5, 28, 61, 102, 108, 110, 121, 139, 140, 157, 186, 197]


def caps(**changes: object) -> Capabilities:
    base: dict[str, object] = {
        "intervals": ("1day", "1min"),
        "symbols_per_request": 200,
        "bars_per_page": 10_000,
        "rate_limit_per_min": 200,
    }
    return Capabilities(**{**base, **changes})  # type: ignore[arg-type]


def gap(symbol: str, first: int, last: int) -> Gap:
    return Gap(symbol, "1day", DateRange(SESSIONS[first], SESSIONS[last] + ONE_DAY), 1)


Holes = dict[str, list[int]]
Listed = dict[str, int]


def left_out() -> tuple[Holes, Listed]:
    """test_cost's ``test_symbols_left_out_of_the_integer_program_join_its_windows``: 350
    symbols miss 13 sessions, 12 more listed a day of their own each miss those after it (13
    alike groups; 6 calls). Its program took 9 calls on a busy machine under a clock."""
    holes = {f"F{i:03d}": MARKS for i in range(350)}
    listed = {}
    for i in range(12):
        holes[f"L{i:03d}"] = [m for m in MARKS if m >= 30 + 10 * i]
        listed[f"L{i:03d}"] = 30 + 10 * i
    return holes, listed


def shared_windows() -> tuple[Holes, Listed]:
    """test_cost's ``test_the_integer_program_finds_windows_that_unlike_symbols_share``: 350
    symbols miss 13 sessions, 30 listed at session 65 miss those after it (7 calls)."""
    late = [m for m in MARKS if m >= 65]
    holes = {f"F{i:03d}": MARKS for i in range(350)} | {f"L{i:03d}": late for i in range(30)}
    return holes, {f"L{i:03d}": 65 for i in range(30)}


def planned(holes: Holes, listed: Listed) -> tuple[list[tuple[Any, ...]], int, bool]:
    """The planner's requests for ``holes``, call for call, its lower bound, and whether an
    integer program stopped on its clock."""
    gaps = [gap(s, m, m) for s, ms in holes.items() for m in ms]
    listings = {s: (SESSIONS[at], None) for s, at in listed.items()}
    requests, bound, timed_out = price("alpaca", caps(), gaps, XNYS, listings=listings)
    calls = [
        (p.request.symbols, p.request.interval, p.request.range, p.sessions, p.bars, p.pages)
        for p in requests
    ]
    return calls, bound, timed_out


#: Ten alike groups of 1 to 350 symbols over ten sessions, listed at various sessions, at 3,000
#: bars a page: a program over the 4 largest that branches until it reaches ``exact.NODES``.
BRANCHING = [  # (symbols, listed at, missing sessions)
    (50, 194, [195]),
    (1, 0, [9, 20, 37, 66, 124, 146, 169]),
    (350, 0, [0, 9, 66, 124, 146, 150, 169]),
    (150, 51, [124, 150, 169]),
    (150, 7, [9, 20, 37, 66, 124, 150, 169, 195]),
    (10, 0, [0, 9, 20, 124, 146, 150, 169, 195]),
    (350, 158, [169, 195]),
    (50, 0, [0, 9, 20, 37, 124, 146, 169, 195]),
    (50, 0, [0, 9, 20, 37, 66, 124, 146, 150, 169, 195]),
    (3, 0, [0, 9, 37, 66, 124, 146, 195]),
]


def branching() -> tuple[list[tuple[Any, ...]], int, bool]:
    """The integer program's own plan and bound for ``BRANCHING`` (4 largest groups)."""
    holes, active = {}, {}
    for g, (size, listed, marks) in enumerate(BRANCHING):
        for i in range(size):
            holes[f"G{g}_{i}"] = np.array(marks, dtype=np.int64)
            if listed:
                active[f"G{g}_{i}"] = (listed, 198)
    axis = Axis.of(XNYS, "1day", DateRange(SESSIONS[0], SESSIONS[198]))
    found = exact.solve(Pricing(caps(bars_per_page=3000), "1day", axis, 0.5, active), holes, 4)
    assert found is not None
    shapes = [(s.symbols, s.first, s.last, s.bars, s.grouped) for s in found.shapes]
    return shapes, found.bound, found.timed_out


SCENARIOS = {
    "left_out": lambda: planned(*left_out()),
    "shared_windows": lambda: planned(*shared_windows()),
    "branching": branching,
}
#: Calls and lower bound the test_cost scenarios must plan (test_cost asserts the same).
EXPECTED = {"left_out": 6, "shared_windows": 7}


@pytest.fixture
def busy() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every core (one process more than there are, at most 17) spinning in a process of its
    own while the test runs; each is killed after, whatever happens."""
    count = min(os.cpu_count() or 2, 16) + 1
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            spinners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        time.sleep(0.5)  # under way before the planner starts
        yield spinners
    finally:
        for p in spinners:
            p.kill()
        for p in spinners:
            p.wait(timeout=10)


@pytest.fixture(scope="module")
def quiet() -> dict[str, list[tuple[list[tuple[Any, ...]], int, bool]]]:
    """Each scenario planned three times, without load of the test's own."""
    return {name: [run() for _ in range(3)] for name, run in SCENARIOS.items()}


def test_plans_are_the_same_run_after_run(quiet) -> None:
    for name, runs in quiet.items():
        calls, _, timed_out = runs[0]
        assert runs[1] == runs[0] == runs[2], name
        assert calls, name
        assert not timed_out, name
    for name, expected in EXPECTED.items():
        calls, bound, _ = quiet[name][0]
        assert sum(c[-1] for c in calls) == expected == bound


def test_plans_are_the_same_while_every_core_is_busy(quiet, busy) -> None:
    loaded = {}
    for name, run in SCENARIOS.items():
        loaded[name] = run()
        assert all(p.poll() is None for p in busy), "the load went away"
    for name in SCENARIOS:
        assert loaded[name] == quiet[name][0], name  # same requests, symbols and ranges
        assert not loaded[name][2], name  # the clock never decided
    for name, expected in EXPECTED.items():
        calls, bound, _ = loaded[name]
        assert sum(c[-1] for c in calls) == expected == bound


def test_a_plan_says_when_the_clock_stopped_its_integer_program(monkeypatch) -> None:
    assert not planned(*left_out())[2]
    plan = Plan("alpaca", 200, (), ())
    assert plan.to_dict()["solver"] == {"time_limit_reached": False}
    monkeypatch.setitem(exact.OPTIONS, "time_limit", 1e-9)
    _, _, timed_out = planned(*left_out())
    assert timed_out
    late = Plan("alpaca", 200, (), (), time_limit_reached=True)
    assert late.to_dict()["solver"] == {"time_limit_reached": True}
    assert (plan + late).to_dict()["solver"] == {"time_limit_reached": True}


def test_the_solver_writes_nothing_to_stdout_or_stderr(tmp_path: Path) -> None:
    # A process of its own, so HiGHS's once-a-process banner has not been written yet, and
    # with its file descriptors captured, since HiGHS writes from C++, not through sys.stdout.
    script = textwrap.dedent(
        f"""
        from datetime import date
        import numpy as np
        from barlake.planning import exact
        from barlake.planning.pricing import Axis, Pricing
        from barlake.providers.base import Capabilities
        from barlake.domain.ranges import DateRange

        marks = {MARKS}
        holes = {{f"F{{i:03d}}": marks for i in range(350)}}
        active = {{}}
        for i in range(12):
            holes[f"L{{i:03d}}"] = [m for m in marks if m >= 30 + 10 * i]
            active[f"L{{i:03d}}"] = (30 + 10 * i, 198)
        caps = Capabilities(intervals=("1day",), symbols_per_request=200,
                            bars_per_page=10_000, rate_limit_per_min=200)
        axis = Axis.of(None, "1day", DateRange(date(2024, 1, 1), date(2024, 10, 3)))
        assert len(axis.days) == 198
        price = Pricing(caps, "1day", axis, 0.5, active)
        found = exact.solve(price, {{s: np.array(m, dtype=np.int64) for s, m in holes.items()}}, 4)
        assert found is not None and found.shapes and not found.timed_out
        raise SystemExit(0 if found.bound == 6 else 3)
        """
    )
    src = str(Path(barlake.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, env=env, cwd=tmp_path, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_a_program_too_large_to_solve_quickly_is_left_to_the_cost_model(monkeypatch) -> None:
    """100 symbols missing the same 250 sessions of 1-minute bars: one alike group over
    thousands of windows, a program whose root node alone took HiGHS half a minute, so that
    its clock (not its work) decided the plan. It is not solved: the cost model plans it."""
    minute = DateRange(SESSIONS[0], SESSIONS[249] + ONE_DAY)
    gaps = [Gap(f"M{i:03d}", "1min", minute, 250) for i in range(100)]
    solved: list[int] = []
    real = exact._integer_program
    monkeypatch.setattr(exact, "_integer_program", lambda *a: solved.append(len(a[0])) or real(*a))
    requests, bound, timed_out = price("alpaca", caps(), gaps, XNYS)
    assert solved == []  # the program was built, found too large, and never run
    assert not timed_out
    bars = sum(p.bars for p in requests)
    assert 100 * 247 * 390 < bars < 100 * 250 * 390  # 2024's three early closes
    assert sum(p.pages for p in requests) >= bound >= -(-bars // 10_000)
    assert sorted({s for p in requests for s in p.request.symbols}) == [
        f"M{i:03d}" for i in range(100)
    ]
