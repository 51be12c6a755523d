"""The process's DuckDB, and the catalog file attached to it while blocks use it.

Starting a DuckDB costs tens of milliseconds; attaching a file to a running one costs one. So a
process starts one in-memory DuckDB and attaches the catalog file while any block of any thread
uses it, detaching it after, which releases the file to other processes as closing a connection
did. Threads share the attachment: readers run at once (a writable attachment serves them too),
writers take turns, and a thread that needs the other mode waits until the blocks that hold the
file end.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from barlake.errors import LockError, StorageError, UsageError

_LOCK_HINTS = ("lock", "Conflicting")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection, *, read_only: bool) -> Iterator[None]:
    """Writes inside the block form one transaction (reads need none)."""
    if read_only:
        yield
        return
    con.begin()
    try:
        yield
        con.commit()
    except BaseException:
        con.rollback()
        raise


@contextmanager
def open_file(
    path: Path, *, read_only: bool, timeout: float
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection on the catalog file at ``path`` for the block, the file attached as the
    module docstring says; another process holding it is waited for up to ``timeout`` s."""
    if not path.exists():
        msg = f"no lake catalog at {path}; run `lake init` first or pass --lake PATH"
        raise UsageError(msg)
    with _ENGINE.changed:
        # A writer waiting for a read-only attachment to end goes first: readers arriving
        # meanwhile wait behind it, so a steady stream of reads never starves a write.
        writers = _ENGINE.writers_waiting
        if not read_only:
            writers[path] = writers.get(path, 0) + 1
        try:
            while True:
                held = _ENGINE.attached.get(path)
                # (a thread already inside a block of this file never waits: it would wait
                # for itself)
                mine = held is not None and threading.get_ident() in held.threads
                ahead = read_only and writers.get(path, 0) > 0 and not mine
                if held is None and not ahead:
                    attached = _attach(path, read_only=read_only, timeout=timeout)
                    held = _Attachment(attached, read_only)
                    _ENGINE.attached[path] = held
                    break
                if held is not None and (not held.read_only or (read_only and not ahead)):
                    break
                _ENGINE.changed.wait()
        finally:
            if not read_only:
                writers[path] -= 1
                if not writers[path]:
                    del writers[path]
                _ENGINE.changed.notify_all()
        held.users += 1
        me = threading.get_ident()
        held.threads[me] = held.threads.get(me, 0) + 1
    try:
        with contextlib.nullcontext() if read_only else held.writer:
            with _ENGINE.changed:  # the parent connection serves one thread at a time
                cursor = _ENGINE.cursor(held.alias)
            try:
                yield cursor
            finally:
                cursor.close()
                if not read_only:
                    with _ENGINE.changed:
                        _ENGINE.writes[path] = _ENGINE.writes.get(path, 0) + 1
    finally:
        with _ENGINE.changed:
            held.users -= 1
            held.threads[me] -= 1
            if not held.threads[me]:
                del held.threads[me]
            if held.users == 0:
                del _ENGINE.attached[path]
                _ENGINE.connection().execute(f"DETACH {held.alias}")
                _ENGINE.changed.notify_all()


def writes(path: Path) -> int:
    """How many write blocks this process has ended on the catalog file at ``path``: a read
    of rows that only this process writes is still current while this stays the same."""
    return _ENGINE.writes.get(path, 0)


def _attach(path: Path, *, read_only: bool, timeout: float) -> str:
    """Attach the catalog file to this process's DuckDB, retried while another process
    holds it; returns its name there."""
    engine = _ENGINE.connection()
    alias = f"catalog_{next(_ENGINE.names)}"
    where = str(path).replace("'", "''")
    mode = " (READ_ONLY)" if read_only else ""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        try:
            engine.execute(f"ATTACH '{where}' AS {alias}{mode}")
            return alias
        except (duckdb.IOException, duckdb.BinderException) as exc:
            if "not a valid DuckDB database file" in str(exc):
                what = "an empty file" if _size(path) == 0 else "not a DuckDB file (damaged?)"
                msg = (
                    f"cannot open the catalog {path}: it is {what}; restore it from a backup, "
                    "or move it aside and run `lake init` to start a new catalog"
                )
                raise StorageError(msg) from None
            if not any(h in str(exc) for h in _LOCK_HINTS):
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                msg = f"cannot open {path}: {first}"
                raise StorageError(msg) from exc
            if time.monotonic() >= deadline:
                msg = (
                    f"the catalog {path} stayed locked by another process for "
                    f"{timeout:.0f}s; wait for it to finish and try again"
                )
                raise LockError(msg) from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


@dataclass
class _Attachment:
    """The catalog file attached to this process's DuckDB, and the blocks using it."""

    alias: str
    read_only: bool
    users: int = 0
    threads: dict[int, int] = field(default_factory=dict)  # thread id -> its blocks
    writer: threading.Lock = field(default_factory=threading.Lock)


class _Engine:
    """This process's DuckDB, which catalog blocks attach their file to."""

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.names = itertools.count()
        self.attached: dict[Path, _Attachment] = {}
        self.writers_waiting: dict[Path, int] = {}
        self.writes: dict[Path, int] = {}
        self._con: duckdb.DuckDBPyConnection | None = None
        self._pid = 0

    def connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None or self._pid != os.getpid():  # a forked child starts its own
            self._con = duckdb.connect(":memory:")
            self._pid = os.getpid()
            self.attached = {}
            self.writers_waiting = {}
        return self._con

    def cursor(self, alias: str) -> duckdb.DuckDBPyConnection:
        """A connection of its own (its temporary tables and registered frames go with it)
        on the attached catalog ``alias``, in UTC."""
        cursor = self.connection().cursor()
        cursor.execute(f"USE {alias}")
        cursor.execute("SET TimeZone = 'UTC'")
        return cursor


_ENGINE = _Engine()
