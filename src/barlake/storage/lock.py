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


class FillLock:
    """An exclusive, non-blocking ``flock`` on ``<lake>/.fill.lock``; the kernel frees it when
    the holder dies, so a killed fill never leaves the lake locked.

    The thread that holds it may take it again (a worker holds it while it serves a request,
    and the prune or check it runs takes it too); another thread of the same process is
    refused as another process would be.
    """

    #: (lock file, thread) -> (descriptor, depth) of the locks this process holds.
    _held: dict[tuple[Path, int], tuple[int, int]] = {}  # noqa: RUF012
    _guard = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE_NAME

    def __enter__(self) -> FillLock:
        key = (self.path.resolve(), threading.get_ident())
        with FillLock._guard:
            held = FillLock._held.get(key)
            if held is not None:
                FillLock._held[key] = (held[0], held[1] + 1)
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
            msg = (
                f"another `lake fill` (pid {holder}) is writing {self.path.parent}; "
                "wait for it to finish, or watch it with `lake status`"
            )
            raise LockError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        with FillLock._guard:
            FillLock._held[key] = (fd, 1)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        key = (self.path.resolve(), threading.get_ident())
        with FillLock._guard:
            fd, depth = FillLock._held[key]
            if depth > 1:
                FillLock._held[key] = (fd, depth - 1)
                return
            del FillLock._held[key]
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
