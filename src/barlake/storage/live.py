"""The live area: minute bars a follower received during the session, before the provider's
final record of it replaces them in the partition files.

Writing a month file per minute would rewrite megabytes for a few hundred bars, so each flush
of a follower is one small Parquet file of its own, in the lake's bar schema::

    live/interval=1min/part-000000042.parquet

A file never changes once written (atomic, like every lake file). A later file's bar of a minute
replaces an earlier file's (a correction, or the REST backfill of a lost connection), and both
replace a stored bar of that minute: ``overlay`` applies that rule, and ``Lake.bars`` reads
through it. ``merge`` folds many small files into one mid-session (readers keep seeing the same
bars: the merged file carries the highest number of those it replaces); ``clear`` removes the
files of sessions made final. The folder sits outside ``bars/``: the readers' one-liners over
``bars/`` see final history only, never a provisional minute twice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.storage.filesystem import FileSystem, LocalFileSystem, Sink

FOLDER = "live"
INTERVAL = "1min"
_PART = re.compile(r"^part-(\d+)\.parquet$")
#: Files beyond which ``write`` merges the area into one: reads stay a handful of files.
MERGE_AT = 64


class LiveArea:
    """The live files of one lake (``fs`` holds them; local disk by default)."""

    def __init__(self, root: Path, *, fs: FileSystem | None = None) -> None:
        self.root = Path(root)
        self.folder = self.root / FOLDER / f"interval={INTERVAL}"
        self.fs: FileSystem = fs or LocalFileSystem()

    def parts(self) -> list[tuple[int, str]]:
        """The live files, oldest first, with their numbers."""
        try:
            names = self.fs.listdir(self.folder)
        except FileNotFoundError:
            return []
        found = [(int(m[1]), name) for name in names if (m := _PART.match(Path(name).name))]
        return [(n, str(self.folder / Path(name).name)) for n, name in sorted(found)]

    def write(self, frame: pl.DataFrame) -> int:
        """Add ``frame``'s bars as one new file (merging the area first when it has many);
        returns the bars written."""
        if frame.is_empty():
            return 0
        parts = self.parts()
        if len(parts) >= MERGE_AT:
            self.merge()
            parts = self.parts()
        number = parts[-1][0] + 1 if parts else 1
        self._put(number, bars.conform(frame).sort(bars.KEY))
        return frame.height

    def read(
        self, symbols: Sequence[str] | None = None, window: DateRange | None = None
    ) -> pl.DataFrame:
        """Every live bar (of ``symbols``, dated in ``window``), one per minute: the latest
        file's."""
        frames = []
        for number, path in self.parts():
            with self.fs.open(path) as fh:
                frame = pl.read_parquet(fh, hive_partitioning=False)
            frames.append(bars.conform(frame).with_columns(_part=pl.lit(number)))
        if not frames:
            return bars.empty()
        out = pl.concat(frames)
        if symbols is not None:
            out = out.filter(pl.col("symbol").is_in(list(symbols)))
        if window is not None:
            day = pl.col("ts").dt.date()
            out = out.filter((day >= window.start) & (day < window.end))
        return latest_per_key(out).drop("_part")

    def merge(self) -> None:
        """Fold every live file into one carrying the highest number: the same bars, fewer
        files. The old files go after the new one is in place, so a reader in between sees a
        minute twice with the same values, which ``overlay`` counts once."""
        parts = self.parts()
        if len(parts) < 2:
            return
        merged = self.read()
        self._put(parts[-1][0], merged)
        for _number, path in parts[:-1]:
            self.fs.remove(path)

    def clear(self, through: date) -> int:
        """Remove the bars of sessions up to ``through`` (made final); returns the files
        removed or rewritten."""
        touched = 0
        for number, path in self.parts():
            with self.fs.open(path) as fh:
                frame = bars.conform(pl.read_parquet(fh, hive_partitioning=False))
            kept = frame.filter(pl.col("ts").dt.date() > through)
            if kept.height == frame.height:
                continue
            touched += 1
            if kept.is_empty():
                self.fs.remove(path)
            else:
                self._put(number, kept)
        return touched

    def last_bar(self) -> datetime | None:
        """The latest minute the area holds."""
        frame = self.read()
        return None if frame.is_empty() else frame.get_column("ts").max()  # type: ignore[return-value]

    def _put(self, number: int, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()

        def write(sink: Sink) -> None:
            pq.write_table(table, sink, compression="zstd")

        path = self.folder / f"part-{number:09d}.parquet"
        self.fs.commit([self.fs.stage(path, write)])


def latest_per_key(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (symbol, ts): the one of the highest ``_part``, the latest among equals."""
    return (
        frame.with_row_index("_row")
        .sort("symbol", "ts", "_part", "_row")
        .unique(bars.KEY, keep="last", maintain_order=True)
        .drop("_row")
    )


def overlay(stored: pl.LazyFrame, live: pl.DataFrame) -> pl.LazyFrame:
    """``stored`` bars with ``live`` ones (of the same symbols and window) in place of the
    stored bars of their minutes, sorted by (symbol, ts)."""
    if live.is_empty():
        return stored
    keys = live.lazy().select(bars.KEY)
    kept = stored.join(keys, on=bars.KEY, how="anti")
    return pl.concat([kept, live.lazy().select(stored.collect_schema().names())]).sort(bars.KEY)
