"""What the lake holds: per symbol and interval its stored bars, its sessions and its files.

``Info`` joins three readings that other commands already make, so that it agrees with them by
construction: the coverage matrix (``Lake.coverage``, whose missing and provisional cells are the
sessions ``Lake.gaps`` reports) gives the session counts; the stored bars as ``Lake.bars`` reads
them give the first and last bar, the bar count and the files they sit in; the ledger gives the
latest fetch of each series and its provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import polars as pl

from barlake.coverage.matrix import NOT_EXPECTED
from barlake.domain.intervals import INTERVALS, Interval
from barlake.views.coverage import Coverage

#: The session counts of a series, as ``Coverage.summary`` names them.
SESSION_COUNTS = ("expected", "stored", "missing", "provisional", "empty")


@dataclass(frozen=True)
class Series:
    """One symbol at one interval.

    ``first_bar``, ``last_bar``, ``bars``, ``files`` and ``bytes`` describe the stored bars the
    selection's dates choose (all history without dates), as ``Lake.bars`` reads them; a year
    file that several symbols share counts for each, its bytes shared out by their rows.
    ``window_first``..``window_last`` and the session counts are the selection's expected
    sessions, exactly the cells of ``Lake.coverage`` (``missing + provisional`` are the sessions
    ``Lake.gaps`` reports). ``last_fill`` is the latest fetch the ledger records, by
    ``provider`` in job ``job_id``.
    """

    symbol: str
    interval: Interval
    first_bar: datetime | None = None
    last_bar: datetime | None = None
    bars: int = 0
    window_first: date | None = None
    window_last: date | None = None
    expected: int = 0
    stored: int = 0
    missing: int = 0
    provisional: int = 0
    empty: int = 0
    files: int = 0
    bytes: int = 0
    last_fill: datetime | None = None
    provider: str | None = None
    job_id: str | None = None
    #: The files holding the bars, to count each once in the totals.
    paths: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def gaps(self) -> int:
        """Sessions a fill would fetch: missing and provisional."""
        return self.missing + self.provisional

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "first_bar": _iso(self.first_bar),
            "last_bar": _iso(self.last_bar),
            "bars": self.bars,
            "window_first": _iso(self.window_first),
            "window_last": _iso(self.window_last),
            **{name: getattr(self, name) for name in SESSION_COUNTS},
            "files": self.files,
            "bytes": self.bytes,
            "last_fill": _iso(self.last_fill),
            "provider": self.provider,
            "job_id": self.job_id,
        }


@dataclass(frozen=True)
class Info:
    """Every ``Series`` of a selection, sorted by (symbol, interval), and their totals."""

    series: tuple[Series, ...]

    def of(self, interval: Interval | None = None) -> list[Series]:
        """The series at ``interval`` (all when None)."""
        return [s for s in self.series if interval is None or s.interval == interval]

    @property
    def intervals(self) -> list[Interval]:
        return sorted({s.interval for s in self.series}, key=_interval_order)

    def totals(self, interval: Interval | None = None) -> dict[str, Any]:
        """Sums over the series at ``interval`` (the whole lake when None): symbols, bars,
        session counts, files (each counted once) and bytes, the first and last bar and the
        latest fill."""
        chosen = self.of(interval)
        firsts = [s.first_bar for s in chosen if s.first_bar]
        lasts = [s.last_bar for s in chosen if s.last_bar]
        fills = [s for s in chosen if s.last_fill]
        latest = max(fills, key=lambda s: s.last_fill or _EPOCH) if fills else None
        return {
            "interval": interval,
            "symbols": len({s.symbol for s in chosen}),
            "series": len(chosen),
            "first_bar": _iso(min(firsts) if firsts else None),
            "last_bar": _iso(max(lasts) if lasts else None),
            "bars": sum(s.bars for s in chosen),
            **{name: sum(getattr(s, name) for s in chosen) for name in SESSION_COUNTS},
            "files": len(frozenset().union(*(s.paths for s in chosen))),
            "bytes": sum(s.bytes for s in chosen),
            "last_fill": _iso(latest.last_fill if latest else None),
            "provider": latest.provider if latest else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``series`` (one object per symbol and interval), ``intervals`` (the
        totals of each) and ``totals`` (the whole selection); times are ISO 8601 in UTC."""
        overall = self.totals()
        del overall["interval"]
        return {
            "series": [s.to_dict() for s in self.series],
            "intervals": [self.totals(i) for i in self.intervals],
            "totals": overall,
        }


def assemble(
    coverages: Sequence[Coverage],
    stored: Mapping[Interval, pl.DataFrame],
    files: Mapping[str, tuple[int, int]],
    fills: Iterable[Mapping[str, Any]],
) -> Info:
    """The ``Info`` of each coverage's symbols at its interval.

    ``stored`` holds per interval one row per (symbol, file) of the stored bars: ``symbol,
    file, bars, first, last``; ``files`` each file's (rows, bytes) (``Store.file_stats``);
    ``fills`` the ledger's latest fetches (``Catalog.last_fills``).
    """
    latest = {(str(f["symbol"]), str(f["interval"])): f for f in fills}
    out: list[Series] = []
    for cov in coverages:
        counts = {r["symbol"]: r for r in cov.summary().to_dicts()}
        on_disk = _by_symbol(stored.get(cov.interval), files)
        for i, sym in enumerate(cov.symbols):
            row = cov.states[i]
            seen = np.flatnonzero(row != NOT_EXPECTED)
            fill = latest.get((sym, cov.interval), {})
            fields: dict[str, Any] = {
                "window_first": _day(cov.sessions[seen[0]]) if seen.size else None,
                "window_last": _day(cov.sessions[seen[-1]]) if seen.size else None,
                **{name: int(counts[sym][name]) for name in SESSION_COUNTS},
                **on_disk.get(sym, {}),
                "last_fill": _utc(fill.get("fetched_at")),
                "provider": fill.get("provider"),
                "job_id": None if fill.get("job_id") is None else str(fill["job_id"]),
            }
            out.append(Series(sym, cov.interval, **fields))
    out.sort(key=lambda s: (s.symbol, _interval_order(s.interval)))
    return Info(tuple(out))


def _by_symbol(
    frame: pl.DataFrame | None, files: Mapping[str, tuple[int, int]]
) -> dict[str, dict[str, Any]]:
    """Each symbol's stored figures from its (symbol, file) rows."""
    out: dict[str, dict[str, Any]] = {}
    if frame is None:
        return out
    for (sym,), part in frame.group_by(["symbol"], maintain_order=True):
        paths = frozenset(str(p) for p in part["file"])
        share = 0.0
        for path, n in zip(part["file"], part["bars"], strict=True):
            rows, size = files[str(path)]
            share += size * n / rows if rows else 0.0
        out[str(sym)] = {
            "first_bar": _utc(part["first"].min()),
            "last_bar": _utc(part["last"].max()),
            "bars": int(part["bars"].sum()),
            "files": len(paths),
            "bytes": round(share),
            "paths": paths,
        }
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _interval_order(interval: str) -> int:
    """Finest first, as ``INTERVALS`` lists them."""
    return INTERVALS.index(interval) if interval in INTERVALS else len(INTERVALS)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _day(value: np.datetime64) -> date:
    return date.fromisoformat(str(value))


def _iso(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()
