"""Where the lake's files live: the ``FileSystem`` seam, on local disk or in memory.

The store and the day index reach their files only through a ``FileSystem``, so that the same
layout can live elsewhere (in a bucket: ``barlake.storage.objectstore``). Every write replaces a
whole file atomically: the new content is staged beside the target, not yet visible, and a
commit makes it durable and visible. Readers see the old file or the new one, never a partial one.

On local disk a staged file is a temporary file beside the target, flushed to disk and renamed
over it; a crash leaves at worst a stray temporary file that the next write of the same file
removes. ``MemoryFileSystem`` keeps files in a dict, for tests of everything above the seam.

A write may name the version it read (``base``): then it replaces only that version, and a
commit that finds another writer's file in its place leaves that file alone and says so
(``WriteConflict``), so that the writer reads it again and merges. File systems whose writers
cannot race (local disk, where one fill lock per lake serialises them) may ignore ``base``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import functools
import io
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from barlake.errors import FileSystemError, StorageError
from barlake.liveness import pid_alive

TMP_MARK = ".tmp-"

#: A file's location: a path on local disk, a key below a bucket elsewhere.
FilePath = str | PurePath
#: What one version of a file's content is known by; equal versions mean equal content. Plain
#: numbers and strings, so that it can be written down (the day index stamps entries with it).
Version = tuple[int | str, ...]
#: Where a ``stage`` writer puts the content: a local path, or a binary file to write into.
Sink = str | BinaryIO
#: ``stage``'s ``base`` for a write that replaces whatever the file holds: no version is empty.
ANY: Version = ()


@dataclass(frozen=True)
class Staged:
    """A new version of ``path`` written by ``FileSystem.stage``, not yet visible."""

    path: str
    #: Where the file system holds the content until the commit (a temporary file, a key).
    handle: str
    #: The version ``path`` has once this is committed.
    version: Version
    #: The version the commit replaces: None when ``path`` must not exist yet, ``ANY`` for
    #: whatever is there.
    base: Version | None = ANY


class WriteConflict(StorageError):
    """Another writer replaced (or created) files since they were read: those ``paths`` were
    left as the other writer made them; the rest of the commit went through."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        msg = (
            f"another writer kept replacing {self.paths[0]} while this one merged into it; "
            "run the command again (what was written before is kept)"
        )
        super().__init__(msg)


class FileSystem(Protocol):
    """The file operations of the store and the day index.

    Writes that fail raise ``StorageError`` (a ``write`` callback's errors other than
    ``OSError`` pass through as they are); reads of a missing file raise ``FileNotFoundError``.
    """

    def stage(
        self, path: FilePath, write: Callable[[Sink], None], *, base: Version | None = ANY
    ) -> Staged:
        """Write a new version of ``path`` through ``write(sink)``, not yet visible; once
        committed it replaces version ``base`` of ``path`` (None: no file yet; ``ANY``: any)."""

    def commit(self, staged: Sequence[Staged]) -> None:
        """Make ``staged`` files durable and visible, each atomically; the staged files are
        gone afterwards, committed or (on failure) not. ``WriteConflict`` names those whose
        ``base`` was no longer the file's version, after the others are committed."""

    def discard(self, staged: Sequence[Staged]) -> None:
        """Drop staged files that will not be committed."""

    def put(self, path: FilePath, data: bytes) -> None:
        """Replace ``path`` with ``data`` atomically, not necessarily durably: for caches that
        readers check (a lost or stale file is rebuilt, never trusted)."""

    def remove(self, path: FilePath, *, up_to: FilePath | None = None, base: Version = ANY) -> None:
        """Delete ``path`` if it exists (durably), and the folders below ``up_to`` it leaves
        empty where the file system has folders; with ``base``, only that version of it
        (``WriteConflict`` when another writer replaced it, as for ``commit``)."""

    def open(self, path: FilePath) -> BinaryIO:
        """The content of ``path`` for reading; FileNotFoundError when it does not exist."""

    def exists(self, path: FilePath) -> bool:
        """Whether ``path`` is a file."""

    def version(self, path: FilePath) -> Version:
        """The version of ``path``'s content; FileNotFoundError when it does not exist."""

    def glob(self, root: FilePath, pattern: str) -> list[str]:
        """Files under ``root`` whose relative path matches ``pattern``, one shell wildcard
        pattern per path component (``*/year=2024/data.parquet``)."""

    def listdir(self, folder: FilePath) -> list[str]:
        """The names right under ``folder`` (files and folders); none when it is missing."""

    def local_path(self, path: FilePath) -> str | None:
        """``path`` as a local file that other libraries may open by name, or None when the
        file system has none (then read through ``open``)."""


#: What the file system says when it refuses every write, not only this file's, and the fix.
_WHOLE_FILE_SYSTEM = {
    errno.ENOSPC: ("has no space left", "free some space"),
    errno.EDQUOT: ("is over its disk quota", "free some space or raise the quota"),
    errno.EROFS: ("is read-only", "mount it writable or pass --lake a writable folder"),
}


def write_error(path: FilePath, exc: OSError) -> StorageError:
    """The error for a failed write of ``path``: a ``FileSystemError`` naming the file system
    when it refuses every write (full, over quota, read-only), else one naming the file."""
    refusal = _WHOLE_FILE_SYSTEM.get(exc.errno or 0)
    if refusal is None:
        msg = f"could not write {path}: {exc.strerror or exc}; check free space and permissions"
        return StorageError(msg)
    what, fix = refusal
    msg = (
        f"the file system at {mount_point(path)} {what} ({exc.strerror}, writing {path}); "
        f"{fix}, then run "
        "the command again (what was written before is kept)"
    )
    return FileSystemError(msg)


def written(path: FilePath, write: Callable[[Sink], None]) -> bytes:
    """What ``write`` writes into a buffer: the content of ``path`` for file systems that
    stage in memory."""
    buffer = io.BytesIO()
    try:
        write(buffer)
    except OSError as exc:
        raise write_error(path, exc) from exc
    return buffer.getvalue()


def mount_point(path: FilePath) -> str:
    """The mount point of the file system holding ``path``: the longest mount in the kernel's
    table that contains it, else the nearest folder up that is a mount."""
    where = os.path.abspath(path)
    try:
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            mounts = [line.split()[1].replace("\\040", " ") for line in fh if line.strip()]
    except OSError:
        mounts = []
    inside = [m for m in mounts if where == m or where.startswith(m.rstrip("/") + "/")]
    if inside:
        return max(inside, key=len)
    current = Path(where)
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


class LocalFileSystem:
    """Atomic whole-file writes on a local directory tree."""

    def stage(
        self, path: FilePath, write: Callable[[Sink], None], *, base: Version | None = ANY
    ) -> Staged:
        """Write the content of ``path`` through ``write(tmp_path)`` into a temporary file
        beside it, not yet durable nor in place: ``commit`` does both for many files at once.

        The version is taken from the temporary file; the rename keeps it (size, mtime and
        inode), so it names exactly this content whatever replaces the file later. ``base`` is
        not checked: a rename cannot be made conditional, and the lake's fill lock already
        keeps a second writer of the same folder out.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries(target)
        tmp = self._temporary(target)
        try:
            write(str(tmp))
            version = self.version(tmp)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise write_error(path, exc) from exc
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return Staged(str(target), str(tmp), version)

    def commit(self, staged: Sequence[Staged]) -> None:
        """Move staged files into place, each atomically, all durably.

        Many files are flushed with two file-system syncs (one before the renames, one after)
        instead of two fsyncs each, which is what makes a flush of fifty files fast; a few
        files, or a system without ``syncfs``, take the fsyncs.
        """
        if not staged:
            return
        where: str = staged[0].path if len(staged) == 1 else "lake files"
        folder = os.path.dirname(staged[0].path)
        try:
            batch = len(staged) >= _BATCH_FILES and _syncfs(folder)
            for s in staged if not batch else ():  # all durable before any rename
                where = s.path
                with open(s.handle, "rb") as fh:
                    os.fsync(fh.fileno())
            for s in staged:
                where = s.path
                os.replace(s.handle, s.path)
            where = "lake folders"
            if not batch or not _syncfs(folder):
                for directory in sorted({os.path.dirname(s.path) for s in staged}):
                    self._sync_dir(directory)
        except OSError as exc:
            raise write_error(where if where.startswith(os.sep) else folder, exc) from exc
        finally:
            self.discard(staged)

    def discard(self, staged: Sequence[Staged]) -> None:
        """Remove staged temporary files that will not be committed."""
        for s in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(s.handle)

    def put(self, path: FilePath, data: bytes) -> None:
        """Replace ``path`` with ``data`` through a temporary file and a rename, no flush."""
        target = Path(path)
        tmp = self._temporary(target)
        try:
            try:
                tmp.write_bytes(data)
            except FileNotFoundError:  # the first file of its folder
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise write_error(path, exc) from exc

    def remove(self, path: FilePath, *, up_to: FilePath | None = None, base: Version = ANY) -> None:
        """Delete ``path`` if it exists (durably), then the folders it leaves empty below
        ``up_to`` (``up_to`` itself stays). ``base`` is not checked, as in ``stage``."""
        target = Path(path)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
            self._sync_dir(target.parent)
        if up_to is None:
            return
        stop, folder = Path(up_to), target.parent
        while folder != stop and stop in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or gone
                return
            folder = folder.parent

    def open(self, path: FilePath) -> BinaryIO:
        return open(path, "rb")  # the caller closes it

    def exists(self, path: FilePath) -> bool:
        return os.path.isfile(path)

    def version(self, path: FilePath) -> Version:
        """Size, mtime_ns and inode: a rename keeps all three, any other write changes one."""
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def glob(self, root: FilePath, pattern: str) -> list[str]:
        """Files under ``root`` matching ``pattern``, skipping temporary files."""
        base = Path(root)
        if not base.is_dir():
            return []
        return [str(p) for p in base.glob(pattern) if TMP_MARK not in p.name]

    def listdir(self, folder: FilePath) -> list[str]:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n for n in names if TMP_MARK not in n]

    def local_path(self, path: FilePath) -> str | None:
        return os.fspath(path)

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
            if pid.isdigit() and not pid_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()

    @staticmethod
    def _sync_dir(directory: FilePath) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class MemoryFileSystem:
    """Files in a dict of path to bytes, versions from a counter: the seam's reference.

    Paths are keys (``str`` of the given path); folders exist only as the prefixes of keys,
    as on object storage. Safe to use from several threads.
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, Version]] = {}
        self._staged: dict[str, tuple[bytes, Version]] = {}
        self._versions = itertools.count(1)
        self._lock = threading.Lock()

    def stage(
        self, path: FilePath, write: Callable[[Sink], None], *, base: Version | None = ANY
    ) -> Staged:
        data = written(path, write)
        with self._lock:
            version: Version = (next(self._versions),)
            handle = f"{_key(path)}{TMP_MARK}{uuid.uuid4().hex}"
            self._staged[handle] = (data, version)
        return Staged(_key(path), handle, version, base)

    def commit(self, staged: Sequence[Staged]) -> None:
        with self._lock:
            try:
                content = [self._staged[s.handle] for s in staged]
            except KeyError as exc:
                msg = f"could not write {exc.args[0]}: it was not staged, or was discarded"
                raise StorageError(msg) from None
            finally:
                for s in staged:
                    self._staged.pop(s.handle, None)
            lost = []
            for s, c in zip(staged, content, strict=True):
                now = self._files.get(s.path)
                if s.base != ANY and s.base != (None if now is None else now[1]):
                    lost.append(s.path)
                else:
                    self._files[s.path] = c
        if lost:
            raise WriteConflict(lost)

    def discard(self, staged: Sequence[Staged]) -> None:
        with self._lock:
            for s in staged:
                self._staged.pop(s.handle, None)

    def put(self, path: FilePath, data: bytes) -> None:
        with self._lock:
            self._files[_key(path)] = (bytes(data), (next(self._versions),))

    def remove(self, path: FilePath, *, up_to: FilePath | None = None, base: Version = ANY) -> None:
        with self._lock:
            now = self._files.get(_key(path))
            if now is not None and base != ANY and now[1] != base:
                raise WriteConflict([_key(path)])
            self._files.pop(_key(path), None)

    def open(self, path: FilePath) -> BinaryIO:
        return io.BytesIO(self._get(path)[0])

    def exists(self, path: FilePath) -> bool:
        return _key(path) in self._files

    def version(self, path: FilePath) -> Version:
        return self._get(path)[1]

    def glob(self, root: FilePath, pattern: str) -> list[str]:
        prefix = _key(root) + "/"
        wanted = pattern.split("/")
        with self._lock:
            keys = list(self._files)
        return [
            key
            for key in keys
            if key.startswith(prefix) and matches(key[len(prefix) :].split("/"), wanted)
        ]

    def listdir(self, folder: FilePath) -> list[str]:
        prefix = _key(folder) + "/"
        with self._lock:
            keys = list(self._files)
        return sorted({k[len(prefix) :].split("/", 1)[0] for k in keys if k.startswith(prefix)})

    def local_path(self, path: FilePath) -> str | None:
        return None

    def paths(self) -> list[str]:
        """Every file's path, sorted."""
        with self._lock:
            return sorted(self._files)

    def _get(self, path: FilePath) -> tuple[bytes, Version]:
        try:
            return self._files[_key(path)]
        except KeyError:
            raise FileNotFoundError(2, "No such file", str(path)) from None


def _key(path: FilePath) -> str:
    return str(PurePath(path))


def matches(parts: list[str], pattern: list[str]) -> bool:
    return len(parts) == len(pattern) and all(
        fnmatch.fnmatchcase(part, want) for part, want in zip(parts, pattern, strict=True)
    )


#: From this many files on, ``commit`` syncs the file system instead of each file.
_BATCH_FILES = 8


@functools.cache
def _syncfs_call() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):  # not Linux
        return None


def _syncfs(directory: FilePath) -> bool:
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


if TYPE_CHECKING:  # mypy checks that both implementations keep to the protocol
    _local: FileSystem = LocalFileSystem()
    _memory: FileSystem = MemoryFileSystem()
