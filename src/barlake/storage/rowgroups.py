"""Row groups: daily files are written in row groups that start where a symbol starts, and a
read of a few symbols opens only the row groups whose Parquet statistics can hold them.

A daily year file holds every symbol, so a backtest looping over symbols would otherwise
decode the whole year for each one. Each row group of a file written here holds whole symbols
(about ``GROUP_ROWS`` rows); any reader that pushes a ``symbol`` predicate down (DuckDB, polars,
pyarrow datasets) skips the others by the groups' min/max statistics, and ``Footers`` keeps
each file's parsed footer per file version so that ``read`` parses it once.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from barlake.domain import bars
from barlake.storage.filesystem import FileSystem, Sink, Version

#: Rows per row group of a daily file, about: a group ends at the first symbol starting
#: after this many rows (a year of one symbol is at most 366).
GROUP_ROWS = 2048
#: Footers kept per store (a few hundred bytes to a few tens of kilobytes each).
FOOTERS = 512


def write(frame: pl.DataFrame, table: pa.Table, sink: Sink, options: dict[str, Any]) -> None:
    """Write ``table`` (``frame`` as Arrow, sorted by symbol) to ``sink`` in row groups of
    whole symbols, ``options`` as ``pq.write_table`` takes them."""
    cuts = cuts_of(frame.get_column("symbol"))
    opts = {k: v for k, v in options.items() if k != "row_group_size"}
    with pq.ParquetWriter(sink, table.schema, **opts) as writer:
        for a, b in zip(cuts, [*cuts[1:], table.num_rows], strict=True):
            writer.write_table(table.slice(a, b - a), row_group_size=b - a)
        if not cuts:
            writer.write_table(table)


def cuts_of(symbol: pl.Series) -> list[int]:
    """Where the row groups of rows with this ``symbol`` column (grouped by symbol) start:
    the first symbol start in each stretch of ``GROUP_ROWS`` rows."""
    if symbol.is_empty():
        return []
    runs = symbol.rle_id().to_numpy()
    starts = np.flatnonzero(np.diff(runs, prepend=-1))
    bucket = starts // GROUP_ROWS
    return [int(a) for a in starts[np.flatnonzero(np.diff(bucket, prepend=-1))]]


#: The lake's bar columns as pyarrow reads them from a file barlake wrote (``bars.SCHEMA``).
_SCHEMA = pa.schema(
    [
        ("symbol", pa.string()),
        ("ts", pa.timestamp("us", "UTC")),
        *((c, pa.float64()) for c in (*bars.PRICES, "volume", "vwap")),
        ("trades", pa.int64()),
        ("source", pa.string()),
    ]
)


@dataclass(frozen=True)
class Footer:
    """One file's parsed footer: per row group, its symbols' and bar starts' (microseconds)
    least and greatest value, None where the statistics are missing."""

    metadata: pq.FileMetaData
    symbols: list[tuple[str, str] | None]
    ts: list[tuple[int, int] | None]  # None also where a bar start is missing

    def groups(self, names: Sequence[str], lo: int | None, hi: int | None) -> list[int]:
        """The row groups that may hold bars of ``names`` starting in [``lo``, ``hi``)."""
        out = []
        for g, (sym, ts) in enumerate(zip(self.symbols, self.ts, strict=True)):
            if sym is not None and not any(sym[0] <= n <= sym[1] for n in names):
                continue
            if ts is not None and lo is not None and hi is not None and (ts[1] < lo or ts[0] >= hi):
                continue
            out.append(g)
        return out

    def inside(self, names: Sequence[str], lo: int | None, hi: int | None) -> bool:
        """Whether every row of the file is a bar of one of ``names`` starting in [``lo``,
        ``hi``) (None: any): then no row needs filtering."""
        for sym, ts in zip(self.symbols, self.ts, strict=True):
            if sym is None or sym[0] != sym[1] or sym[0] not in names:
                return False
            if lo is not None and hi is not None and (ts is None or ts[0] < lo or ts[1] >= hi):
                return False
        return True


def parse(metadata: pq.FileMetaData) -> Footer | None:
    """The footer of a file with the lake's columns and types, else None (another tool's
    file: the general reader handles it)."""
    if not metadata.schema.to_arrow_schema().equals(_SCHEMA):
        return None
    sym_at, ts_at = _SCHEMA.get_field_index("symbol"), _SCHEMA.get_field_index("ts")
    symbols: list[tuple[str, str] | None] = []
    ts: list[tuple[int, int] | None] = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        s, t = group.column(sym_at).statistics, group.column(ts_at).statistics
        has = s is not None and s.has_min_max and s.null_count == 0
        symbols.append((str(s.min), str(s.max)) if has else None)
        timed = t is not None and t.has_min_max and t.null_count == 0
        ts.append((_micros(t.min), _micros(t.max)) if timed else None)
    return Footer(metadata, symbols, ts)


def _micros(value: datetime) -> int:
    return int(pa.scalar(value, pa.timestamp("us", "UTC")).value)


def no_bars() -> pl.DataFrame:
    """``bars.empty()``, cleared from a kept one: far cheaper than building one from the
    schema each time."""
    return _empty().clear()


@functools.cache
def _empty() -> pl.DataFrame:
    return bars.empty()


class Footers:
    """Parsed footers of the files of ``fs``, per path and version (least recently used go)."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self._cache: OrderedDict[tuple[str, Version], Footer | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, version: Version) -> Footer | None:
        """The footer of ``path`` at ``version`` (read now unless cached); None for a file that
        is not Parquet in the lake's schema. FileNotFoundError when it is gone."""
        key = (path, version)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            with self.fs.open(path) as fh:
                footer = parse(pq.read_metadata(fh))
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException):
            footer = None  # not Parquet: the general reader says so
        with self._lock:
            self._cache[key] = footer
            while len(self._cache) > FOOTERS:
                self._cache.popitem(last=False)
        return footer


def read(
    fs: FileSystem,
    footers: Footers,
    path: str,
    names: Sequence[str],
    bounds: tuple[int, int] | None,
    keep: pl.Expr,
) -> pl.DataFrame | None:
    """The bars of ``names`` in the data file ``path`` that start in ``bounds`` (microseconds,
    half-open; None: any), read from only the row groups that may hold them, in file order;
    ``keep`` is the same selection as an expression. None when this cannot answer (the file
    is not in the lake's schema, or it was replaced while read); FileNotFoundError when the
    file is gone."""
    before = fs.version(path)
    footer = footers.get(path, before)
    if footer is None:
        return None
    lo, hi = bounds if bounds is not None else (None, None)
    groups = footer.groups(names, lo, hi)
    if not groups:
        return no_bars()
    local = fs.local_path(path)
    if local is not None and len(groups) == len(footer.symbols):
        # The whole file (one symbol's month): polars reads it faster than pyarrow.
        frame = pl.read_parquet(local, hive_partitioning=False, parallel="none")
        if not footer.inside(names, lo, hi):
            frame = frame.filter(keep)
    else:
        if local is not None:
            table = pq.ParquetFile(local, metadata=footer.metadata).read_row_groups(
                groups, use_threads=False
            )
        else:
            with fs.open(path) as fh:
                parquet = pq.ParquetFile(fh, metadata=footer.metadata)
                table = parquet.read_row_groups(groups, use_threads=False)
        # Only the selected rows go to polars: the conversion costs more than the filter.
        mask = pc.is_in(table["symbol"], value_set=pa.array(list(names), pa.string()))
        if bounds is not None:
            ts = table["ts"]
            low = pc.greater_equal(ts, pa.scalar(bounds[0], ts.type))
            mask = pc.and_(mask, pc.and_(low, pc.less(ts, pa.scalar(bounds[1], ts.type))))
        frame = pl.DataFrame(pl.from_arrow(table.filter(mask), rechunk=False))
    # The footer describes the version seen first: a file replaced since may not match it.
    return frame if fs.version(path) == before else None
