"""Bars on disk: hive-partitioned Parquet files, merged and replaced atomically.

The partition of a bar follows ``intervals.SPECS``::

    bars/interval=1day/year=2024/data.parquet                      every symbol of one year
    bars/interval=1hour/symbol=AAPL/year=2024/data.parquet
    bars/interval=1min/symbol=BRK%2FB/month=2024-06/data.parquet   (5min, 15min, 30min alike)

Rows in a file are sorted by (symbol, ts) and unique on it; a write merges new rows into the
existing file, new rows replacing old ones with the same key.

Every file operation goes through the store's ``FileSystem``. Queries over many files hand
DuckDB or polars the files' local paths when the file system has them, and otherwise read the
files through it first.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import sleep
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from barlake.calendars.calendar import Days
from barlake.domain import bars, symbols
from barlake.domain.intervals import INTERVALS, Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import StorageError
from barlake.storage import dayindex, rowgroups
from barlake.storage.conformance import Conformance
from barlake.storage.dayindex import DayIndex
from barlake.storage.filesystem import (
    ANY,
    FileSystem,
    LocalFileSystem,
    Sink,
    Staged,
    Version,
    WriteConflict,
)

FILE_NAME = "data.parquet"
WRITE_THREADS = 4
#: Reads and merges of a file before a writer gives up on it (other writers kept replacing it).
MERGE_ATTEMPTS = 8
# Dictionary encoding only pays on the repetitive string columns; on prices it wastes time.
# No stored Arrow schema: readers then take the Parquet types, so ``symbol`` reads as a plain
# string, which pyarrow's hive datasets can merge with the ``symbol=`` partition key (polars
# would have recorded large strings), and no cast is needed on the way out.
PARQUET_OPTIONS: dict[str, Any] = {
    # LZ4 (Parquet's LZ4_RAW): with the encodings below as small as Zstandard on bars, and
    # it decodes in about half the time, which is most of a one-symbol read.
    "compression": "lz4",
    "use_dictionary": ["symbol", "source"],
    # Prices split into byte streams compress far better (their high bytes repeat); bar
    # starts and trade counts step by small deltas. Any Parquet reader decodes both.
    "column_encoding": {
        **dict.fromkeys(("open", "high", "low", "close", "volume", "vwap"), "BYTE_STREAM_SPLIT"),
        "ts": "DELTA_BINARY_PACKED",
        "trades": "DELTA_BINARY_PACKED",
    },
    "store_schema": False,
    # Row groups small enough that a query for a few symbols skips most of a year file.
    "row_group_size": 64_000,
}


@dataclass(frozen=True)
class _Staged:
    """A file merged and staged, not yet in place; ``rows`` new rows went into it."""

    file: Staged
    rows: int


@dataclass(frozen=True, order=True)
class Partition:
    """One Parquet file of the lake: an interval, maybe a symbol, and a period (year or month)."""

    interval: Interval
    symbol: str | None
    period: str

    def relpath(self) -> Path:
        s = spec(self.interval)
        parts = [f"interval={self.interval}"]
        if self.symbol is not None:
            parts.append(f"symbol={symbols.encode(self.symbol)}")
        key = "month" if s.partitioning == "symbol_month" else "year"
        parts += [f"{key}={self.period}", FILE_NAME]
        return Path(*parts)


#: One file's share of a write: its partition, its new rows (and them as Arrow when known),
#: and the stored rows they replace.
_Job = tuple[Partition, pl.DataFrame, pa.Table | None, pl.DataFrame | None]


def periods(interval: Interval, window: DateRange) -> list[str]:
    """The period keys (``2024`` or ``2024-06``) that hold bars dated inside ``window``."""
    if not window:
        return []
    last = window.last
    if spec(interval).partitioning == "symbol_month":
        out, (y, m) = [], (window.start.year, window.start.month)
        while (y, m) <= (last.year, last.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out
    return [str(y) for y in range(window.start.year, last.year + 1)]


def _period_expr(interval: Interval) -> pl.Expr:
    """Each bar's period as a number (2024 or 202406): far cheaper than formatting strings."""
    if spec(interval).partitioning == "symbol_month":
        return pl.col("ts").dt.year().cast(pl.Int32) * 100 + pl.col("ts").dt.month()
    return pl.col("ts").dt.year().cast(pl.Int32)


def _period_name(interval: Interval, key: int) -> str:
    if spec(interval).partitioning == "symbol_month":
        return f"{key // 100:04d}-{key % 100:02d}"
    return str(key)


def latest(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by (symbol, ts) with one row per key: the last one given."""
    if frame.height < 2:
        return frame
    sym, ts = pl.col("symbol"), pl.col("ts")
    ascending = (sym > sym.shift(1)) | ((sym == sym.shift(1)) & (ts > ts.shift(1)))
    if frame.select(ascending.slice(1).all()).item():
        return frame  # already sorted and unique: the usual case for provider pages
    ordered = frame.sort(bars.KEY, maintain_order=True)
    same_as_next = (pl.col("symbol") == pl.col("symbol").shift(-1)) & (
        pl.col("ts") == pl.col("ts").shift(-1)
    )
    return ordered.filter(~same_as_next.fill_null(value=False))


@dataclass(frozen=True)
class Holding:
    """What the lake holds at one interval: its files and their bytes, bars, symbols, and the
    first and last bar's ``ts`` (None when the files have no rows)."""

    interval: Interval
    files: int
    bytes: int
    bars: int
    symbols: int
    first: datetime | None
    last: datetime | None


class Store:
    """Reads and writes the bars of one lake.

    With ``day_index`` the store keeps ``dayindex/`` beside ``bars/`` up to date on every write
    and answers ``session_counts`` and ``session_days`` from it (see ``barlake.storage.dayindex``);
    without it (a bare folder of bars) it writes nothing but the Parquet files. ``fs`` holds the
    files (local disk by default).
    """

    def __init__(
        self, root: Path, *, fs: FileSystem | None = None, day_index: bool = False
    ) -> None:
        self.root = Path(root) / "bars"
        self.fs: FileSystem = fs or LocalFileSystem()
        self.index = DayIndex(Path(root) / "dayindex", self.root, fs=self.fs) if day_index else None
        self.conformance = Conformance(self.fs)
        self.footers = rowgroups.Footers(self.fs)

    def path(self, partition: Partition) -> Path:
        return self.root / partition.relpath()

    def _runs(self, interval: Interval, frame: pl.DataFrame) -> list[tuple[Partition, int, int]]:
        """The files of ``frame`` (sorted by symbol and ts) as runs of rows: (partition, start,
        length). Per-symbol files are contiguous already; daily year files are after a sort."""
        if frame.is_empty():
            return []
        period = frame.select(_period_expr(interval)).to_series()
        if spec(interval).partitioning == "year":
            out = []
            for key in period.unique().sort().to_list():
                rows = (period == key).arg_true()
                first, count = int(rows[0]), len(rows)
                # The year's rows are one run unless the frame spans years; a negative
                # length tells the caller to select them instead.
                contiguous = int(rows[-1]) - first + 1 == count
                out.append(
                    (Partition(interval, None, str(key)), first, count if contiguous else -count)
                )
            return out
        sym = frame["symbol"]
        change = (sym != sym.shift(1)) | (period != period.shift(1))
        starts = change.fill_null(value=True).arg_true().to_list()
        return [
            (Partition(interval, str(sym[a]), _period_name(interval, period[a])), a, b - a)
            for a, b in zip(starts, [*starts[1:], frame.height], strict=True)
        ]

    def write(
        self, interval: Interval, frame: pl.DataFrame, *, replace: pl.DataFrame | None = None
    ) -> int:
        """Merge ``frame`` into the lake; returns how many rows it carried after deduplication.

        ``replace`` (symbol, lo, hi: UTC bar starts, half-open; other columns are ignored)
        names stored bars that the new ones replace: those rows go, and so do the rows
        without a symbol or ts of each file it touches. Each partition file is replaced
        atomically; files are written in parallel threads.
        """
        frame = latest(bars.conform(frame))
        for s in frame.get_column("symbol").unique().to_list():
            symbols.check_symbol(s)
        # One conversion to Arrow for the whole batch; files take zero-copy slices of it.
        table = frame.to_arrow()
        period = frame.select(_period_expr(interval)).to_series()
        jobs: list[_Job] = []
        for partition, start, length in self._runs(interval, frame):
            if length < 0:  # a daily year that is not one run: select its rows
                mask = period == int(partition.period)
                jobs.append((partition, frame.filter(mask), None, replace))
            else:
                part = frame.slice(start, length)
                jobs.append((partition, part, table.slice(start, length), replace))
        # A file that another writer replaced between our read and our commit (object
        # storage, where writers on other machines share files) is read and merged again.
        written, attempts = 0, 1
        while True:
            staged = self._stage_jobs(jobs)
            try:
                return written + self._commit(staged)
            except WriteConflict as exc:
                if attempts == MERGE_ATTEMPTS:
                    raise
                lost = set(exc.paths)
                written += sum(s.rows for s in staged if s.file.path not in lost)
                jobs = [j for j, s in zip(jobs, staged, strict=True) if s.file.path in lost]
                sleep(random.uniform(0, 0.02 * attempts))  # let the other writer finish
                attempts += 1

    def _stage_jobs(self, jobs: list[_Job]) -> list[_Staged]:
        """Each job's file merged and staged, in the order of ``jobs``."""
        if len(jobs) == 1:
            return [self._stage(*jobs[0])]
        # Every file is merged and written beside its target in parallel, then all are made
        # durable and moved into place together (see ``LocalFileSystem.commit``).
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            futures = [pool.submit(self._stage, *job) for job in jobs]
            wait(futures)
            staged = [f.result() for f in futures if f.exception() is None]
            failed = next((f.exception() for f in futures if f.exception() is not None), None)
            if failed is not None:
                self.fs.discard([s.file for s in staged])
                raise failed
            return staged

    def _commit(self, staged: list[_Staged]) -> int:
        """Move ``staged`` files into place durably; returns their new rows."""
        self.fs.commit([s.file for s in staged])
        return sum(s.rows for s in staged)

    def _stage(
        self,
        partition: Partition,
        new: pl.DataFrame,
        table: pa.Table | None,
        replace: pl.DataFrame | None = None,
    ) -> _Staged:
        """``new`` merged into its file's content (less what it ``replace``-s), staged."""
        path = self.path(partition)
        # The version before the read: if the file changes in between, the commit refuses.
        base = self.version(path)
        old = self.read_file(path)
        if old is not None and replace is not None:
            old = _without(old, replace)
        merged = new
        if old is not None and old.height:
            merged = latest(pl.concat([old, new], how="vertical"))
            table = None
        return self._stage_file(path, partition.interval, merged, table, new.height, base)

    def version(self, path: Path) -> Version | None:
        """The version of the file ``path`` (None when there is none): read it before the file,
        to hand ``replace_file`` as the version the new content replaces."""
        try:
            return self.fs.version(path)
        except FileNotFoundError:
            return None

    def _stage_file(
        self,
        path: Path,
        interval: Interval,
        frame: pl.DataFrame,
        table: pa.Table | None,
        rows: int,
        base: Version | None = ANY,
    ) -> _Staged:
        """``frame`` (``table`` is it as Arrow when known) as Parquet staged for ``path``, and
        its day-index entry, stamped with the version the staged file has once in place: saved
        before the move, in the writer's thread, it is stale only until the move, and rebuilt
        if the move never happens."""
        content = frame.to_arrow() if table is None else table
        by_symbol = spec(interval).partitioning == "year"

        def write(sink: Sink) -> None:
            if by_symbol:  # many symbols per file: row groups of whole symbols
                rowgroups.write(frame, content, sink, PARQUET_OPTIONS)
            else:
                pq.write_table(content, sink, **PARQUET_OPTIONS)

        staged = self.fs.stage(path, write, base=base)
        if self.index is not None:
            self.index.record(path, staged.version, interval, frame)
        return _Staged(staged, rows)

    def replace_file(
        self, path: Path, interval: Interval, frame: pl.DataFrame, *, base: Version | None = ANY
    ) -> None:
        """Replace the data file ``path`` (of ``interval``) with ``frame`` atomically; with
        ``base``, only that version of it (``WriteConflict`` when another writer replaced it
        meanwhile, whose rows are then kept)."""
        self._commit([self._stage_file(path, interval, frame, None, frame.height, base)])

    def remove_file(self, path: Path, *, base: Version | None = ANY) -> None:
        """Delete the data file ``path`` (durably), the folders it leaves empty, and its index
        entry; with ``base``, only that version of it (as ``replace_file``)."""
        self.fs.remove(path, up_to=self.root, base=ANY if base is None else base)
        if self.index is not None:
            self.index.drop(path)

    def read_file(self, path: Path) -> pl.DataFrame | None:
        """The bars of one file, or None when it does not exist."""
        self.conformance.check([path])
        try:
            with self.fs.open(path) as fh:
                return bars.conform(pl.read_parquet(fh, hive_partitioning=False))
        except FileNotFoundError:
            return None
        except (OSError, pl.exceptions.ComputeError) as exc:
            msg = f"cannot read {path}: {exc}; move the file aside and fill again"
            raise StorageError(msg) from exc

    def files(
        self, interval: Interval, symbols_: Iterable[str] | None, window: DateRange | None
    ) -> list[Path]:
        """Existing files that may hold bars of ``symbols_`` (all when None) inside ``window``."""
        return [Path(p) for p in self._paths(interval, symbols_, window, checked=True)]

    def holdings(self) -> list[Holding]:
        """What each interval with files holds (in ``INTERVALS`` order), read from the files'
        Parquet footers: no bar is read, except the daily files' ``symbol`` column."""
        return [h for h in (self.holding(i) for i in INTERVALS) if h.files]

    def holding(self, interval: Interval) -> Holding:
        """What the lake holds at ``interval`` (zeros when it has no file of it)."""
        files = self._paths(interval, None, None, checked=True)
        size = bars_ = 0
        names: set[str] = set()
        firsts: list[datetime] = []
        lasts: list[datetime] = []
        for path in files:
            with self.fs.open(path) as fh:
                size += fh.seek(0, os.SEEK_END)
                fh.seek(0)
                parquet = pq.ParquetFile(fh)
                meta = parquet.metadata
                bars_ += meta.num_rows
                found = _ts_range(meta)
                if found is None and meta.num_rows:  # no statistics: read the column
                    ts = parquet.read(columns=["ts"]).column("ts")
                    found = (pc.min(ts).as_py(), pc.max(ts).as_py())
                if found is not None:
                    firsts.append(found[0])
                    lasts.append(found[1])
                symbol = _file_symbol(path)
                if symbol is not None:
                    names.add(symbol)
                elif meta.num_rows:
                    column = parquet.read(columns=["symbol"]).column("symbol")
                    names.update(s for s in pc.unique(column).to_pylist() if s is not None)
        return Holding(
            interval,
            len(files),
            size,
            bars_,
            len(names),
            min(firsts, default=None),
            max(lasts, default=None),
        )

    def _paths(
        self,
        interval: Interval,
        symbols_: Iterable[str] | None,
        window: DateRange | None,
        *,
        checked: bool,
        conform: bool = True,
    ) -> list[str]:
        """``files`` as strings; unless ``checked``, a symbol's files are what the listing of
        its folder names, not each looked up (the day index looks them up anyway); unless
        ``conform``, not checked to be bar files (the caller checks their schema itself)."""
        base = self.root / f"interval={interval}"
        # Intraday bars of one session can carry the previous or next UTC date; daily ones
        # are stamped with their session date.
        padded = window if window is None or not spec(interval).intraday else _pad(window)
        keys = None if padded is None else set(periods(interval, padded))
        by_symbol = spec(interval).partitioning != "year"
        if by_symbol and symbols_ is not None and len(wanted := list(symbols_)) <= _FEW:
            # A few symbols: their folders' listings alone (a missing folder holds no bars).
            few: list[str] = []
            for sym in wanted:
                folder = os.path.join(base, f"symbol={symbols.encode(sym)}")
                few += self._period_files(folder, keys, checked=checked)
            if conform:
                self.conformance.check(few)
            return sorted(few)
        if by_symbol and symbols_ is not None:
            # One listing of the interval's folder beats a stat per wanted symbol, and a plain
            # listing of each symbol's folder beats a glob there (a gap query lists hundreds).
            present = set(self.fs.listdir(base))
            out: list[str] = []
            for name in (f"symbol={symbols.encode(s)}" for s in symbols_):
                if name in present:
                    out += self._period_files(os.path.join(base, name), keys, checked=checked)
            if conform:
                self.conformance.check(out)
            return sorted(out)
        if not by_symbol and keys is not None:  # the years' folders: one listing
            years = sorted(self._period_files(str(base), keys, checked=checked))
            if conform:
                self.conformance.check(years)
            return years
        pattern = "*/*/" + FILE_NAME if by_symbol else "*/" + FILE_NAME
        found = self.fs.glob(base, pattern)
        chosen = sorted(p for p in found if keys is None or _period_of(p) in keys)
        if conform:
            self.conformance.check(chosen)
        return chosen

    def _period_files(self, folder: str, keys: set[str] | None, *, checked: bool) -> list[str]:
        """The data files in the period folders (``month=2024-06``) of ``folder`` named in
        ``keys`` (all when None); only those that exist when ``checked``."""
        out = []
        for period in self.fs.listdir(folder):
            if keys is not None and period.partition("=")[2] not in keys:
                continue
            path = os.path.join(folder, period, FILE_NAME)
            if not checked or self.fs.exists(path):
                out.append(path)
        return out

    def _indexed(self, interval: Interval, day_shift: timedelta) -> bool:
        """Whether the day index answers for ``interval`` under ``day_shift``."""
        shift_us = day_shift // timedelta(microseconds=1)
        return self.index is not None and dayindex.can_answer(interval, shift_us)

    def scan(
        self,
        interval: Interval,
        symbols_: list[str] | None = None,
        window: DateRange | None = None,
        day_shift: timedelta = timedelta(0),
        *,
        file_column: str | None = None,
    ) -> pl.LazyFrame:
        """The stored bars of ``symbols_`` whose session date is in ``window`` (all when None);
        with ``file_column``, a column of that name holds each bar's file (as ``file_stats``
        takes it)."""
        files = self._paths(interval, symbols_, window, checked=True)
        if not files:
            lf = bars.empty().lazy()
            return lf if file_column is None else lf.with_columns(pl.lit("").alias(file_column))
        local = self._local(files)
        if local is not None:
            lf = pl.scan_parquet(local, hive_partitioning=False, include_file_paths=file_column)
        elif file_column is None:
            lf = pl.DataFrame(self._read_table(files)).lazy()
        else:
            named = [
                pl.DataFrame(self._read_table([f])).with_columns(pl.lit(str(f)).alias(file_column))
                for f in files
            ]
            lf = pl.concat(named, how="diagonal_relaxed").lazy()
        if symbols_ is not None:
            lf = lf.filter(pl.col("symbol").is_in(symbols_))
        if window is not None:
            lf = lf.filter(_in_window(interval, window, day_shift))
        return lf

    def read_symbols(
        self,
        interval: Interval,
        symbols_: list[str] | None,
        window: DateRange | None = None,
        day_shift: timedelta = timedelta(0),
    ) -> pl.DataFrame | None:
        """``scan(interval, symbols_, window, day_shift)`` collected and sorted by (symbol, ts),
        read from only the row groups that may hold ``symbols_`` (None: every symbol's; in
        the calling thread, one file after another) with pyarrow (``storage.rowgroups``);
        None when a file is not in the lake's schema or changed while read (then ``scan``
        answers)."""
        bounds = None
        if window is not None:
            lo, hi = _ts_bounds(interval, window, day_shift)
            bounds = ((lo - _EPOCH) // _US, (hi - _EPOCH) // _US)
        frames = []
        # Files in the lake's exact schema conform; any other goes to ``scan``, which checks.
        # Unchecked: a listed folder without its file (or a file gone since) is skipped below.
        for path in self._paths(interval, symbols_, window, checked=False, conform=False):
            try:
                frame = rowgroups.read(self.fs, self.footers, path, symbols_, bounds)
            except FileNotFoundError:
                continue  # removed (pruned) since listed: it holds no bars any more
            if frame is None:
                return None
            if frame.height:
                frames.append(frame)
        if not frames:
            return rowgroups.no_bars()
        if len(frames) == 1 and symbols_ is not None and len(symbols_) == 1:
            ts = frames[0].get_column("ts")
            if not ts.null_count() and ts.is_sorted():  # the usual file, sorted by (symbol, ts)
                return frames[0]
        return pl.concat(frames).sort(bars.KEY)

    def keyless(
        self, interval: Interval, symbols_: list[str] | None, window: DateRange | None
    ) -> pl.DataFrame:
        """Rows without a symbol or a ts in the files that may hold ``symbols_`` (all when
        None) inside ``window``, which no scan returns: per file (its path inside the lake),
        the symbol they belong to (their own, else their per-symbol file's, else null) and
        how many there are."""
        empty = pl.DataFrame(schema={"file": pl.String, "symbol": pl.String, "rows": pl.UInt32})
        files = self._paths(interval, symbols_, window, checked=True)
        if not files:
            return empty
        local = self._local(files)
        if local is not None:
            lf = pl.scan_parquet(local, hive_partitioning=False, include_file_paths="file")
        else:
            lf = pl.concat(
                pl.DataFrame(self._read_table([f])).lazy().with_columns(file=pl.lit(f))
                for f in files
            )
        keyless = pl.col("symbol").is_null() | pl.col("ts").is_null()
        if symbols_ is not None:
            keyless &= pl.col("symbol").is_null() | pl.col("symbol").is_in(symbols_)
        found = lf.filter(keyless).select("file", "symbol").collect()
        if found.is_empty():
            return empty
        inside = {f: os.path.relpath(f, self.root.parent) for f in (local or files)}
        owner = {f: _file_symbol(f) for f in inside}
        return (
            found.with_columns(
                pl.col("symbol").fill_null(pl.col("file").replace_strict(owner, default=None)),
                pl.col("file").replace_strict(inside),
            )
            .group_by("file", "symbol")
            .agg(pl.len().alias("rows"))
            .sort("file", "symbol", nulls_last=True)
        )

    def drop_keyless(
        self, interval: Interval, symbols_: list[str] | None, window: DateRange | None = None
    ) -> int:
        """Rewrite the files ``keyless`` names without their rows lacking a symbol or ts
        (no bar of any session: no reader can place them); returns how many rows went."""
        found = self.keyless(interval, symbols_, window)
        for name in found.get_column("file").unique().sort().to_list():
            path = self.root.parent / name
            base = self.version(path)
            frame = self.read_file(path)
            if frame is not None:
                kept = frame.filter(pl.col("symbol").is_not_null() & pl.col("ts").is_not_null())
                self.replace_file(path, interval, kept, base=base)
        return int(found.get_column("rows").sum())

    def read(
        self,
        interval: Interval,
        symbols_: list[str] | None = None,
        window: DateRange | None = None,
        day_shift: timedelta = timedelta(0),
    ) -> pl.DataFrame:
        """The stored bars, sorted by (symbol, ts)."""
        return self.scan(interval, symbols_, window, day_shift).collect().sort(bars.KEY)

    def session_days(
        self,
        interval: Interval,
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta = timedelta(0),
    ) -> pa.Table:
        """Distinct (symbol, day) pairs with at least one bar, ``day`` being the session date.

        ``day_shift`` moves intraday UTC starts onto their exchange's session date. The query
        reads only the files of the symbols and periods concerned.
        """
        found = self.days_by_symbol(interval, symbols_, window, day_shift)
        days = np.concatenate([np.empty(0, "datetime64[D]"), *found.values()])
        symbol = pl.Series("symbol", list(found), dtype=pl.String)
        symbol = symbol.gather(np.repeat(np.arange(len(found)), [len(d) for d in found.values()]))
        return pl.DataFrame([symbol, pl.Series("day", days, dtype=pl.Date)]).to_arrow()

    def days_by_symbol(
        self,
        interval: Interval,
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta = timedelta(0),
    ) -> dict[str, Days]:
        """``session_days`` as each symbol's sorted dates; symbols without bars are absent."""
        indexed = self._indexed(interval, day_shift)
        files = self._paths(interval, symbols_, window, checked=not indexed)
        if indexed:
            names, occupied = self._occupancy(interval, files, symbols_, window, day_shift)
            first = np.datetime64(window.start, "D")
            return {
                names[i]: first + np.flatnonzero(occupied[i])
                for i in np.flatnonzero(occupied.any(axis=1))
            }
        found = self._query_days(interval, files, symbols_, window, day_shift)
        frame = pl.DataFrame(pl.from_arrow(found)).sort("symbol", "day")
        if frame.is_empty():
            return {}
        syms = frame["symbol"].to_numpy()
        days = frame["day"].to_numpy().astype("datetime64[D]")
        cuts = np.flatnonzero(syms[1:] != syms[:-1]) + 1
        starts = np.concatenate(([0], cuts))
        return {str(syms[a]): d for a, d in zip(starts, np.split(days, cuts), strict=True)}

    def _query_days(
        self,
        interval: Interval,
        files: list[str],
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta,
    ) -> pa.Table:
        """``session_days`` by a query over the Parquet ``files``."""
        if not files:
            # From polars: building arrow arrays from Python values makes pyarrow import pandas,
            # which costs most of a second.
            return pl.DataFrame(schema={"symbol": pl.String, "day": pl.Date}).to_arrow()
        # Filters on the stored columns, beside the scan: DuckDB does not push them below the
        # DISTINCT by itself, and a range on ``ts`` can skip row groups.
        where = f"ts >= ? AND ts < ? AND {_PRICED_SQL}"
        bounds: list[object] = [*_ts_bounds(interval, window, day_shift)]
        if symbols_ is not None:
            where += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
            bounds.append(list(symbols_))
        with _connect() as con, self._source(con, files) as (source, params):
            sql = f"""
                SELECT DISTINCT symbol,
                    CAST(DATE '1970-01-01' + CAST({_day_sql(interval, day_shift)} AS INTEGER)
                        AS DATE) AS day
                FROM {source}
                WHERE {where}
            """
            return con.sql(sql, params=params + bounds).to_arrow_table()

    @contextlib.contextmanager
    def _source(
        self, con: duckdb.DuckDBPyConnection, files: Sequence[str | Path]
    ) -> Iterator[tuple[str, list[object]]]:
        """The Parquet ``files`` as a DuckDB table expression and the parameters it takes:
        DuckDB reads local files itself; others are read through the file system first."""
        local = self._local(files)
        if local is not None:
            yield "read_parquet(?, hive_partitioning = false)", [local]
            return
        name = "lake_files"
        con.register(name, self._read_table(files))
        try:
            yield name, []
        finally:
            con.unregister(name)

    def file_stats(self, files: Iterable[str]) -> dict[str, tuple[int, int]]:
        """Each file's rows and bytes on disk, from its Parquet footer (no data is read)."""
        out: dict[str, tuple[int, int]] = {}
        for f in files:
            with self.fs.open(f) as fh:
                rows = pq.read_metadata(fh).num_rows
                out[f] = (rows, fh.seek(0, os.SEEK_END))
        return out

    def _local(self, files: Sequence[str | Path]) -> list[str] | None:
        """The local paths of ``files``, or None unless every one has one."""
        out = []
        for f in files:
            local = self.fs.local_path(f)
            if local is None:
                return None
            out.append(local)
        return out

    def _read_table(self, files: Sequence[str | Path]) -> pa.Table:
        """The rows of ``files``, read through the file system, as one Arrow table."""
        tables = []
        for f in files:
            with self.fs.open(f) as fh:
                tables.append(pq.read_table(fh))
        return pa.concat_tables(tables, promote_options="default")

    def session_counts(
        self,
        interval: Interval,
        windows: pl.DataFrame,
        sessions: Sequence[date] | Days,
        day_shift: timedelta = timedelta(0),
    ) -> dict[str, int]:
        """For each symbol of ``windows`` (symbol, start, end), how many of ``sessions`` inside
        its own range have at least one bar. Symbols with none are absent."""
        if windows.is_empty():
            return {}
        window = DateRange(windows["start"].min(), windows["end"].max())  # type: ignore[arg-type]
        by_symbol = spec(interval).partitioning != "year"
        names = windows["symbol"].to_list()
        indexed = self._indexed(interval, day_shift)
        files = self._paths(interval, names if by_symbol else None, window, checked=not indexed)
        if not files:
            return {}
        days = np.unique(np.asarray(sessions, dtype="datetime64[D]").astype(np.int64))
        lo, hi = _day_number(window.start), _day_number(window.end)
        days = days[(days >= lo) & (days < hi)]
        day_numbers = windows.select(
            "symbol", *(pl.col(c).cast(pl.Date).cast(pl.Int32) for c in ("start", "end"))
        )
        if indexed:
            return self._indexed_counts(interval, files, day_numbers, days - lo, window, day_shift)
        bounds = {sym: (a, b) for sym, a, b in day_numbers.iter_rows()}
        # Joining every bar to its symbol's window costs more than the rest of the query, and
        # most symbols share one window or keep their bars inside their own. So count per symbol
        # over the whole span first, with the first and last day counted; only symbols with
        # bars outside their own window are counted again, exactly, with the join.
        # Distinct days for daily bars too: a key stored twice (by another tool) is one session.
        counter = "count(DISTINCT b.day)"
        few = not by_symbol and len(bounds) <= _FILTER_SYMBOLS_UP_TO
        where = " AND symbol IN (SELECT symbol FROM windows)" if few else ""
        out: dict[str, int] = {}
        mixed: list[str] = []
        with _connect() as con, self._source(con, files) as (source, params):
            span_sql = f"""
                SELECT b.symbol, {counter} AS n, min(b.day) AS first, max(b.day) AS last FROM (
                    SELECT symbol, {_day_sql(interval, day_shift)} AS day
                    FROM {source}
                    WHERE ts >= ? AND ts < ? AND {_PRICED_SQL}{where}
                ) b
                JOIN session_days s ON b.day = s.day
                GROUP BY b.symbol
            """
            exact_sql = f"""
                SELECT b.symbol, {counter} AS n FROM (
                    SELECT symbol, {_day_sql(interval, day_shift)} AS day
                    FROM {source}
                    WHERE ts >= ? AND ts < ? AND {_PRICED_SQL}
                        AND symbol IN (SELECT symbol FROM windows)
                ) b
                JOIN session_days s ON b.day = s.day
                JOIN windows w ON b.symbol = w.symbol AND b.day >= w.start AND b.day < w."end"
                GROUP BY b.symbol
            """
            params = [*params, *_ts_bounds(interval, window, day_shift)]
            con.register("session_days", pl.DataFrame({"day": days}).to_arrow())
            if len(bounds) < day_numbers.height:  # a symbol twice: count each window exactly
                mixed = list(bounds)
            else:
                con.register("windows", day_numbers.select("symbol").to_arrow())
                for sym, n, first, last in con.sql(span_sql, params=params).fetchall():
                    w = bounds.get(sym)
                    if w is None:
                        continue
                    if w[0] <= first and last < w[1]:
                        out[str(sym)] = int(n)
                    else:
                        mixed.append(sym)
                con.unregister("windows")
            if mixed:
                some = day_numbers.filter(pl.col("symbol").is_in(mixed))
                con.register("windows", some.to_arrow())
                for sym, n in con.sql(exact_sql, params=params).fetchall():
                    out[str(sym)] = out.get(str(sym), 0) + int(n)
        return out

    def _indexed_counts(
        self,
        interval: Interval,
        files: list[str],
        windows: pl.DataFrame,
        sessions: npt.NDArray[np.int64],
        window: DateRange,
        day_shift: timedelta,
    ) -> dict[str, int]:
        """``session_counts`` from the day index: ``windows`` holds day numbers, ``sessions``
        the session days as offsets from ``window.start``."""
        names = windows["symbol"].to_list()
        unique, occupied = self._occupancy(interval, files, names, window, day_shift)
        width = occupied.shape[1]
        is_session = np.zeros(width, dtype=np.bool_)
        is_session[sessions] = True
        occupied &= is_session
        row_of = {name: i for i, name in enumerate(unique)}
        rows = np.array([row_of[name] for name in names], dtype=np.intp)
        lo = _day_number(window.start)
        starts = np.clip(windows["start"].to_numpy() - lo, 0, width)
        ends = np.maximum(np.clip(windows["end"].to_numpy() - lo, 0, width), starts)
        counts = np.count_nonzero(occupied, axis=1)[rows]
        # Most windows are the whole span; the others (listings, delistings) are counted from
        # running sums, a block of rows at a time to bound memory.
        partial = np.flatnonzero((starts > 0) | (ends < width))
        for block in np.array_split(partial, max(1, -(-len(partial) // _SUM_ROWS))):
            running = np.zeros((len(block), width + 1), dtype=np.int32)
            np.cumsum(occupied[rows[block]], axis=1, out=running[:, 1:])
            at = np.arange(len(block))
            counts[block] = running[at, ends[block]] - running[at, starts[block]]
        out = dict(zip(names, counts.tolist(), strict=True))
        if len(out) < len(names):  # a symbol with several windows: sessions in their union
            union = np.zeros((len(unique), width), dtype=np.bool_)
            for row, a, b in zip(rows.tolist(), starts.tolist(), ends.tolist(), strict=True):
                union[row, a:b] = True
            for name in out:
                row = row_of[name]
                out[name] = int(np.count_nonzero(occupied[row] & union[row]))
        return {name: n for name, n in out.items() if n}

    def _occupancy(
        self,
        interval: Interval,
        files: list[str],
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta,
    ) -> tuple[list[str], npt.NDArray[np.bool_]]:
        """From the day index of ``files``: the symbols (``symbols_`` without repeats, or all
        stored ones) and a (symbols, days of ``window``) mask of the session dates with a bar."""
        assert self.index is not None
        entries = self.index.entries(interval, files)
        if symbols_ is None:
            names = np.unique(np.concatenate([e.names for e in entries] or [np.array([], str)]))
        else:
            names = np.unique(np.array(symbols_, dtype=str))
        lo, hi = _day_number(window.start), _day_number(window.end)
        shift_us = day_shift // timedelta(microseconds=1)
        return names.tolist(), dayindex.occupancy(entries, names, lo, hi, shift_us)

    def liquidity(self, symbols_: list[str], window: DateRange, sessions: int) -> pl.DataFrame:
        """Median daily dollar volume (close x volume) of each symbol's last ``sessions``
        daily bars inside ``window``: columns symbol, dollar_volume, sessions."""
        files = self.files("1day", None, window)
        if not files or not symbols_:
            return pl.DataFrame(schema={"symbol": pl.String, "dollar_volume": pl.Float64})
        lo = datetime.combine(window.start, time(), UTC)
        hi = datetime.combine(window.end, time(), UTC)
        with _duckdb() as con, self._source(con, files) as (source, params):
            sql = f"""
                SELECT symbol, median(close * volume) AS dollar_volume, count(*) AS sessions
                FROM (
                    SELECT symbol, close, volume,
                           row_number() OVER (PARTITION BY symbol ORDER BY ts DESC) AS n
                    FROM {source}
                    WHERE symbol IN (SELECT unnest(?::VARCHAR[])) AND ts >= ? AND ts < ?
                ) WHERE n <= ? GROUP BY symbol ORDER BY symbol
            """
            params = [*params, symbols_, lo, hi, sessions]
            return pl.DataFrame(con.sql(sql, params=params).to_arrow_table())


def _connect() -> duckdb.DuckDBPyConnection:
    # A cursor on the process's engine: opening a new database per query costs tens of ms.
    # Session dates come from integer maths (``_day_sql``); UTC keeps any cast to DATE on the
    # UTC date too, where DuckDB would otherwise use the machine's time zone.
    con = _duckdb()
    con.execute("SET TimeZone = 'UTC'")
    return con


_engine: duckdb.DuckDBPyConnection | None = None
_engine_lock = threading.Lock()


def _duckdb() -> duckdb.DuckDBPyConnection:
    """A cursor on one in-memory DuckDB per process (a new database costs tens of ms)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = duckdb.connect()
        return _engine.cursor()


_DAY_US = 86_400_000_000
# Rows of running sums computed at once when counting sessions inside narrower windows.
_SUM_ROWS = 1024
# Below this many symbols, a count over daily files (which hold every symbol) first filters
# rows by symbol; above it the filter costs more than it saves.
_FILTER_SYMBOLS_UP_TO = 1000
# Rows that are bars (``bars.PRICED``): a row with no price covers no session.
_PRICED_SQL = f"coalesce({', '.join(bars.PRICES)}) IS NOT NULL"
# Added before dividing so that integer division floors for instants before 1970 as well.
_DAY_OFFSET = 1_000_000


def _day_sql(interval: Interval, day_shift: timedelta) -> str:
    """SQL for the session date of column ``ts`` as a day number (days since 1970-01-01).

    Integer maths on the UTC instant: exact, independent of the session time zone, and several
    times faster than casting a TIMESTAMPTZ to DATE, which converts time zones row by row.
    """
    shift = day_shift // timedelta(microseconds=1) if spec(interval).intraday else 0
    return f"(epoch_us(ts) + {shift + _DAY_OFFSET * _DAY_US}) // {_DAY_US} - {_DAY_OFFSET}"


def _ts_bounds(interval: Interval, window: DateRange, day_shift: timedelta) -> list[datetime]:
    """The bar starts whose session date (``_day_sql``) falls inside ``window``: [lo, hi)."""
    shift = day_shift if spec(interval).intraday else timedelta(0)
    return [datetime.combine(d, time(), UTC) - shift for d in (window.start, window.end)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _in_window(interval: Interval, window: DateRange, day_shift: timedelta) -> pl.Expr:
    """Whether a bar's session date (its UTC start moved by ``day_shift`` for intraday bars)
    is inside ``window``."""
    shift = day_shift if spec(interval).intraday else timedelta(0)
    day = (pl.col("ts") + shift).dt.date()
    return (day >= window.start) & (day < window.end)


def _day_number(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _without(old: pl.DataFrame, replace: pl.DataFrame) -> pl.DataFrame:
    """``old`` less its rows inside the ranges of ``replace`` (symbol, lo, hi), and less its
    rows without a key when any range is of its symbols."""
    ranges = replace.filter(pl.col("symbol").is_in(old.get_column("symbol").unique().implode()))
    if ranges.is_empty():
        return old
    keyed = old.filter(pl.col("symbol").is_not_null() & pl.col("ts").is_not_null())
    hit = (
        keyed.with_row_index("_row")
        .select("_row", "symbol", "ts")
        .join(ranges.select("symbol", "lo", "hi"), on="symbol")
        .filter((pl.col("ts") >= pl.col("lo")) & (pl.col("ts") < pl.col("hi")))
        .get_column("_row")
    )
    return keyed.with_row_index("_row").filter(~pl.col("_row").is_in(hit.implode())).drop("_row")


def _ts_range(meta: pq.FileMetaData) -> tuple[datetime, datetime] | None:
    """The least and greatest ``ts`` by the row groups' statistics; None without them."""
    if "ts" not in meta.schema.names:
        return None
    column = meta.schema.names.index("ts")
    lows, highs = [], []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        if not group.num_rows:
            continue
        stats = group.column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(_utc(stats.min))
        highs.append(_utc(stats.max))
    return (min(lows), max(highs)) if lows else None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _file_symbol(path: str) -> str | None:
    """The symbol of a per-symbol data file's path (``symbol=BRK%2FB``), else None."""
    folder = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return symbols.decode(folder.partition("=")[2]) if folder.startswith("symbol=") else None


def _period_of(path: str) -> str:
    """The period key (``2024``, ``2024-06``) of a data file's path."""
    return os.path.basename(os.path.dirname(path)).partition("=")[2]


#: Symbols up to which ``_paths`` lists their folders alone rather than the interval's first.
_FEW = 8


def _pad(window: DateRange) -> DateRange:
    # Intraday bars of one session can carry the previous or next UTC date.
    return DateRange(window.start - timedelta(days=1), window.end + timedelta(days=1))
