"""Which missing sessions a plan resamples from the lake's own finer bars instead of fetching
(lake.yaml ``backfill.resample``). Pure logic: gaps and settled sessions in, the split out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from barlake.calendars.calendar import Calendar, Days
from barlake.coverage.gaps import Gap
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange, session_runs


@dataclass(frozen=True)
class Resample:
    """Missing sessions of one symbol at ``gap.interval`` that are built from its stored
    ``source`` bars: no request."""

    gap: Gap
    source: Interval

    def to_dict(self) -> dict[str, Any]:
        return {**self.gap.to_dict(), "source": self.source}


def split(
    gaps: Sequence[Gap],
    source: Interval,
    settled: Mapping[str, Days],
    fetched: Mapping[str, Days],
    calendars: Mapping[str, Calendar],
) -> tuple[list[Gap], list[Resample]]:
    """``gaps`` (of one coarser interval) as the gaps still to fetch and the sessions to
    resample from ``source`` bars: those the stored ``source`` bars have ``settled``, and those
    the same plan fetches at ``source`` (``fetched``), resampled once they are stored."""
    keep: list[Gap] = []
    local: list[Resample] = []
    for g in gaps:
        cal = calendars[g.symbol]
        sessions = cal.sessions_in(g.range)
        ours = np.isin(sessions, settled.get(g.symbol, sessions[:0]))
        ours |= np.isin(sessions, fetched.get(g.symbol, sessions[:0]))
        local += [Resample(_gap(g, r, cal), source) for r in session_runs(sessions, ours)]
        keep += [_gap(g, r, cal) for r in session_runs(sessions, ~ours)]
    return keep, local


def sessions_of(gaps: Sequence[Gap], calendars: Mapping[str, Calendar]) -> dict[str, Days]:
    """The missing sessions of ``gaps``, per symbol."""
    out: dict[str, list[Days]] = {}
    for g in gaps:
        out.setdefault(g.symbol, []).append(calendars[g.symbol].sessions_in(g.range))
    return {s: np.concatenate(d) for s, d in out.items()}


def _gap(g: Gap, run: DateRange, cal: Calendar) -> Gap:
    return Gap(g.symbol, g.interval, run, cal.session_count(run))
