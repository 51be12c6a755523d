"""Coverage: a symbols x sessions matrix saying, for each cell, what the lake holds (the state
codes of ``barlake.coverage``), with its tables and its picture."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from barlake.calendars.calendar import Days
from barlake.coverage.matrix import MISSING, NOT_EXPECTED, PROVISIONAL, STATES, Cells, States
from barlake.domain.intervals import Interval

if TYPE_CHECKING:
    from barlake.views.plot import Size


@dataclass(frozen=True, eq=False)
class Coverage:
    """What the lake holds of ``symbols`` (rows) at ``interval`` on ``sessions`` (columns).

    ``sessions`` is the sorted union of the symbols' calendars' sessions in the range shown;
    ``states[i, j]`` is the state code of symbol ``i`` on session ``j`` (see ``STATES``).
    ``groups`` names each symbol's group (``Lake.coverage``: its layer, "layer 3"), empty when
    the symbols are not grouped: a map of many symbols draws one band per group.
    """

    interval: Interval
    symbols: tuple[str, ...]
    sessions: Days
    states: States
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.groups and len(self.groups) != len(self.symbols):
            msg = f"{len(self.groups)} group(s) for {len(self.symbols)} symbol(s)"
            raise ValueError(msg)

    @property
    def gap_sessions(self) -> int:
        """How many (symbol, session) cells a fill would fetch: the sessions ``gaps`` reports."""
        return int(np.isin(self.states, (MISSING, PROVISIONAL)).sum())

    def row(self, symbol: str) -> States:
        """The states of one symbol, one per session."""
        row: States = self.states[self.symbols.index(symbol)]
        return row

    def state(self, symbol: str, session: date) -> int:
        """The state code of one cell."""
        j = int(np.searchsorted(self.sessions, np.datetime64(session, "D")))
        if j >= len(self.sessions) or self.sessions[j] != np.datetime64(session, "D"):
            return NOT_EXPECTED
        return int(self.row(symbol)[j])

    def to_frame(self) -> pl.DataFrame:
        """One row per cell: symbol, session (date), state (code) and label (its name)."""
        n, m = self.states.shape
        return pl.DataFrame(
            {
                "symbol": np.repeat(np.array(self.symbols, dtype=object), m).tolist(),
                "session": np.tile(self.sessions, n),
                "state": self.states.reshape(-1),
            },
            schema={"symbol": pl.String, "session": pl.Date, "state": pl.Int8},
        ).with_columns(
            pl.col("state")
            .replace_strict(list(STATES), list(STATES.values()), return_dtype=pl.String)
            .alias("label")
        )

    def summary(self) -> pl.DataFrame:
        """Per symbol: expected sessions, the count of each state, and ``covered`` (share of
        expected sessions that are not gaps, 0..1; 1.0 when none are expected)."""
        counts = {name: (self.states == code).sum(axis=1) for code, name in STATES.items()}
        expected = self.states.shape[1] - counts["not expected"]
        gaps = counts["missing"] + counts["provisional"]
        covered = np.where(expected > 0, 1 - gaps / np.maximum(expected, 1), 1.0)
        return pl.DataFrame(
            {
                "symbol": list(self.symbols),
                "expected": expected.astype(np.int64),
                **{
                    name: c.astype(np.int64) for name, c in counts.items() if name != "not expected"
                },
                "covered": covered.astype(np.float64),
            },
            schema_overrides={"symbol": pl.String},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: interval, symbols, sessions (ISO dates), states (rows of codes), codes."""
        return {
            "interval": self.interval,
            "symbols": list(self.symbols),
            "sessions": [str(d) for d in self.sessions],
            "states": self.states.tolist(),
            "codes": {str(k): v for k, v in STATES.items()},
        }

    def plot(self, path: str | Path, *, title: str | None = None, size: Size | None = None) -> Path:
        """Draw the coverage map to a PNG at ``path`` (needs matplotlib: ``barlake[plot]``).

        >>> lake.coverage(days=90).plot("coverage.png")  # doctest: +SKIP
        """
        from barlake.views import plot

        return plot.coverage_map(self, path, title=title, size=size)


def from_cells(cells: Cells) -> Coverage:
    """The ``Coverage`` of the gap finder's ``cells``, its symbols grouped by layer."""
    groups = [f"layer {cells.layers[s]}" for s in cells.symbols] if cells.layers else ()
    return assemble(cells.interval, cells.symbols, cells.sessions, cells.rows, groups)


def assemble(
    interval: Interval,
    symbols: Sequence[str],
    sessions: Days,
    rows: dict[str, tuple[Days, States]],
    groups: Sequence[str] = (),
) -> Coverage:
    """A ``Coverage`` from each symbol's expected sessions and their states; sessions and
    symbols without a state are NOT_EXPECTED. ``groups``: each symbol's group, or none."""
    grid = np.full((len(symbols), len(sessions)), NOT_EXPECTED, dtype=np.int8)
    for i, sym in enumerate(symbols):
        if sym in rows:
            days, row = rows[sym]
            grid[i, np.searchsorted(sessions, days)] = row
    return Coverage(interval, tuple(symbols), sessions, grid, tuple(groups))
