"""Where the lake's files live. Local disk now; object storage can take its place later.

Every write replaces a whole file atomically: the new content goes to a temporary file beside
the target, is flushed to disk, and is renamed over it. Readers see the old file or the new one,
never a partial one, and a crash leaves at worst a stray temporary file that the next write of
the same file removes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from barlake.errors import StorageError

TMP_MARK = ".tmp-"


class LocalFileSystem:
    """Atomic whole-file writes on a local directory tree."""

    def replace(self, path: Path, write: Callable[[Path], None]) -> None:
        """Write ``path`` through ``write(tmp_path)``, then move it into place atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries(path)
        # The leading dot hides the temporary file from dataset readers (pyarrow and pandas skip
        # names starting with "." or "_"); without it a reader listing the directory during a
        # write, or after a crash, would open a partial file.
        tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            write(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            self._sync_dir(path.parent)
        except OSError as exc:
            msg = f"could not write {path}: {exc.strerror or exc}; check free space and permissions"
            raise StorageError(msg) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def remove(self, path: Path) -> None:
        """Delete ``path`` if it exists (durably)."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            self._sync_dir(path.parent)

    def exists(self, path: Path) -> bool:
        return path.is_file()

    def glob(self, root: Path, pattern: str) -> Iterator[Path]:
        """Files under ``root`` matching ``pattern``, skipping temporary files."""
        if root.is_dir():
            yield from (p for p in root.glob(pattern) if TMP_MARK not in p.name)

    def clean_temporaries(self, root: Path) -> int:
        """Remove temporary files left by writers that died; returns how many."""
        count = 0
        if root.is_dir():
            for p in root.rglob(f"*{TMP_MARK}*"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    count += 1
        return count

    @staticmethod
    def _remove_stale_temporaries(path: Path) -> None:
        """Delete temporary files of ``path`` left by writers that are no longer running."""
        for p in path.parent.glob(f".{path.name}{TMP_MARK}*"):
            pid = p.name[len(path.name) + 1 + len(TMP_MARK) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    @staticmethod
    def _sync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
