"""Whether a Parquet file in the lake holds bars: the lake's columns, with the lake's types.

A file copied in by hand (another tool's export, prices saved as text) would otherwise fail deep
inside a query, or worse, be cast silently into bars. Each file is checked once per version it
has (its footer is read the first time a process meets that version).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from barlake.domain.bars import KEY, PRICES
from barlake.errors import StorageError
from barlake.storage.filesystem import FilePath, FileSystem, Version

#: The columns every bar file has, and the Arrow types each may take.
_REQUIRED: dict[str, tuple[str, ...]] = {
    "symbol": ("string", "large_string"),
    "ts": ("timestamp",),
    **{c: ("double", "float") for c in (*PRICES, "volume")},
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "vwap": ("double", "float", "null"),
    "trades": ("int64", "int32", "null"),
    "source": ("string", "large_string", "null"),
}


class Conformance:
    """Checks the bar files a store reads; remembers the versions that passed."""

    def __init__(self, fs: FileSystem) -> None:
        self.fs = fs
        self._passed: set[tuple[str, Version]] = set()
        self._lock = threading.Lock()

    def check(self, paths: Iterable[FilePath]) -> None:
        """StorageError naming the first of ``paths`` that is not a bar file (missing files
        are skipped: the caller handles them)."""
        for path in paths:
            try:
                key = (str(path), self.fs.version(path))
            except FileNotFoundError:
                continue
            with self._lock:
                if key in self._passed:
                    continue
            problem = self._problem(path)
            if problem:
                msg = (
                    f"{path} is not a bar file of this lake: {problem}; move it out of the "
                    "lake (the next fill fetches its bars again)"
                )
                raise StorageError(msg)
            with self._lock:
                self._passed.add(key)

    def _problem(self, path: FilePath) -> str | None:
        try:
            with self.fs.open(path) as fh:
                schema = pq.read_schema(fh)
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowException) as exc:
            return f"it cannot be read as Parquet ({exc})"
        types = {f.name: _kind(f.type) for f in schema}
        missing = [c for c in (*KEY, *PRICES, "volume") if c not in types]
        if missing:
            return f"it lacks the columns {', '.join(missing)} (it has {', '.join(types)})"
        for name, allowed in {**_REQUIRED, **_OPTIONAL}.items():
            if name in types and types[name] not in allowed:
                return f"column {name} is {types[name]}, the lake stores {allowed[0]}"
        return None


def _kind(dtype: pa.DataType) -> str:
    """``dtype``'s name without parameters: ``timestamp[us, tz=UTC]`` is ``timestamp``."""
    return str(dtype).split("[", 1)[0]
