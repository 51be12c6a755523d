"""Pruning: removing bars that fell out of their symbol's retention, file by file, atomically.

A cutoff per symbol says which session dates to keep (``day >= cutoff``); a cutoff of None
removes all of that symbol's bars at the interval (its layer no longer keeps the interval).
Symbols without a cutoff are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from barlake.domain import symbols as symbols_
from barlake.domain.datasets import TRADES
from barlake.domain.intervals import Interval, spec
from barlake.storage.store import Store
from barlake.storage.trades import TradeStore


@dataclass
class Pruned:
    """What a prune removed (or would remove, on a dry run)."""

    dry_run: bool
    files_rewritten: int = 0
    files_deleted: int = 0
    bars_removed: int = 0
    #: Prints in the trades files deleted (``by_symbol`` counts them under ``trades``).
    trades_removed: int = 0
    by_symbol: dict[tuple[str, str], int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "files_rewritten": self.files_rewritten,
            "files_deleted": self.files_deleted,
            "bars_removed": self.bars_removed,
            "trades_removed": self.trades_removed,
            "removed": [
                {"symbol": s, "interval": i, "bars": n}
                for (s, i), n in sorted(self.by_symbol.items())
            ],
        }


def prune(
    store: Store,
    interval: Interval,
    cutoffs: Mapping[str, date | None],
    day_shift: Mapping[str, timedelta],
    report: Pruned,
) -> None:
    """Remove bars of ``interval`` dated before each symbol's cutoff, file by file."""
    if not cutoffs:
        return
    by_symbol = spec(interval).partitioning != "year"
    names = list(cutoffs) if by_symbol else None
    for path in store.files(interval, names, None):
        _prune_file(store, interval, path, cutoffs, day_shift, report)


def prune_trades(store: TradeStore, cutoffs: Mapping[str, date | None], report: Pruned) -> None:
    """Delete the trades files of sessions before each symbol's cutoff (all its files for
    None), each removal atomic and durable; symbols without a cutoff are not touched."""
    if not cutoffs:
        return
    for sym, session, path in store.files(list(cutoffs)):
        cutoff = cutoffs[sym]
        if cutoff is not None and session >= cutoff:
            continue
        prints = store.count(path)
        key = (sym, TRADES)
        report.by_symbol[key] = report.by_symbol.get(key, 0) + prints
        report.trades_removed += prints
        report.files_deleted += 1
        if not report.dry_run:
            store.remove(sym, session)


def _prune_file(
    store: Store,
    interval: Interval,
    path: Path,
    cutoffs: Mapping[str, date | None],
    day_shift: Mapping[str, timedelta],
    report: Pruned,
) -> None:
    # Read before the file: a writer that replaces it meanwhile (another machine's, on object
    # storage) makes the rewrite fail instead of losing that writer's rows.
    base = store.version(path)
    frame = store.read_file(path)
    if frame is None or frame.is_empty():
        return
    keep_from = pl.DataFrame(
        {
            "symbol": list(cutoffs),
            "_cutoff": [c or date.max for c in cutoffs.values()],
            "_shift": [day_shift.get(s, timedelta(0)) for s in cutoffs],
        },
        schema={"symbol": pl.String, "_cutoff": pl.Date, "_shift": pl.Duration("us")},
    )
    shift = pl.col("_shift") if spec(interval).intraday else pl.lit(timedelta(0))
    marked = frame.join(keep_from, on="symbol", how="left").with_columns(
        ((pl.col("ts") + shift).dt.date() < pl.col("_cutoff")).fill_null(value=False).alias("_drop")
    )
    dropped = marked.filter(pl.col("_drop"))
    if dropped.is_empty():
        return
    for sym, n in dropped.group_by("symbol").len().iter_rows():
        key = (symbols_.check_symbol(sym), interval)
        report.by_symbol[key] = report.by_symbol.get(key, 0) + int(n)
    report.bars_removed += dropped.height
    kept = marked.filter(~pl.col("_drop")).select(frame.columns)
    if kept.is_empty():
        report.files_deleted += 1
        if not report.dry_run:
            store.remove_file(path, base=base)  # and the folders it leaves empty
        return
    report.files_rewritten += 1
    if not report.dry_run:
        store.replace_file(path, interval, kept, base=base)
