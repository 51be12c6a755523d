"""The ledger rule: which sessions the ledger's ranges cover, and which it sends back.

A fetch records the range it asked for with its bar count, and each run of sessions that came
back empty with 0 bars. A final range that came back empty covers its sessions: halted days,
days before a listing and holidays the calendar missed are not asked for again. A final range
with bars covers nothing by itself: its sessions are covered by the bars stored, so a bar lost
later is a gap. A provisional range (it touched a session that had not closed) sends its sessions
back for a re-fetch, unless a final fetch made after it settled them. Gaps and the coverage
matrix both read the ledger through ``cover``, the one copy of this rule.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime

import polars as pl

from barlake.domain.ranges import DateRange, subtract


@dataclass
class Cover:
    """What the ledger says of one symbol's sessions at one interval."""

    #: Final ranges that came back empty: their sessions are covered without bars.
    empty: list[DateRange] = field(default_factory=list)
    #: Provisional ranges no later final fetch settled: fetched again.
    refetch: list[DateRange] = field(default_factory=list)


def cover(ledger: pl.DataFrame, symbols: Collection[str]) -> dict[str, Cover]:
    """The ``Cover`` of each of ``symbols`` that the ``ledger`` rows (the ledger table's
    columns ``symbol, start_date, end_date, final, bars, fetched_at``) say anything about."""
    out: dict[str, Cover] = {}
    finals: dict[str, list[tuple[DateRange, datetime]]] = {}
    interim: dict[str, list[tuple[DateRange, datetime]]] = {}
    rows: list[tuple[str, date, date, bool, int, datetime]] = list(
        ledger.select("symbol", "start_date", "end_date", "final", "bars", "fetched_at").iter_rows()
    )
    for sym, lo, hi, final, bars, at in rows:
        if sym not in symbols:
            continue
        (finals if final else interim).setdefault(sym, []).append((DateRange(lo, hi), at))
        if final and bars == 0:
            out.setdefault(sym, Cover()).empty.append(DateRange(lo, hi))
    for sym, fetched in interim.items():
        for window, at in fetched:
            later = [r for r, when in finals.get(sym, []) if when >= at]
            out.setdefault(sym, Cover()).refetch.extend(subtract([window], later))
    return out
