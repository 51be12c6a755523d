"""The fewest calls for a small gap set, found exactly by integer programming (HiGHS).

Symbols that miss the same sessions and trade over the same span are *alike*. Any plan carries
y(g, W) symbols of each alike group g over each window W (a range of sessions between two
missing ones; a request's range can always shrink to that). So every plan gives whole numbers
with

- every missing session of g inside windows that carry g at least |g| times in all;
- calls over W >= bars carried over W / page, and >= the requests over W;
- requests over W >= symbols carried over W / ``symbols_per_request``;
- a grouped-daily call on a session closing it for every group.

The fewest calls such numbers allow is a lower bound on every plan, and unlike a sum of
fractional shares it counts whole pages. The solver's answer is also nearly a plan: when each
group is carried whole over each of its windows, dealing each window's symbols into requests
gives one, which ``solve`` returns beside the bound. Gap sets with more than
``MAX_VARIABLES`` (group, window) pairs, or programs with more than ``MAX_NONZEROS`` nonzeros,
are left to the cost model's own bounds.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from barlake.planning.bound import most_symbols
from barlake.planning.cost import dealt, with_bars
from barlake.planning.pricing import Pricing, Shape

#: Above this many (alike group x window) pairs the program is not built.
MAX_VARIABLES = 20_000
#: Above this many nonzeros in its constraints the program is not solved: one alike group of
#: 100 symbols missing 170 to 720 sessions of 1-minute bars makes 40,000 to 180,000, whose
#: root node alone took HiGHS 8 to over 30 seconds (the clock's safety net, ``SECONDS``, then
#: decides the answer); the tests' and benchmarks' programs have at most 19,000 and close in
#: 0.2 s. Those left out keep the cost model's plan and bounds.
MAX_NONZEROS = 25_000
#: The solver's budget, in branch-and-bound nodes rather than seconds, so that it stops at the
#: same point however busy the machine is: a plan is a function of its gap set alone. When it
#: stops early, the bound it has proven and the best answer it has found are used. The tests'
#: and benchmarks' programs all close at the root node. On made-up programs of 16 to 20 alike
#: groups, 100 nodes took about a second beyond the root's own work (the old budget was one
#: second in all), 300 found the same plans and bounds in 18 of 18, 1,000 the same bounds and
#: plans one or two calls shorter in 2 of 18, for seconds more each.
NODES = 100
#: A safety net only, far above what any of those programs needs; reaching it makes the answer
#: depend on the machine's speed and load, so the solution says so (``Solution.timed_out``).
SECONDS = 30.0
#: HiGHS's options, set before the model is passed: silent (``lake plan --json`` owns stdout);
#: one thread and no parallel simplex (a search split between threads may end differently run
#: to run); a fixed seed; the budget. ``simplex_iteration_limit`` is no budget for a MIP (HiGHS
#: 1.16 goes on past it), so it is left alone. HiGHS has one thread pool per process: should
#: something else in the process have started it with more threads, HiGHS refuses to run and
#: the cost model plans alone.
OPTIONS: dict[str, bool | int | float | str] = {
    "output_flag": False,
    "log_to_console": False,
    "threads": 1,
    "parallel": "off",
    "random_seed": 0,
    "mip_max_nodes": NODES,
    "time_limit": SECONDS,
}


@dataclass(frozen=True)
class Solution:
    """No plan makes fewer than ``bound`` calls; ``shapes`` is a plan read off the solver's
    answer (empty when its numbers could not be dealt into requests)."""

    bound: int
    shapes: list[Shape]
    #: How many alike groups the gap set has (the program kept ``largest`` of them).
    groups: int
    #: The solver ran out of time (``SECONDS``), not work: this answer may differ run to run.
    timed_out: bool


@dataclass(frozen=True)
class _Group:
    symbols: list[str]
    at: npt.NDArray[np.int64]  # indices of its missing sessions among the marks
    span: tuple[int, int]


def solve(
    price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]], largest: int | None = None
) -> Solution | None:
    """The bound and a plan for ``holes``, or None for a gap set too large to solve.

    ``largest`` keeps only that many of the largest alike groups in the program, which then
    solves in a fraction of the time; the others join the windows it chose (or requests of
    their own) afterwards. Leaving symbols out only loosens the bound, so it stays a bound.
    """
    holes = {s: h for s, h in holes.items() if len(h)}
    if not holes:
        return Solution(0, [], 0, timed_out=False)
    whole = (0, len(price.axis.days))
    members: dict[tuple[bytes, tuple[int, int]], list[str]] = defaultdict(list)
    for s, h in holes.items():
        members[(h.tobytes(), price.active.get(s, whole))].append(s)
    marks = np.unique(np.concatenate(list(holes.values())))
    windows = [
        (a, e)
        for a in range(len(marks))
        for e in range(a, len(marks))
        if price.fits(int(marks[a]), int(marks[e]))
    ]
    groups = [
        _Group(names, np.searchsorted(marks, np.frombuffer(key, dtype=np.int64)), span)
        for (key, span), names in sorted(members.items(), key=lambda kv: -len(kv[1]))
    ]
    count = len(groups)
    groups, rest = groups[:largest], groups[largest:]
    if len(groups) * len(windows) > MAX_VARIABLES:
        return None
    grouped = price.interval == "1day" and price.caps.grouped_daily
    most = most_symbols(price, holes)
    prefix = price.axis.prefix
    page = float(price.per_page)

    rows: list[int] = []  # the constraint matrix as (row, column, value) triples
    cols: list[int] = []
    vals: list[float] = []
    need: list[int] = []  # each coverage row's right-hand side: the group's size
    ys: list[tuple[int, int, int]] = []  # each y: group, window, bars per symbol
    bases: list[int] = []  # each group's first coverage row
    for gi, g in enumerate(groups):
        base = len(need)
        bases.append(base)
        need += [len(g.symbols)] * len(g.at)
        lo, hi = g.span
        for w, (a, e) in enumerate(windows):
            inside = np.flatnonzero((g.at >= a) & (g.at <= e))
            if not len(inside):
                continue
            first, last = max(int(marks[a]), lo), min(int(marks[e]) + 1, hi)
            bars = int(prefix[last] - prefix[first]) if last > first else 0
            rows += (base + inside).tolist()
            cols += [len(ys)] * len(inside)
            vals += [1.0] * len(inside)
            ys.append((gi, w, bars))
    n_y, n_w, n_cover = len(ys), len(windows), len(need)
    calls0, requests0, grouped0 = n_y, n_y + n_w, n_y + 2 * n_w
    n_vars = grouped0 + (len(marks) if grouped else 0)
    if grouped:  # a grouped call on a session closes it for every group missing it
        for g, base in zip(groups, bases, strict=True):
            rows += list(range(base, base + len(g.at)))
            cols += (grouped0 + g.at).tolist()
            vals += [float(len(g.symbols))] * len(g.at)
    bars_row, symbols_row, pages_row = n_cover, n_cover + n_w, n_cover + 2 * n_w
    for j, (_, w, bars) in enumerate(ys):
        rows += [bars_row + w, symbols_row + w]
        cols += [j, j]
        vals += [float(bars), 1.0]
    for w in range(n_w):
        rows += [bars_row + w, symbols_row + w, pages_row + w, pages_row + w]
        cols += [calls0 + w, requests0 + w, requests0 + w, calls0 + w]
        vals += [-page, -float(most), 1.0, -1.0]
    lower = np.concatenate([np.array(need, dtype=float), np.full(3 * n_w, -np.inf)])
    upper = np.concatenate([np.full(n_cover, np.inf), np.zeros(3 * n_w)])
    if len(vals) > MAX_NONZEROS:
        return None
    objective = np.zeros(n_vars)
    objective[calls0:requests0] = 1.0
    objective[grouped0:] = 1.0
    found = _integer_program(objective, (rows, cols, vals), lower, upper)
    if found is None:
        return None
    proven, x, timed_out = found
    bound = max(0, math.ceil(proven - 1e-6))
    if x is None:
        return Solution(bound, [], count, timed_out)
    shapes = _plan(price, groups, windows, marks, ys, x[:n_y], x[grouped0:], rest)
    return Solution(bound, shapes, count, timed_out)


def _integer_program(
    objective: npt.NDArray[np.float64],
    triples: tuple[list[int], list[int], list[float]],
    lower: npt.NDArray[np.float64],
    upper: npt.NDArray[np.float64],
) -> tuple[float, npt.NDArray[np.int64] | None, bool] | None:
    """Minimise ``objective`` . x over whole x >= 0 with ``lower <= A x <= upper`` (A given as
    row, column, value triples): the bound HiGHS proves within its budget (``OPTIONS``), the
    best x it found (None if none), and whether it stopped on the clock; None when HiGHS is
    missing, refuses an option or fails."""
    highspy = _highs()
    if highspy is None:  # the cost model's plans and bounds stand alone
        return None
    rows, cols, vals = (np.asarray(a) for a in triples)
    order = np.lexsort((rows, cols))
    n_vars = len(objective)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n_vars, len(lower)
    lp.col_cost_ = objective
    lp.col_lower_ = np.zeros(n_vars)
    lp.col_upper_ = np.full(n_vars, inf)
    lp.row_lower_ = np.where(np.isfinite(lower), lower, -inf)
    lp.row_upper_ = np.where(np.isfinite(upper), upper, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=n_vars))])
    lp.a_matrix_.index_ = rows[order]
    lp.a_matrix_.value_ = vals[order].astype(np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n_vars
    ok = highspy.HighsStatus.kOk
    solver = _quiet(highspy)()
    if any(solver.setOptionValue(name, value) != ok for name, value in OPTIONS.items()):
        return None
    if solver.passModel(lp) != ok or solver.run() == highspy.HighsStatus.kError:
        return None
    timed_out = solver.getModelStatus() == highspy.HighsModelStatus.kTimeLimit
    info = solver.getInfo()
    proven = float(info.mip_dual_bound)  # within the gap tolerance of the optimum, when found
    if not np.isfinite(proven):
        proven = 0.0
    if info.primal_solution_status == 0:  # no feasible point found within the budget
        return proven, None, timed_out
    x = np.rint(np.asarray(solver.getSolution().col_value)).astype(np.int64)
    return proven, x, timed_out


def _highs() -> Any | None:
    """The ``highspy`` module, or None where it is missing (the cost model then plans alone)."""
    try:
        import highspy
    except ImportError:
        return None
    return highspy if hasattr(highspy, "Highs") else None


@cache
def _quiet(highspy: Any) -> Any:
    """``highspy.Highs`` made silent from birth.

    The public ``Highs()`` prints HiGHS's banner ("Running HiGHS ... Copyright ...") on the
    process's stdout while it is being made, before any option can be set, which would corrupt
    ``lake plan --json``: its constructor (highspy/highs.py, 1.16) calls ``enableCallbacks``,
    whose ``setCallback`` makes HiGHS write its log header once per process while
    ``output_flag`` is still on by default. ``silent()`` and ``setOptionValue`` come too late
    for that, so this subclass turns the log off in ``enableCallbacks`` itself, which runs
    after the solver exists and before the callback is set. tests/test_planning_determinism.py
    checks that a solve in a fresh process writes nothing to stdout or stderr."""

    class Quiet(highspy.Highs):  # type: ignore[misc]
        def enableCallbacks(self) -> None:
            self.setOptionValue("output_flag", False)  # noqa: FBT003
            self.setOptionValue("log_to_console", False)  # noqa: FBT003
            super().enableCallbacks()

    return Quiet


def _plan(
    price: Pricing,
    groups: list[_Group],
    windows: list[tuple[int, int]],
    marks: npt.NDArray[np.int64],
    ys: list[tuple[int, int, int]],
    carried: npt.NDArray[np.int64],
    grouped: npt.NDArray[np.int64],
    rest: Sequence[_Group] = (),
) -> list[Shape]:
    """The solver's numbers as requests: each group's symbols given windows that cover their
    missing sessions (``_assign``), the groups left out of the program given the windows in
    use (else one of their own), each window's symbols dealt into requests, each request's
    range cut down to the missing sessions of its symbols."""
    closed = set(np.flatnonzero(grouped).tolist())  # marks fetched by grouped calls
    shapes = []
    for t in sorted(closed):
        # A grouped call returns the whole market: it serves the groups left out of the
        # program too, which therefore skip the closed marks below.
        missing = sorted(s for g in (*groups, *rest) if t in set(g.at.tolist()) for s in g.symbols)
        shapes.append(Shape(tuple(missing), int(marks[t]), int(marks[t]), grouped=True))
    over: dict[int, list[str]] = defaultdict(list)
    own: dict[tuple[str, int], list[int]] = {}  # each symbol's marks inside each of its windows
    by_group: dict[int, dict[int, int]] = defaultdict(dict)
    for (gi, w, _), count in zip(ys, carried.tolist(), strict=True):
        if count:
            by_group[gi][w] = count
    for gi, g in enumerate(groups):
        needed = [t for t in g.at.tolist() if t not in closed]
        for s, chosen in zip(
            g.symbols, _assign(needed, windows, by_group[gi], len(g.symbols)), strict=True
        ):
            for w in chosen:
                over[w].append(s)
                a, e = windows[w]
                own[(s, w)] = [t for t in needed if a <= t <= e]
    alone = {a: w for w, (a, e) in enumerate(windows) if a == e}
    for g in rest:
        needed = [t for t in g.at.tolist() if t not in closed]
        for s in g.symbols:
            reach = -1
            for t in needed:
                if t <= reach:
                    continue
                around = [w for w in over if windows[w][0] <= t <= windows[w][1]]
                w = max(around, key=lambda w: windows[w][1]) if around else alone[t]
                over[w].append(s)
                a, e = windows[w]
                own[(s, w)] = [u for u in needed if a <= u <= e]
                reach = e
    for w, names in sorted(over.items()):
        first, last = int(marks[windows[w][0]]), int(marks[windows[w][1]])
        for pack in dealt(price, names, first, last):
            inside = [t for s in pack for t in own[(s, w)]]
            shapes.append(
                Shape(tuple(sorted(pack)), int(marks[min(inside)]), int(marks[max(inside)]))
            )
    return with_bars(price, shapes)


def _assign(
    needed: list[int], windows: list[tuple[int, int]], carried: dict[int, int], count: int
) -> list[list[int]]:
    """Windows for each of ``count`` alike symbols that cover the marks ``needed``, using each
    window at most as often as the solver carried the group over it: at each mark a symbol
    still lacks, the window there reaching furthest. Where the numbers run out (they never
    should: windows on a line can always be shared out so), a symbol takes the window
    carried most often around that mark, so every mark is covered whatever happens."""
    left = dict(carried)
    out: list[list[int]] = []
    for _ in range(count):
        chosen: list[int] = []
        reach = -1
        for t in needed:
            if t <= reach:
                continue
            around = [w for w in carried if windows[w][0] <= t <= windows[w][1]]
            free = [w for w in around if left[w] > 0]
            if free:
                w = max(free, key=lambda w: (windows[w][1], -windows[w][0]))
                left[w] -= 1
            elif around:
                w = max(around, key=lambda w: carried[w])
            else:
                w = next(i for i, (a, e) in enumerate(windows) if a == e == t)
            chosen.append(w)
            reach = windows[w][1]
        out.append(chosen)
    return out
