"""Planning trades: the requests that bring each symbol's trades to its wanted sessions.

Pure logic: trade gaps in, requests out. Symbols missing the same run of sessions share a
request, ``trade_symbols`` at most (Alpaca's trades endpoint takes many symbols; Polygon's
one); a request's answer comes in as many pages as its prints need, which no plan can know
beforehand: the estimate assumes ``PRINTS_PER_SESSION`` prints per symbol and session.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from barlake.coverage.gaps import Gap
from barlake.domain.ranges import DateRange

#: Prints a symbol is assumed to have per session, for the page estimate: a mid-cap stock's.
PRINTS_PER_SESSION = 50_000


@dataclass(frozen=True)
class TradeRequest:
    """The trades of ``symbols`` in the sessions of ``range``, from the plan's provider."""

    symbols: tuple[str, ...]
    range: DateRange
    sessions: int
    pages: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbols": list(self.symbols),
            "start": self.range.start.isoformat(),
            "end": self.range.last.isoformat(),
            "sessions": self.sessions,
            "estimated_requests": self.pages,
        }


def plan_trades(gaps: Iterable[Gap], batch: int, per_page: int) -> list[TradeRequest]:
    """Requests closing the trade ``gaps``: one per run of missing sessions, shared by the
    symbols missing that same run, ``batch`` symbols at most each."""
    alike: dict[tuple[DateRange, int], list[str]] = {}
    for g in gaps:
        alike.setdefault((g.range, g.sessions), []).append(g.symbol)
    out = []
    size = max(1, batch)
    for (window, sessions), names in sorted(alike.items(), key=lambda kv: kv[0][0]):
        names = sorted(set(names))
        for i in range(0, len(names), size):
            chunk = tuple(names[i : i + size])
            prints = len(chunk) * sessions * PRINTS_PER_SESSION
            out.append(TradeRequest(chunk, window, sessions, max(1, math.ceil(prints / per_page))))
    return out
