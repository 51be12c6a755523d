"""Where views write their pictures and pages: a file the user named, in a folder that exists."""

from __future__ import annotations

from pathlib import Path

from barlake.errors import StorageError, UsageError


def write_output(path: str | Path, data: bytes, what: str) -> Path:
    """Write ``data`` (``what``: "report", "coverage map") to ``path``; UsageError when its
    folder does not exist or it names a folder, StorageError when the write fails."""
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
    try:
        out.write_bytes(data)
    except OSError as exc:
        msg = f"cannot write the {what} to {out}: {exc.strerror or exc}"
        raise StorageError(msg) from None
    return out
