"""The trades dataset on disk: ``trades/symbol=X/date=YYYY-MM-DD/data.parquet``, one file per
symbol and session, read and written only through the ``FileSystem`` seam.

A session's file is written as its pages arrive (``SessionWriter``): each page becomes row
groups of a staged file, so a session of millions of prints never sits in memory whole, and
the file appears (atomically, by the seam's commit) only once its last page is in. A killed
writer leaves a stray temporary file that readers never see and the next write removes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from barlake.calendars.calendar import Days
from barlake.domain import symbols, trades
from barlake.domain.ranges import DateRange
from barlake.domain.tradebars import Conditions, session_bars
from barlake.storage.filesystem import FileSystem, Sink, Staged

FOLDER = "trades"
FILE_NAME = "data.parquet"
#: zstd as the bars use; dictionaries on the columns that repeat (a symbol, a few exchanges;
#: not the condition lists, whose dictionary costs more to build than it saves); no stored
#: Arrow schema, so ``symbol`` reads as a plain string that hive datasets merge with the
#: ``symbol=`` key.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["symbol", "exchange", "tape", "source"],
    # Times grow by small steps: deltas take a fifth less room and less time to compress.
    "column_encoding": {"ts": "DELTA_BINARY_PACKED"},
    "store_schema": False,
}
#: Files read and aggregated at once by ``TradeStore.bars``.
BAR_THREADS = 2
#: Pages a session writer holds before the fetch waits for the disk (bounded memory).
QUEUED_PAGES = 2
_ARROW = trades.empty().to_arrow().schema
_DICTIONARY = ["conditions.list.element"]
_BAR_COLUMNS = ["ts", "price", "size", "conditions"]


class TradeStore:
    """The trades files under ``root``: which sessions are stored, their prints, writers."""

    def __init__(self, root: Path, fs: FileSystem) -> None:
        self.root = Path(root)
        self.fs = fs

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def path(self, symbol: str, session: date) -> Path:
        return self.folder / f"symbol={symbols.encode(symbol)}" / f"date={session}" / FILE_NAME

    # -- what is stored ---------------------------------------------------------------------

    def stored(self, names: Iterable[str] | None, window: DateRange) -> dict[str, list[date]]:
        """The sessions in ``window`` each symbol (None: every symbol) has a file for."""
        out: dict[str, list[date]] = {}
        if names is None:
            folders = [n for n in self.fs.listdir(self.folder) if n.startswith("symbol=")]
            names = [symbols.decode(n.removeprefix("symbol=")) for n in folders]
        for name in names:
            base = self.folder / f"symbol={symbols.encode(name)}"
            days = []
            for path in self.fs.glob(base, f"date=*/{FILE_NAME}"):
                day = _session_of(path)
                if day is not None and day in window:
                    days.append(day)
            if days:
                out[name] = sorted(days)
        return out

    def files(self, names: Iterable[str] | None = None) -> list[tuple[str, date, str]]:
        """Every trades file of ``names`` (None: all): (symbol, session, path)."""
        everything = DateRange(date(1900, 1, 1), date(9999, 1, 1))
        return [
            (name, day, str(self.path(name, day)))
            for name, days in sorted(self.stored(names, everything).items())
            for day in days
        ]

    # The gap finder's ``SessionStore``: a session is stored when its file exists.

    def session_counts(
        self,
        interval: str,
        windows: pl.DataFrame,
        sessions: Sequence[date] | Days,
        day_shift: timedelta = timedelta(0),
    ) -> dict[str, int]:
        """For each symbol of ``windows`` (``symbol, start, end``), its stored sessions
        among ``sessions`` inside its own window."""
        wanted = {np.datetime64(d, "D") for d in sessions}
        out: dict[str, int] = {}
        for sym, start, end in windows.select("symbol", "start", "end").iter_rows():
            days = self.stored([sym], DateRange(start, end)).get(sym, [])
            out[sym] = sum(np.datetime64(d, "D") in wanted for d in days)
        return out

    def days_by_symbol(
        self,
        interval: str,
        symbols_: list[str] | None,
        window: DateRange,
        day_shift: timedelta = timedelta(0),
    ) -> dict[str, Days]:
        """Each symbol's stored sessions in ``window``, as days."""
        return {
            sym: np.array(days, dtype="datetime64[D]")
            for sym, days in self.stored(symbols_, window).items()
        }

    # -- reading ----------------------------------------------------------------------------

    def read(self, names: Iterable[str] | None, window: DateRange) -> pl.DataFrame:
        """The stored prints of ``names`` (None: all) in ``window``, by symbol then time."""
        parts = [
            self.read_file(self.path(sym, day))
            for sym, days in sorted(self.stored(names, window).items())
            for day in days
        ]
        found = [p for p in parts if p is not None]
        return pl.concat(found) if found else trades.empty()

    def read_file(self, path: str | Path) -> pl.DataFrame | None:
        """One session's prints, or None when its file does not exist."""
        try:
            local = self.fs.local_path(path)
            if local is not None:
                return trades.conform(pl.read_parquet(local, hive_partitioning=False))
            with self.fs.open(path) as fh:
                return trades.conform(pl.read_parquet(fh, hive_partitioning=False))
        except FileNotFoundError:
            return None

    def bars(
        self,
        names: Iterable[str] | None,
        window: DateRange,
        length: str | timedelta,
        conditions: Conditions | None = None,
    ) -> pl.DataFrame:
        """Bars of ``length`` built from the stored prints of ``names`` (None: all) in the
        sessions of ``window``, file by file (``domain.tradebars``), sorted by symbol and
        time."""
        files = [
            (sym, self.path(sym, day))
            for sym, days in sorted(self.stored(names, window).items())
            for day in days
        ]

        def one(file: tuple[str, Path]) -> pl.DataFrame:
            sym, path = file
            table = self.arrow(path, _BAR_COLUMNS)
            return session_bars(table, length, conditions, symbol=sym)

        # Files are independent and their reads and numpy passes release the GIL: two at once.
        with ThreadPoolExecutor(max_workers=BAR_THREADS) as pool:
            parts = list(pool.map(one, files))
        return pl.concat(parts) if parts else session_bars(trades.empty().to_arrow(), length)

    def arrow(self, path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
        """One session's file as Arrow, ``conditions`` read as a dictionary (a few distinct
        lists repeat over millions of prints), or only ``columns``."""
        local = self.fs.local_path(path)
        with open(local, "rb") if local is not None else self.fs.open(path) as fh:
            return pq.read_table(
                fh, columns=list(columns) if columns else None, read_dictionary=_DICTIONARY
            )

    def count(self, path: str | Path) -> int:
        """Prints in one file, from its footer."""
        local = self.fs.local_path(path)
        with open(local, "rb") if local is not None else self.fs.open(path) as fh:
            return int(pq.ParquetFile(fh).metadata.num_rows)

    def batches(self, path: str | Path) -> Iterable[pl.DataFrame]:
        """One session's prints row group by row group (bounded memory for long sessions)."""
        local = self.fs.local_path(path)
        with open(local, "rb") if local is not None else self.fs.open(path) as fh:
            reader = pq.ParquetFile(fh)
            for i in range(reader.num_row_groups):
                frame = pl.from_arrow(reader.read_row_group(i))
                assert isinstance(frame, pl.DataFrame)
                yield trades.conform(frame)

    # -- writing and removing ---------------------------------------------------------------

    def writer(self, symbol: str, session: date) -> SessionWriter:
        """A writer of ``symbol``'s prints of ``session`` (see ``SessionWriter``)."""
        return SessionWriter(self.fs, self.path(symbol, session))

    def write(self, symbol: str, session: date, frame: pl.DataFrame) -> int:
        """Replace one session's file with ``frame`` (sorted and unique here) at once."""
        ordered = trades.conform(frame).sort("ts", maintain_order=True)
        ordered = ordered.unique(trades.KEY, keep="first", maintain_order=True)
        table = ordered.to_arrow().cast(_ARROW)

        def write(sink: Sink) -> None:
            pq.write_table(table, sink, **PARQUET_OPTIONS)

        self.fs.commit([self.fs.stage(self.path(symbol, session), write)])
        return ordered.height

    def remove(self, symbol: str, session: date) -> None:
        """Delete one session's file (durably) and the folders it leaves empty."""
        self.fs.remove(self.path(symbol, session), up_to=self.root)


def _session_of(path: str) -> date | None:
    part = Path(path).parent.name
    try:
        return date.fromisoformat(part.removeprefix("date="))
    except ValueError:
        return None


@dataclass
class _Order:
    """What the writer knows of the order of the prints it has taken."""

    last_ts: int | None = None
    #: Trade ids of the prints at ``last_ts``: a page that starts there repeats none of them.
    ids_at_last: set[str] = field(default_factory=set)
    disordered: bool = False


class SessionWriter:
    """Streams one session's prints into its file, page by page, in bounded memory.

    ``add`` takes a page (any order within it; duplicates of ``trades.KEY`` dropped, also
    across pages); the pages go to a writer thread through a queue of ``QUEUED_PAGES``, so
    fetching waits when the disk falls behind. ``commit`` makes the file appear whole;
    ``abort`` (or an error) leaves no file. Pages arriving out of order (a page older than
    the one before it) are put in order once the session is in: only then is the session
    read whole, once.
    """

    def __init__(self, fs: FileSystem, path: Path) -> None:
        self.fs, self.path = fs, path
        self.rows = 0
        self._order = _Order()
        self._queue: asyncio.Queue[pl.DataFrame | None] | None = None
        self._done: asyncio.Future[Staged] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._aborted = False

    async def add(self, page: pl.DataFrame) -> int:
        """Queue ``page`` for writing; the prints it adds (after dropping duplicates)."""
        fresh = self._fresh(page)
        if fresh.is_empty():
            return 0
        if self._queue is None:
            self._start()
        assert self._queue is not None
        await self._queue.put(fresh)
        self.rows += fresh.height
        return fresh.height

    async def commit(self) -> int:
        """Finish the file and make it visible; the prints it holds (0: no file written)."""
        if self._queue is None or self._done is None:
            return 0
        await self._queue.put(None)
        staged = await self._done
        await asyncio.to_thread(self.fs.commit, [staged])
        return self.rows

    async def abort(self) -> None:
        """Drop what was written: the session's file stays as it was (or absent)."""
        if self._queue is None or self._done is None:
            return
        self._aborted = True
        await self._queue.put(None)
        try:
            staged = await self._done
        except _Aborted:
            return
        self.fs.discard([staged])

    # -- the page's side --------------------------------------------------------------------

    def _fresh(self, page: pl.DataFrame) -> pl.DataFrame:
        """``page`` sorted, without duplicates within it or of the prints taken before it.

        Pages come sorted and without repeats as a rule: both are checked on the times alone
        (one numpy pass), and only a page that fails pays for a sort or a unique."""
        frame = page
        ts = frame["ts"].dt.epoch("ns").to_numpy()
        if len(ts) == 0:
            return frame
        steps = np.diff(ts)
        if len(steps) and bool((steps < 0).any()):
            frame = frame.sort("ts", maintain_order=True)
            ts = frame["ts"].dt.epoch("ns").to_numpy()
            steps = np.diff(ts)
        if len(steps) and bool((steps == 0).any()):  # same time: maybe the same print again
            frame = frame.unique(trades.KEY, keep="first", maintain_order=True)
            ts = frame["ts"].dt.epoch("ns").to_numpy()
        first, last = int(ts[0]), int(ts[-1])
        order = self._order
        if order.last_ts is not None:
            if first < order.last_ts:
                order.disordered = True  # duplicates across pages go at the final sort
            elif first == order.last_ts:
                seen = (pl.col("ts").dt.epoch("ns") == first) & pl.col("trade_id").is_in(
                    list(order.ids_at_last)
                )
                frame = frame.filter(~seen)
        if order.last_ts is None or last > order.last_ts:
            order.last_ts = last
            order.ids_at_last = set()
        if last == order.last_ts:
            at_last = frame.filter(pl.col("ts").dt.epoch("ns") == last)["trade_id"]
            order.ids_at_last.update(at_last.to_list())
        return frame

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=QUEUED_PAGES)
        self._done = self._loop.create_future()
        threading.Thread(target=self._run, name=f"trades {self.path}", daemon=True).start()

    # -- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        loop, done = self._loop, self._done
        assert loop is not None and done is not None
        try:
            staged = self.fs.stage(self.path, self._write)
        except BaseException as exc:
            if not done.done():
                loop.call_soon_threadsafe(_set_exception, done, exc)
            return
        loop.call_soon_threadsafe(_set_result, done, staged)

    def _next(self) -> pa.Table | None:
        """The next page as Arrow (converted here, in the writer's thread), or None: done."""
        assert self._loop is not None and self._queue is not None
        page = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop).result()
        return None if page is None else page.select(list(trades.SCHEMA)).to_arrow().cast(_ARROW)

    def _write(self, sink: Sink) -> None:
        """Every queued page into ``sink``, through a local file when the sink is not one."""
        if isinstance(sink, str):
            self._stream(sink)
            return
        with tempfile.TemporaryDirectory(prefix="barlake-trades-") as spool:
            local = os.path.join(spool, FILE_NAME)
            self._stream(local)
            with open(local, "rb") as fh:
                shutil.copyfileobj(fh, sink)

    def _stream(self, local: str) -> None:
        with pq.ParquetWriter(local, _ARROW, **PARQUET_OPTIONS) as out:
            while (table := self._next()) is not None:
                out.write_table(table)
        if self._aborted:
            raise _Aborted
        if self._order.disordered:
            whole = pl.read_parquet(local, hive_partitioning=False).sort("ts", maintain_order=True)
            whole = whole.unique(trades.KEY, keep="first", maintain_order=True)
            self.rows = whole.height
            pq.write_table(whole.to_arrow().cast(_ARROW), local, **PARQUET_OPTIONS)


class _Aborted(Exception):
    """The writer was asked to leave no file."""


def _set_result(future: asyncio.Future[Staged], staged: Staged) -> None:
    if not future.done():
        future.set_result(staged)


def _set_exception(future: asyncio.Future[Staged], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
