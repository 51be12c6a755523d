"""Cutoffs: from each symbol's layer and the policy, the first session date each interval keeps,
and the prune of a lake by them (the files, then the ledger)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import date, timedelta
from typing import Any, Protocol

from barlake.domain.datasets import TRADES, Dataset
from barlake.domain.intervals import SPECS
from barlake.retention.policy import Policy
from barlake.retention.prune import Pruned, prune, prune_trades
from barlake.retention.targets import Symbol
from barlake.storage.store import Store
from barlake.storage.trades import TradeStore


class LedgerTrimmer(Protocol):
    def trim_ledger(self, interval: str, cutoffs: dict[str, date | None]) -> None: ...


def cutoffs(
    found: Sequence[Symbol], policy: Policy, today: date
) -> tuple[dict[Dataset, dict[str, date | None]], dict[str, timedelta]]:
    """Per interval, each symbol's first kept session date (None: keep nothing), and each
    symbol's day shift; symbols whose layer has no rule in the policy are left out."""
    per_interval: dict[Dataset, dict[str, date | None]] = {i: {} for i in (*SPECS, TRADES)}
    shifts: dict[str, timedelta] = {}
    for sym in found:
        if policy.for_layer(sym.layer) is None:
            continue
        shifts[sym.name] = sym.calendar.day_shift
        for interval in (*SPECS, TRADES):
            keep = policy.keep_window(sym.layer, interval, today, sym.calendar)
            per_interval[interval][sym.name] = keep.start if keep else None
    return per_interval, shifts


def prune_lake(
    store: Store,
    ledger: LedgerTrimmer,
    found: Sequence[Symbol],
    policy: Policy,
    today: date,
    *,
    dry_run: bool,
    lock: Callable[[], AbstractContextManager[Any]],
    trades: TradeStore | None = None,
    only: Sequence[Dataset] | None = None,
) -> Pruned:
    """Remove the bars of ``found`` older than their retention, and forget them in the ledger
    (so a later promotion fetches them again). A dry run only reads: it does not take ``lock``,
    so it answers while a fill runs. ``trades``: the trades files, pruned by the policy's
    ``trades:`` days (one file per session, so a whole file goes or stays); ``only``: prune
    these datasets alone."""
    report = Pruned(dry_run=dry_run)
    per_interval, shifts = cutoffs(found, policy, today)
    with contextlib.nullcontext() if dry_run else lock():
        for interval, keep in per_interval.items():
            if only is not None and interval not in only:
                continue
            if interval == TRADES:
                if trades is None:
                    continue
                prune_trades(trades, keep, report)
            else:
                prune(store, interval, keep, shifts, report)
            if not dry_run:
                ledger.trim_ledger(interval, keep)
    return report
