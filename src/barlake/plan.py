"""Plans: which provider requests will close which gaps, and why each range was asked for.

Pure logic: gaps in, requests out. Symbols whose gaps are identical share a request up to the
provider's symbols-per-request; long ranges are cut to the provider's range limit; estimates of
bars, pages and time at the provider's rate limit come with the plan.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from barlake.errors import UsageError
from barlake.gaps import Gap
from barlake.intervals import Interval
from barlake.providers.base import Capabilities, Request
from barlake.ranges import ONE_DAY, DateRange

#: Bars per session assumed by estimates, for a regular US equity session.
SESSION_BARS: dict[Interval, int] = {
    "1min": 390,
    "5min": 78,
    "15min": 26,
    "30min": 13,
    "1hour": 7,
    "1day": 1,
}


@dataclass(frozen=True)
class PlannedRequest:
    """A request with what it is expected to bring."""

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
            "estimated_pages": self.pages,
        }


@dataclass(frozen=True)
class Origin:
    """Why a symbol's range at an interval is what it is (for ``lake plan --explain``)."""

    symbol: str
    interval: Interval
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

    @property
    def total_requests(self) -> int:
        return len(self.requests)

    @property
    def total_pages(self) -> int:
        return sum(r.pages for r in self.requests)

    @property
    def estimated_bars(self) -> int:
        return sum(r.bars for r in self.requests)

    @property
    def estimated_seconds(self) -> float:
        """Time to send every page at the rate limit (the first second's burst is free)."""
        if self.rate_limit_per_min <= 0 or math.isinf(self.rate_limit_per_min):
            return 0.0
        return (
            max(0.0, self.total_pages - self.rate_limit_per_min / 60) * 60 / self.rate_limit_per_min
        )

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
        )

    def to_dict(self, *, explain: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "requests": [r.to_dict() for r in self.requests],
            "total_requests": self.total_requests,
            "total_pages": self.total_pages,
            "estimated_bars": self.estimated_bars,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "rate_limit_per_min": self.rate_limit_per_min,
            "gaps": len(self.gaps),
            "missing_sessions": sum(g.sessions for g in self.gaps),
            "skipped": [s.to_dict() for s in self.skipped],
        }
        if explain:
            out["explain"] = [o.to_dict() for o in self.origins]
        return out


def cut(window: DateRange, max_days: int | None) -> list[DateRange]:
    """``window`` in consecutive pieces of at most ``max_days`` calendar days."""
    if not max_days or window.days <= max_days:
        return [window]
    step = timedelta(days=max_days)
    pieces, start = [], window.start
    while start < window.end:
        pieces.append(DateRange(start, min(start + step, window.end)))
        start += step
    return pieces


def requests_for(
    provider: str, caps: Capabilities, gaps: Iterable[Gap], sessions_in: Any = None
) -> list[PlannedRequest]:
    """Requests that close ``gaps``: identical gaps packed together, long ranges cut.

    ``sessions_in(range)`` counts the sessions of a range for estimates (the gap's own
    session count is used when the range is not cut), and tells which days of a gap are
    sessions when daily gaps may go to a grouped-daily endpoint (``caps.grouped_daily``): one
    request per missing session, for every symbol missing it, when that makes fewer requests.
    """
    gaps = list(gaps)
    daily = [g for g in gaps if g.interval == "1day"] if caps.grouped_daily else []
    out = _packed(
        provider, caps, [g for g in gaps if g.interval != "1day"] if daily else gaps, sessions_in
    )
    if daily:
        separate = _packed(provider, caps, daily, sessions_in)
        grouped = _grouped(provider, daily, sessions_in)
        out += grouped if len(grouped) < len(separate) else separate
    return out


def _packed(
    provider: str, caps: Capabilities, gaps: Iterable[Gap], sessions_in: Any
) -> list[PlannedRequest]:
    """Symbols with identical gaps share requests of up to ``symbols_per_request``."""
    packs: dict[tuple[Interval, DateRange], list[Gap]] = defaultdict(list)
    for g in gaps:
        packs[(g.interval, g.range)].append(g)
    out: list[PlannedRequest] = []
    per = max(1, caps.symbols_per_request)
    for (interval, window), members in packs.items():
        symbols = sorted(g.symbol for g in members)
        pieces = cut(window, caps.max_days.get(interval))
        for i in range(0, len(symbols), per):
            chunk = tuple(symbols[i : i + per])
            for piece in pieces:
                sessions = (
                    members[0].sessions
                    if len(pieces) == 1 or sessions_in is None
                    else int(sessions_in(piece))
                )
                bars = sessions * SESSION_BARS[interval] * len(chunk)
                pages = max(1, math.ceil(bars / max(1, caps.bars_per_page)))
                out.append(
                    PlannedRequest(Request(provider, chunk, interval, piece), sessions, bars, pages)
                )
    return out


def _grouped(provider: str, gaps: Sequence[Gap], sessions_in: Any) -> list[PlannedRequest]:
    """One single-session request per missing session, carrying every symbol missing it.

    A day of a gap is a session when ``sessions_in`` counts one in it; without the callback,
    when the gap has a session every day, or else on weekdays.
    """
    known: dict[date, bool] = {}

    def is_session(day: date, gap: Gap) -> bool:
        if sessions_in is None:
            return gap.sessions == gap.range.days or day.weekday() < 5
        if day not in known:
            known[day] = int(sessions_in(DateRange(day, day + ONE_DAY))) > 0
        return known[day]

    by_range: dict[DateRange, list[Gap]] = defaultdict(list)
    for g in gaps:
        by_range[g.range].append(g)
    missing: dict[date, list[str]] = defaultdict(list)
    for window, members in by_range.items():
        days = (window.start + i * ONE_DAY for i in range(window.days))
        for day in (d for d in days if is_session(d, members[0])):
            missing[day] += [g.symbol for g in members]
    return [
        PlannedRequest(
            Request(provider, tuple(sorted(set(symbols))), "1day", DateRange(day, day + ONE_DAY)),
            1,
            len(set(symbols)),
            1,
        )
        for day, symbols in sorted(missing.items())
    ]


def order(requests: Sequence[PlannedRequest], priority: dict[str, int]) -> list[PlannedRequest]:
    """Highest-priority symbols first, then older ranges first, daily before intraday."""
    rank = {i: n for n, i in enumerate(("1day", "1hour", "30min", "15min", "5min", "1min"))}

    def key(p: PlannedRequest) -> tuple[int, Any, int, tuple[str, ...]]:
        top = max((priority.get(s, 0) for s in p.request.symbols), default=0)
        return (-top, p.request.range.start, rank[p.request.interval], p.request.symbols)

    return sorted(requests, key=key)
