"""Where views write their pictures, pages and exports: a file the user named, in a folder that
exists, replaced whole (a temporary file beside it, renamed over it) so that no reader sees half
of one."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from barlake.errors import StorageError, UsageError


def writable(path: str | Path, what: str) -> Path:
    """``path`` as a file ``what`` ("report", "csv export") may be written to; UsageError when
    its folder does not exist or it names a folder."""
    out = Path(path)
    folder = out.parent
    if not folder.is_dir():
        msg = (
            f"cannot write the {what} to {out}: the folder {folder} does not exist; "
            "create it or pick another path"
        )
        raise UsageError(msg)
    if out.is_dir():
        msg = f"cannot write the {what} to {out}: it is a directory; give a file name"
        raise UsageError(msg)
    return out


def write_output(path: str | Path, data: bytes, what: str) -> Path:
    """Write ``data`` (``what``: "report", "coverage map") to ``path`` (see ``write_with``)."""
    return write_with(path, _bytes(data), what)


def write_with(path: str | Path, write: Callable[[Path], object], what: str) -> Path:
    """Have ``write`` write the file ``path`` names, through a temporary file beside it that
    replaces ``path`` once complete; UsageError as ``writable`` says, StorageError when the
    write fails (nothing is left behind)."""
    out = writable(path, what)
    # A hidden name beside the file, created with the permissions any new file gets.
    staged = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        write(staged)
        os.replace(staged, out)
    except OSError as exc:
        msg = f"cannot write the {what} to {out}: {exc.strerror or exc}"
        raise StorageError(msg) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
    return out


def _bytes(data: bytes) -> Callable[[Path], object]:
    return lambda staged: staged.write_bytes(data)
