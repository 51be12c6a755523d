"""Where the lake's files live. Local disk now; object storage can take its place later.

Every write replaces a whole file atomically: the new content goes to a temporary file beside
the target, is flushed to disk, and is renamed over it. Readers see the old file or the new one,
never a partial one, and a crash leaves at worst a stray temporary file that the next write of
the same file removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from barlake.errors import StorageError

TMP_MARK = ".tmp-"


class LocalFileSystem:
    """Atomic whole-file writes on a local directory tree."""

    def replace(self, path: Path, write: Callable[[Path], None]) -> None:
        """Write ``path`` through ``write(tmp_path)``, then move it into place atomically."""
        self.commit([(self.stage(path, write), path)])

    def stage(self, path: Path, write: Callable[[Path], None]) -> Path:
        """Write the content of ``path`` through ``write(tmp_path)`` into a temporary file
        beside it, not yet durable nor in place: ``commit`` does both for many files at once."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries(path)
        tmp = self._temporary(path)
        try:
            write(tmp)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            msg = f"could not write {path}: {exc.strerror or exc}; check free space and permissions"
            raise StorageError(msg) from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return tmp

    def commit(self, staged: Sequence[tuple[Path, Path]]) -> None:
        """Move staged ``(tmp, path)`` files into place, each atomically, all durably.

        Many files are flushed with two file-system syncs (one before the renames, one after)
        instead of two fsyncs each, which is what makes a flush of fifty files fast; a few
        files, or a system without ``syncfs``, take the fsyncs.
        """
        if not staged:
            return
        where: Path | str = staged[0][1] if len(staged) == 1 else "lake files"
        try:
            batch = len(staged) >= _BATCH_FILES and _syncfs(staged[0][1].parent)
            for tmp, path in staged if not batch else ():  # all durable before any rename
                where = path
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            for tmp, path in staged:
                where = path
                os.replace(tmp, path)
            where = "lake folders"
            if not batch or not _syncfs(staged[0][1].parent):
                for directory in sorted({path.parent for _, path in staged}):
                    self._sync_dir(directory)
        except OSError as exc:
            msg = (
                f"could not write {where}: {exc.strerror or exc}; check free space and permissions"
            )
            raise StorageError(msg) from exc
        finally:
            self.discard(staged)

    def discard(self, staged: Sequence[tuple[Path, Path]]) -> None:
        """Remove staged temporary files that will not be committed."""
        for tmp, _ in staged:
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
    def _temporary(path: Path) -> Path:
        # The leading dot hides the temporary file from dataset readers (pyarrow and pandas skip
        # names starting with "." or "_"); without it a reader listing the directory during a
        # write, or after a crash, would open a partial file.
        return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")

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


#: From this many files on, ``commit`` syncs the file system instead of each file.
_BATCH_FILES = 8


@functools.cache
def _syncfs_call() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux
        return None


def _syncfs(directory: Path) -> bool:
    """Flush every written file of the file system holding ``directory``; False when the
    system cannot (the caller then syncs file by file)."""
    syncfs = _syncfs_call()
    if syncfs is None:
        return False
    fd = os.open(directory, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(directory))
    finally:
        os.close(fd)
    return True


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
