"""The lake's layout on disk: creating its folders and catalog, and refusing a layout this
barlake does not write (the catalog records the version in ``meta.layout_version``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from barlake.domain.intervals import LAYOUT_VERSION
from barlake.errors import StorageError, UsageError
from barlake.storage import lock
from barlake.storage.filesystem import write_error


class Meta(Protocol):
    """The catalog's creation and its key-value ``meta`` table."""

    def create(self) -> bool: ...
    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


def create(root: Path, catalog: Meta) -> None:
    """Create the lake at ``root`` (its bars folder, fill lock and catalog), or bring it up to
    date. The lock file is made here so that a fill refused for bad input leaves no file."""
    must_be_a_folder(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "bars").mkdir(exist_ok=True)
        (root / lock.FILE_NAME).touch(exist_ok=True)
    except OSError as exc:
        raise write_error(root, exc) from None
    catalog.create()
    recorded = catalog.meta("layout_version")
    if recorded is None:
        catalog.set_meta("layout_version", str(LAYOUT_VERSION))
    check(root, recorded)


def must_be_a_folder(root: Path) -> None:
    """UsageError when ``root`` exists and is not a folder (``--lake`` names a file)."""
    if root.exists() and not root.is_dir():
        msg = f"{root} is a file, not a directory; pass --lake the lake's folder"
        raise UsageError(msg)


def check(root: Path, recorded: str | None) -> None:
    """Refuse a lake whose files are laid out differently from what this barlake writes."""
    if recorded is not None and not recorded.isdigit():
        msg = (
            f"{root} has layout version {recorded!r}, which is not a number: the catalog's "
            "meta table is damaged; restore catalog.duckdb from a backup"
        )
        raise StorageError(msg)
    if recorded is not None and int(recorded) != LAYOUT_VERSION:
        msg = (
            f"{root} has layout version {recorded}, this barlake writes {LAYOUT_VERSION}; "
            "upgrade barlake or migrate the lake"
        )
        raise StorageError(msg)
