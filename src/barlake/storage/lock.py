"""The lake's fill lock: one ``lake fill`` writes a lake at a time; a second stops at once."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from barlake.errors import LockError
from barlake.storage.filesystem import write_error

FILE_NAME = ".fill.lock"


class FillLock:
    """An exclusive, non-blocking ``flock`` on ``<lake>/.fill.lock``; the kernel frees it when
    the holder dies, so a killed fill never leaves the lake locked."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / FILE_NAME
        self._fd: int | None = None

    def __enter__(self) -> FillLock:
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
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
