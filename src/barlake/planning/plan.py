"""Plans: which provider requests will close which gaps, and why each range was asked for.

Pure logic: gaps in, requests out. ``barlake.planning.cost`` picks the request shapes (nearby gaps
merged, alike symbols packed, grouped daily where cheaper, ranges cut to the provider's limits)
and the lower bound they are measured against; estimates of bars, requests and time (the
provider's rate limit, latency and the fill's workers: ``barlake.planning.duration``) come with
the plan, and ``order`` decides who goes first.

A *request* is one call to the provider, one page of an answer, as ``lake fill`` counts them; a
planned *range* (``PlannedRequest``) asks for some symbols over some sessions and takes as many
requests as its answer has pages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from barlake.calendars.calendar import Calendar
from barlake.config import REREAD_WEIGHT
from barlake.coverage.gaps import Gap
from barlake.domain.datasets import Dataset, bar_interval
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange, subtract
from barlake.errors import UsageError
from barlake.planning import exact
from barlake.planning.bound import lower_bound
from barlake.planning.cost import plan_shapes, total_cost
from barlake.planning.duration import Pace, seconds
from barlake.planning.pricing import Axis, Pricing, Shape
from barlake.planning.resample import Resample
from barlake.planning.trades import TradeRequest
from barlake.providers.base import Capabilities, Request


@dataclass(frozen=True)
class PlannedRequest:
    """A range to ask for (symbols over sessions) with what it is expected to bring: bars,
    and ``pages``, the requests (provider calls) its answer takes."""

    request: Request
    sessions: int
    bars: int
    pages: int

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "provider": r.provider,
            "symbols": list(r.symbols),
            "interval": r.interval,
            "start": r.range.start.isoformat(),
            "end": r.range.last.isoformat(),
            "sessions": self.sessions,
            "estimated_bars": self.bars,
            "estimated_requests": self.pages,
        }


@dataclass(frozen=True)
class Origin:
    """Why a symbol's range at an interval is what it is (for ``lake plan --explain``)."""

    symbol: str
    interval: Dataset
    requested: DateRange | None
    source: str
    note: str = ""
    expected_sessions: int = 0
    missing_sessions: int = 0
    gaps: tuple[Gap, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        req = self.requested
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "first": req.start.isoformat() if req else None,
            "last": req.last.isoformat() if req else None,
            "source": self.source,
            "note": self.note,
            "expected_sessions": self.expected_sessions,
            "covered_sessions": self.expected_sessions - self.missing_sessions,
            "missing_sessions": self.missing_sessions,
            "gaps": [g.to_dict() for g in self.gaps],
        }


@dataclass(frozen=True)
class ActionRequest:
    """Corporate actions of ``symbols`` with ex-dates in ``range``, from the plan's provider:
    one batch, one request or a few pages."""

    symbols: tuple[str, ...]
    range: DateRange

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbols": list(self.symbols),
            "start": self.range.start.isoformat(),
            "end": self.range.last.isoformat(),
        }


def plan_actions(
    wanted: Mapping[str, DateRange], covered: Mapping[str, Sequence[DateRange]], batch: int
) -> list[ActionRequest]:
    """The requests that bring each symbol's actions to its ``wanted`` range, ``covered``
    (ranges fetched before, final) left out; symbols missing the same range share a request,
    ``batch`` at most."""
    missing: dict[DateRange, list[str]] = {}
    for symbol, window in sorted(wanted.items()):
        for hole in subtract([window], covered.get(symbol, ())):
            missing.setdefault(hole, []).append(symbol)
    return [
        ActionRequest(tuple(names[i : i + batch]), hole)
        for hole, names in sorted(missing.items(), key=lambda kv: kv[0].start)
        for i in range(0, len(names), max(1, batch))
    ]


@dataclass(frozen=True)
class Skipped:
    """Something the plan cannot fetch, with the reason."""

    symbols: tuple[str, ...]
    interval: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"symbols": list(self.symbols), "interval": self.interval, "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    """Requests in the order they will run, with estimates and explanations."""

    provider: str
    rate_limit_per_min: float
    requests: tuple[PlannedRequest, ...]
    gaps: tuple[Gap, ...]
    origins: tuple[Origin, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    #: Fewer calls than this cannot close ``gaps`` at this provider (``barlake.planning.cost``).
    lower_bound: int = 0
    #: The integer program stopped on its clock (``barlake.exact.SECONDS``), not its work
    #: budget: the plan and bound may differ on a faster or quieter machine.
    time_limit_reached: bool = False
    #: Corporate actions to fetch beside the bars (``backfill.fetch_actions``).
    actions: tuple[ActionRequest, ...] = ()
    #: Missing sessions built from the lake's finer bars, after the requests: no request.
    resampled: tuple[Resample, ...] = ()
    #: What besides the rate limit sets the fill's pace (latency, workers, the window).
    pace: Pace = field(default_factory=Pace)
    #: Trades to fetch after the bars (``planning.trades``); their gaps are in ``gaps``.
    trades: tuple[TradeRequest, ...] = ()

    @property
    def total_trade_requests(self) -> int:
        """Requests the trades are expected to take (a guess: see ``planning.trades``)."""
        return sum(t.pages for t in self.trades)

    @property
    def total_requests(self) -> int:
        """Requests (provider calls, one per page) the plan expects to make: the unit of
        ``lower_bound`` and of ``JobResult.requests``."""
        return sum(r.pages for r in self.requests)

    @property
    def total_ranges(self) -> int:
        """Ranges asked for (``requests``), each taking one request or more."""
        return len(self.requests)

    @property
    def estimated_bars(self) -> int:
        return sum(r.bars for r in self.requests)

    @property
    def estimated_seconds(self) -> float:
        """Seconds the fill is expected to take to send every request and hear every answer:
        the rate limit's window (a window's quota goes out at once, each further quota a
        window later), the provider's latency and the fill's workers, replayed in plan order
        (``barlake.planning.duration``), and the write of the bars still buffered after the
        last answer: those of the last interval fetched. Action requests count one page each."""
        pages = [r.pages for r in self.requests] + [1] * len(self.actions)
        if not pages:
            return 0.0
        last = self.requests[-1].request.interval if self.requests else None
        tail = sum(r.bars for r in self.requests if r.request.interval == last)
        return seconds(pages, self.rate_limit_per_min, self.pace, tail)

    def __add__(self, other: Plan) -> Plan:
        """One plan doing both: run several selections as one job.

        >>> daily = lake.plan(interval="1day", days=365)                  # doctest: +SKIP
        >>> lake.run_plan(daily + lake.plan("AAPL", interval="1min", days=20))  # doctest: +SKIP
        """
        if other.provider != self.provider:
            msg = f"cannot join a {self.provider} plan and a {other.provider} plan; run them apart"
            raise UsageError(msg)
        return Plan(
            provider=self.provider,
            rate_limit_per_min=self.rate_limit_per_min,
            requests=self.requests + other.requests,
            gaps=self.gaps + other.gaps,
            origins=self.origins + other.origins,
            skipped=self.skipped + other.skipped,
            parameters={"plans": [self.parameters, other.parameters]},
            lower_bound=self.lower_bound + other.lower_bound,
            time_limit_reached=self.time_limit_reached or other.time_limit_reached,
            actions=self.actions + other.actions,
            resampled=self.resampled + other.resampled,
            pace=self.pace,
            trades=self.trades + other.trades,
        )

    def to_dict(self, *, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "ranges": [r.to_dict() for r in self.requests],
            "total_ranges": self.total_ranges,
            "total_requests": self.total_requests,
            "lower_bound": self.lower_bound,
            "estimated_bars": self.estimated_bars,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "rate_limit_per_min": self.rate_limit_per_min,
            "estimate": self.pace.to_dict(),
            "gaps": len(self.gaps),
            "missing_sessions": sum(g.sessions for g in self.gaps),
            "skipped": [s.to_dict() for s in self.skipped],
            "solver": {"time_limit_reached": self.time_limit_reached},
            "action_requests": [a.to_dict() for a in self.actions],
            "total_action_requests": len(self.actions),
            "resampled": [r.to_dict() for r in self.resampled],
            "resampled_sessions": sum(r.gap.sessions for r in self.resampled),
            "trade_requests": [t.to_dict() for t in self.trades],
            "total_trade_requests": self.total_trade_requests,
        }
        if explain:
            out["explain"] = [o.to_dict() for o in self.origins]
        return out


#: Each symbol's listing and delisting day (None: unknown), for what requests return.
Listings = Mapping[str, tuple[date | None, date | None]]


def requests_for(
    provider: str,
    caps: Capabilities,
    gaps: Iterable[Gap],
    calendars: Calendar | Mapping[str, Calendar] | None = None,
    *,
    reread_weight: float = REREAD_WEIGHT,
    listings: Listings | None = None,
) -> list[PlannedRequest]:
    """The cheapest requests found to close ``gaps`` (see ``barlake.planning.cost``).

    ``calendars`` gives the sessions: one calendar for every symbol, or one per symbol; without
    one, weekdays stand for sessions. ``listings`` tells when symbols trade: a request returns
    no bars of a symbol before its listing.
    """
    return price(provider, caps, gaps, calendars, reread_weight=reread_weight, listings=listings)[0]


def lower_bound_for(
    caps: Capabilities,
    gaps: Iterable[Gap],
    calendars: Calendar | Mapping[str, Calendar] | None = None,
    *,
    listings: Listings | None = None,
) -> int:
    """Fewer calls than this cannot close ``gaps`` at this provider, whatever the plan."""
    return sum(
        solve(Pricing(caps, interval, axis, REREAD_WEIGHT, active), holes)[1]
        for (interval, axis), (holes, active) in _cells(gaps, calendars, listings).items()
    )


def price(
    provider: str,
    caps: Capabilities,
    gaps: Iterable[Gap],
    calendars: Calendar | Mapping[str, Calendar] | None = None,
    *,
    reread_weight: float = REREAD_WEIGHT,
    listings: Listings | None = None,
) -> tuple[list[PlannedRequest], int, bool]:
    """``requests_for`` and ``lower_bound_for`` at once (the gaps are indexed once), and
    whether an integer program stopped on its clock rather than its work budget."""
    out: list[PlannedRequest] = []
    bound = 0
    timed_out = False
    for (interval, axis), (holes, active) in _cells(gaps, calendars, listings).items():
        pricing = Pricing(caps, interval, axis, reread_weight, active)
        shapes, low, late = solve(pricing, holes)
        bound += low
        timed_out = timed_out or late
        for shape in shapes:
            window = axis.range(shape.first, shape.last)
            sessions = shape.last - shape.first + 1
            pages = _calls(pricing, [shape])
            request = Request(provider, shape.symbols, interval, window)
            out.append(PlannedRequest(request, sessions, shape.bars, pages))
    return out, bound, timed_out


def solve(
    price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]
) -> tuple[list[Shape], int, bool]:
    """The cheapest requests found for ``holes`` and the fewest calls any could make: the cost
    model's plan and bounds, then for small gap sets the integer program's over the 4, 8 and
    16 largest alike groups (the others join its windows after), until the plan meets the
    bound. A program over many more groups takes seconds and often ends without a good plan.
    Last, whether a program ran out of time (then the answer may depend on the machine)."""
    shapes = plan_shapes(price, holes)
    bound = lower_bound(price, holes, enough=_calls(price, shapes))
    timed_out = False
    for largest in _LARGEST:
        if _calls(price, shapes) <= bound:
            break  # as few calls as can be
        found = exact.solve(price, holes, largest)
        if found is None:
            break
        timed_out = timed_out or found.timed_out
        bound = max(bound, found.bound)
        if (
            found.shapes
            and total_cost(price, found.shapes, holes) < total_cost(price, shapes, holes) - 1e-9
        ):
            shapes = found.shapes
        if largest >= found.groups:
            break  # that was every group
    return shapes, bound, timed_out


#: How many of the largest alike groups the integer programs keep, one after the other.
_LARGEST = (4, 8, 16)


def _calls(price: Pricing, shapes: Sequence[Shape]) -> int:
    return sum(1 if s.grouped else price.calls(s.bars) for s in shapes)


Cells = tuple[dict[str, npt.NDArray[np.int64]], dict[str, tuple[int, int]]]


def _cells(
    gaps: Iterable[Gap],
    calendars: Calendar | Mapping[str, Calendar] | None,
    listings: Listings | None = None,
) -> dict[tuple[Interval, Axis], Cells]:
    """The missing sessions of ``gaps`` as indices on one axis per (interval, calendar), and
    the sessions ``lo..hi-1`` of that axis in which symbols not trading throughout trade."""
    groups: dict[tuple[Interval, str], list[Gap]] = defaultdict(list)
    cals: dict[str, Calendar | None] = {}
    for g in gaps:
        cal = (
            calendars
            if isinstance(calendars, Calendar) or calendars is None
            else calendars.get(g.symbol)
        )
        name = cal.name if cal is not None else ""
        cals[name] = cal
        groups[(bar_interval(g.interval), name)].append(g)
    out: dict[tuple[Interval, Axis], Cells] = {}
    for (interval, name), members in groups.items():
        span = DateRange(min(g.range.start for g in members), max(g.range.end for g in members))
        axis = Axis.of(cals[name], interval, span)
        holes = _indices(axis, members)
        out[(interval, axis)] = (holes, _active(axis, holes, listings or {}))
    return out


def _active(axis: Axis, symbols: Iterable[str], listings: Listings) -> dict[str, tuple[int, int]]:
    size = len(axis.days)
    out: dict[str, tuple[int, int]] = {}
    for s in symbols:
        listed, delisted = listings.get(s, (None, None))
        lo = int(np.searchsorted(axis.days, np.datetime64(listed, "D"))) if listed else 0
        hi = (
            int(np.searchsorted(axis.days, np.datetime64(delisted, "D"), side="right"))
            if delisted
            else size
        )
        if lo > 0 or hi < size:
            out[s] = (lo, hi)
    return out


def _indices(axis: Axis, gaps: Sequence[Gap]) -> dict[str, npt.NDArray[np.int64]]:
    """Each symbol's missing session indices on ``axis``, sorted and unique (vectorised: a
    daily update has thousands of one-session gaps)."""
    bounds = np.array([[g.range.start, g.range.end] for g in gaps], dtype="datetime64[D]")
    lo, hi = (np.searchsorted(axis.days, bounds[:, k]) for k in (0, 1))
    ids: dict[str, int] = {}
    owner = np.array([ids.setdefault(g.symbol, len(ids)) for g in gaps], dtype=np.int64)
    names = list(ids)
    sizes = np.maximum(hi - lo, 0)
    # Every index of every gap: each gap's start, then +1 steps within it.
    step = np.ones(int(sizes.sum()), dtype=np.int64)
    starts = np.cumsum(sizes) - sizes
    nonempty = sizes > 0
    step[starts[nonempty]] = lo[nonempty] - np.concatenate([[0], (lo + sizes - 1)[nonempty][:-1]])
    index = np.cumsum(step)
    who = np.repeat(owner, sizes)
    pairs = who * (len(axis.days) + 1) + index
    if len(pairs) > 1 and not bool((pairs[1:] > pairs[:-1]).all()):  # gaps come sorted, mostly
        pairs = np.unique(pairs)
    who, index = pairs // (len(axis.days) + 1), pairs % (len(axis.days) + 1)
    cuts = np.searchsorted(who, np.arange(len(names) + 1))
    return {
        names[k]: index[cuts[k] : cuts[k + 1]] for k in range(len(names)) if cuts[k + 1] > cuts[k]
    }


def order(requests: Sequence[PlannedRequest], priority: dict[str, int]) -> list[PlannedRequest]:
    """Highest priority first (a request ranks as its most important symbol); within one
    priority, requests take turns by the symbols they carry, so that one symbol with a hundred
    requests does not hold back a hundred symbols with one each. Each one's own requests go
    daily first, then coarse to fine, older ranges first."""
    rank = {i: n for n, i in enumerate(("1day", "1hour", "30min", "15min", "5min", "1min"))}

    def key(p: PlannedRequest) -> tuple[int, Any, tuple[str, ...]]:
        return (rank[p.request.interval], p.request.range.start, p.request.symbols)

    levels: dict[int, dict[tuple[str, ...], list[PlannedRequest]]] = defaultdict(dict)
    for p in requests:
        top = max((priority.get(s, 0) for s in p.request.symbols), default=0)
        levels[top].setdefault(p.request.symbols, []).append(p)
    out: list[PlannedRequest] = []
    for top in sorted(levels, reverse=True):
        queues = sorted((sorted(q, key=key) for q in levels[top].values()), key=lambda q: key(q[0]))
        for turn in range(max(len(q) for q in queues)):
            out += [q[turn] for q in queues if turn < len(q)]
    return out
