"""Moving a lake's bar files to another file system (a local lake into a bucket), verified.

Every Parquet file under ``bars/`` is copied whole, then read back from the target and
compared with the source: the same rows (by its Parquet footer) and the same SHA-256 of its
bytes. Nothing is removed or changed at the source, so a failed or interrupted move leaves the
lake as it was; the caller points the lake at the target only once every file is verified.
The day index is not copied: its entries are stamped with the source's versions, and the
target's are rebuilt from the copied files on first use.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from barlake.errors import StorageError
from barlake.storage.filesystem import ANY, FileSystem, Sink

#: Files copied at once (each one a read, a PUT and a read back).
COPY_THREADS = 8


@dataclass(frozen=True)
class Copied:
    """One file copied and verified: its path inside the lake, rows, bytes and SHA-256."""

    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Moved:
    """What a move copied, file by file."""

    files: list[Copied]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_dict(self) -> dict[str, object]:
        return {"files": len(self.files), "rows": self.rows, "bytes": self.bytes}


def bar_files(fs: FileSystem, root: Path) -> list[str]:
    """Every Parquet file under ``root/bars`` (both shapes of the layout), sorted."""
    bars = root / "bars"
    found = fs.glob(bars, "*/*/data.parquet") + fs.glob(bars, "*/*/*/data.parquet")
    return sorted(found)


def move(source: FileSystem, target: FileSystem, root: Path) -> Moved:
    """Copy the bar files of the lake at ``root`` from ``source`` to ``target`` and verify each;
    StorageError naming the first file that differs (the source is never written)."""
    held = bar_files(target, root)
    if held:
        inside = Path(held[0]).relative_to(root)
        msg = (
            f"the target already holds bar files ({inside} and {len(held) - 1} more); "
            "move the lake to an empty place"
        )
        raise StorageError(msg)
    files = bar_files(source, root)
    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        copied = list(pool.map(lambda p: _copy(source, target, root, p), files))
    return Moved(copied)


def _copy(source: FileSystem, target: FileSystem, root: Path, path: str) -> Copied:
    with source.open(path) as fh:
        data = fh.read()
    rows = _rows(data, path)
    digest = hashlib.sha256(data).hexdigest()
    target.commit([target.stage(path, lambda sink: _write(sink, data), base=ANY)])
    with target.open(path) as fh:
        back = fh.read()
    inside = str(Path(path).relative_to(root))
    if hashlib.sha256(back).hexdigest() != digest or _rows(back, path) != rows:
        msg = (
            f"{inside} differs once copied ({len(back)} bytes read back of {len(data)}); "
            "the lake still reads its own files: run the move again"
        )
        raise StorageError(msg)
    return Copied(inside, rows, len(data), digest)


def _write(sink: Sink, data: bytes) -> None:
    if isinstance(sink, str):
        Path(sink).write_bytes(data)
    else:
        sink.write(data)


def _rows(data: bytes, path: str) -> int:
    try:
        rows: int = pq.read_metadata(io.BytesIO(data)).num_rows
    except (OSError, pa.ArrowException) as exc:
        msg = f"cannot read {path} as Parquet ({exc}); move it out of the lake, then again"
        raise StorageError(msg) from exc
    return rows
