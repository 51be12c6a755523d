"""Datasets: bars at one interval, or trades (tick data, one row per print).

Everywhere an interval selects stored data (``--interval``, the ledger's and the progress rows'
``interval`` column, gaps, plans, policies) ``trades`` selects the trades, so one job can ask
for ``1day,1min,trades`` at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from barlake.domain.intervals import ALIASES, INTERVALS, Interval, spec
from barlake.errors import UsageError

#: The name of the trades dataset wherever an interval could be named.
TRADES: Literal["trades"] = "trades"
#: Bars at one interval, or the trades.
Dataset = Interval | Literal["trades"]


def dataset(name: str) -> Dataset:
    """``trades``, or the interval ``name`` stands for (UsageError naming every valid one)."""
    if name.strip().lower() == TRADES:
        return TRADES
    try:
        return spec(name).name
    except UsageError:
        msg = (
            f"unknown interval {name!r}; use one of: {' '.join(INTERVALS)} "
            f"(or {' '.join(ALIASES)}), or {TRADES}"
        )
        raise UsageError(msg) from None


def parse_datasets(text: str) -> list[Dataset]:
    """A comma list such as ``1day,1min,trades`` as dataset names; UsageError when it names
    none."""
    names = [dataset(part.strip()) for part in text.split(",") if part.strip()]
    if not names:
        msg = f"--interval {text!r} is empty; give one or more of: {' '.join(INTERVALS)} {TRADES}"
        raise UsageError(msg)
    return names


def is_trades(name: str) -> bool:
    return name == TRADES


def bar_intervals(names: Iterable[Dataset]) -> tuple[Interval, ...]:
    """The bar intervals among ``names`` (``trades`` left out), in order."""
    return tuple(n for n in names if n != TRADES)


def bar_interval(name: Dataset) -> Interval:
    """``name`` as a bar interval: a ``UsageError`` for ``trades`` where only bars are read."""
    if name == TRADES:
        msg = "this reads bars only; trades are read with `Lake.trades` (or `lake resample`)"
        raise UsageError(msg)
    return name
