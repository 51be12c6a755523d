"""Row groups: daily files are written in row groups that start where a symbol starts, and a
read of a few symbols opens only the row groups whose Parquet statistics can hold them.

A daily year file holds every symbol, so a backtest looping over symbols would otherwise
decode the whole year for each one. Each row group of a file written here holds whole symbols
(about ``GROUP_ROWS`` rows); any reader that pushes a ``symbol`` predicate down (DuckDB, polars,
pyarrow datasets) skips the others by the groups' min/max statistics, and ``Footers`` keeps
each file's parsed footer per file version so that ``read`` parses it once.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from barlake.domain import bars
from barlake.storage.filesystem import FileSystem, Sink, Version

#: Rows per row group of a daily file, about: a group ends at the first symbol starting
#: after this many rows, so a group holds one symbol's year (252 sessions) and a one-symbol
#: read decodes little more than that symbol.
GROUP_ROWS = 256
#: Row groups per file, at most about: a universe of thousands of symbols gets groups of
#: several symbols instead, so that the footer every full read parses stays under a megabyte.
MAX_GROUPS = 1024
#: Row groups from which a read decodes in pyarrow's threads rather than the caller's.
THREADED_GROUPS = 16
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
    the first symbol start in each stretch of ``GROUP_ROWS`` rows (more in a file of over
    ``MAX_GROUPS`` such stretches)."""
    if symbol.is_empty():
        return []
    runs = symbol.rle_id().to_numpy()
    starts = np.flatnonzero(np.diff(runs, prepend=-1))
    bucket = starts // max(GROUP_ROWS, -(-len(symbol) // MAX_GROUPS))
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
    sources: list[tuple[str, str] | None]

    def constants(self, groups: Sequence[int]) -> dict[str, str]:
        """The string columns that hold one value in every row of ``groups`` by the
        statistics (a per-symbol file's ``symbol``, a single provider's ``source``), with it:
        a read repeats it instead of decoding the column."""
        out = {}
        for column, ranges in (("symbol", self.symbols), ("source", self.sources)):
            values = {ranges[g] for g in groups}
            if len(values) == 1 and (only := values.pop()) is not None and only[0] == only[1]:
                out[column] = only[0]
        return out

    def groups(self, names: Sequence[str] | None, lo: int | None, hi: int | None) -> list[int]:
        """The row groups that may hold bars of ``names`` (None: any) starting in [``lo``,
        ``hi``)."""
        candidates: Iterable[int]
        if names is None:
            candidates = range(len(self.symbols))
        elif self.ordered:  # barlake's files: a binary search per name
            found: set[int] = set()
            for name in names:
                g = bisect.bisect_left(self.highs, name)
                while g < len(self.highs) and self.lows[g] <= name:
                    found.add(g)
                    g += 1
            candidates = sorted(found)
        else:
            candidates = (
                g
                for g, sym in enumerate(self.symbols)
                if sym is None or any(sym[0] <= n <= sym[1] for n in names)
            )
        out = []
        for g in candidates:
            ts = self.ts[g]
            if ts is not None and lo is not None and hi is not None and (ts[1] < lo or ts[0] >= hi):
                continue
            out.append(g)
        return out

    @functools.cached_property
    def ordered(self) -> bool:
        """Whether every group has symbol statistics and the groups' symbol ranges ascend
        (each starts at or after the previous one's end), as barlake writes them."""
        ranges = self.symbols
        if any(r is None for r in ranges):
            return False
        return all(a[1] <= b[0] for a, b in itertools.pairwise(ranges))  # type: ignore[index]

    @functools.cached_property
    def lows(self) -> list[str]:
        return [r[0] for r in self.symbols if r is not None]

    @functools.cached_property
    def highs(self) -> list[str]:
        return [r[1] for r in self.symbols if r is not None]

    def named(self, groups: Sequence[int], names: Sequence[str] | None) -> bool:
        """Whether every row of ``groups`` is a bar of one of ``names`` (None: any symbol):
        then no row needs filtering by symbol."""
        if names is None:
            return True
        for g in groups:
            sym = self.symbols[g]
            if sym is None or sym[0] != sym[1] or sym[0] not in names:
                return False
        return True

    def within(self, groups: Sequence[int], lo: int, hi: int) -> bool:
        """Whether every row of ``groups`` is a bar starting in [``lo``, ``hi``): then no row
        needs filtering by time."""
        for g in groups:
            ts = self.ts[g]
            if ts is None or ts[0] < lo or ts[1] >= hi:
                return False
        return True


def parse(metadata: pq.FileMetaData) -> Footer | None:
    """The footer of a file with the lake's columns and types, else None (another tool's
    file: the general reader handles it)."""
    if not metadata.schema.to_arrow_schema().equals(_SCHEMA):
        return None
    sym_at, ts_at = _SCHEMA.get_field_index("symbol"), _SCHEMA.get_field_index("ts")
    source_at = _SCHEMA.get_field_index("source")
    symbols: list[tuple[str, str] | None] = []
    ts: list[tuple[int, int] | None] = []
    sources: list[tuple[str, str] | None] = []
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        s, t = group.column(sym_at).statistics, group.column(ts_at).statistics
        symbols.append(_text_range(s))
        timed = t is not None and t.has_min_max and t.null_count == 0
        ts.append((_micros(t.min), _micros(t.max)) if timed else None)
        sources.append(_text_range(group.column(source_at).statistics))
    return Footer(metadata, symbols, ts, sources)


def _text_range(stats: pq.Statistics | None) -> tuple[str, str] | None:
    """A string column's least and greatest value in a group without nulls, else None."""
    if stats is None or not stats.has_min_max or stats.null_count != 0:
        return None
    return str(stats.min), str(stats.max)


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
    names: Sequence[str] | None,
    bounds: tuple[int, int] | None,
) -> pl.DataFrame | None:
    """The bars of ``names`` (None: every symbol's) in the data file ``path`` that start in
    ``bounds`` (microseconds, half-open; None: any), read from only the row groups that may
    hold them, in file order.
    None when this cannot answer (the file is not in the lake's schema, or it was replaced
    while read); FileNotFoundError when the file is gone."""
    before = fs.version(path)
    footer = footers.get(path, before)
    if footer is None:
        return None
    lo, hi = bounds if bounds is not None else (None, None)
    groups = footer.groups(names, lo, hi)
    if not groups:
        return no_bars()
    named = footer.named(groups, names)
    constants = footer.constants(groups)
    if "symbol" in constants and not named:
        return no_bars()  # one symbol, not asked for
    local = fs.local_path(path)
    try:
        with pa.OSFile(local) if local is not None else fs.open(path) as fh:
            # Read as views, strings convert to polars without a copy; one read per column
            # chunk beats pre-buffering them for the one or few groups of a read.
            parquet = pq.ParquetFile(
                fh, metadata=footer.metadata, pre_buffer=False, binary_type=pa.binary_view()
            )
            columns = [c for c in _SCHEMA.names if c not in constants]
            # Threads only for many groups (a cross-section): for a few they cost more.
            many = len(groups) > THREADED_GROUPS
            table = parquet.read_row_groups(groups, columns=columns, use_threads=many)
    except (OSError, pa.ArrowException):
        if fs.version(path) != before:
            return None  # replaced while read: the footer no longer describes it
        raise
    # Only the selected rows go to polars: the conversion costs more than the filter.
    mask = None
    if not named:
        symbol = table["symbol"]  # views: ``equal`` takes them, ``is_in`` does not
        for name in names or ():
            hit = pc.equal(symbol, pa.scalar(name, symbol.type))
            mask = hit if mask is None else pc.or_(mask, hit)
    if lo is not None and hi is not None and not footer.within(groups, lo, hi):
        ts = table["ts"]
        low = pc.greater_equal(ts, pa.scalar(lo, ts.type))
        inside = pc.and_(low, pc.less(ts, pa.scalar(hi, ts.type)))
        mask = inside if mask is None else pc.and_(mask, inside)
    run = None if mask is None else _run(mask)
    if run is not None:  # one run of rows, as in a file sorted by (symbol, ts): a slice
        table = table.slice(*run)
    frame = _to_polars(table, constants)
    if mask is not None and run is None:
        frame = frame.filter(pl.Series(mask))
    # The footer describes the version seen first: a file replaced since may not match it.
    return frame if fs.version(path) == before else None


def _to_polars(table: pa.Table, constants: dict[str, str]) -> pl.DataFrame:
    """``table`` (the lake's columns less ``constants``) as a frame in the lake's schema, the
    ``constants`` repeated. Bar starts cross as integers: polars converts an Arrow timestamp
    column element by element, an integer one without a copy, and the cast back is free."""
    n = table.num_rows
    ts = table["ts"].cast(pa.int64())
    columns = {
        c: ts
        if c == "ts"
        else pa.repeat(pa.scalar(constants[c], pa.string_view()), n)
        if c in constants
        else table[c]
        for c in _SCHEMA.names
    }
    frame = cast(pl.DataFrame, pl.from_arrow(pa.table(columns), rechunk=False))
    at = _SCHEMA.get_field_index("ts")
    frame.replace_column(at, frame.get_column("ts").cast(pl.Datetime("us", "UTC")))
    return frame


def _run(mask: pa.ChunkedArray) -> tuple[int, int] | None:
    """Where the rows ``mask`` selects start and how many there are, when they are one run;
    else None."""
    hits = pc.sum(mask).as_py() or 0
    if not hits:
        return 0, 0
    first = pc.index(mask, True).as_py()
    return (first, hits) if pc.all(mask.slice(first, hits)).as_py() else None
