"""The lake's fill lock: one ``lake fill`` writes a lake at a time; a second stops at once."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from barlake.errors import LockError
from barlake.storage.filesystem import write_error

FILE_NAME = ".fill.lock"


class FileLock:
    """An exclusive, non-blocking ``flock`` on the file at ``path``; the kernel frees it when
    the holder dies, so a killed holder never leaves it locked. Busy, it raises LockError.

    The thread that holds it may take it again (a worker holds the fill lock while it serves
    a request, and the prune or check it runs takes it too); another thread of the same
    process is refused as another process would be.
    """

    #: (lock file, thread) -> (descriptor, depth) of the locks this process holds.
    _held: dict[tuple[Path, int], tuple[int, int]] = {}  # noqa: RUF012
    _guard = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def busy(self, holder: str) -> str:
        """The one line LockError says when process ``holder`` holds the lock."""
        return f"{self.path} is locked by pid {holder}; wait for it to end"

    def __enter__(self) -> FileLock:
        key = (self.path.resolve(), threading.get_ident())
        with FileLock._guard:
            held = FileLock._held.get(key)
            if held is not None:
                FileLock._held[key] = (held[0], held[1] + 1)
                return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockError(self.busy(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        with FileLock._guard:
            FileLock._held[key] = (fd, 1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        key = (self.path.resolve(), threading.get_ident())
        with FileLock._guard:
            fd, depth = FileLock._held[key]
            if depth > 1:
                FileLock._held[key] = (fd, depth - 1)
                return
            del FileLock._held[key]
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class FillLock(FileLock):
    """The lake's fill lock, ``<lake>/.fill.lock``: one writer of the lake at a time."""

    def __init__(self, root: Path) -> None:
        super().__init__(Path(root) / FILE_NAME)

    def busy(self, holder: str) -> str:
        return (
            f"another `lake fill` (pid {holder}) is writing {self.path.parent}; "
            "wait for it to finish, or watch it with `lake status`"
        )
