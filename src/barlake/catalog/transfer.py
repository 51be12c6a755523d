"""Copying a lake's catalog into another, empty one (the DuckDB file into PostgreSQL), verified.

Every table's rows are copied inside one transaction of the target, then read back inside it
and compared with the source: the same row count and the same SHA-256 of the rows in a
canonical order and text. Only when every table agrees does the transaction commit, so a
failed copy leaves the target as empty as it was, and the source is only ever read.
Sequences that number rows (``events_id``, ``backfill_progress_id``) continue after the copied
ids. ``meta`` is copied too, save ``schema_version``, which the target's own migrations set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from barlake.catalog.embedded import Tables
from barlake.errors import StorageError

#: The ``meta`` key the target's migrations own.
SCHEMA_VERSION = "schema_version"


@dataclass(frozen=True)
class TableCopy:
    """One table copied and verified: its rows and the SHA-256 of their canonical text."""

    table: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class CatalogCopy:
    """What a catalog copy carried, table by table."""

    tables: list[TableCopy]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, object]:
        return {"tables": len(self.tables), "rows": self.rows}


def digest(frame: pl.DataFrame) -> str:
    """The SHA-256 of ``frame``'s rows sorted by every column, as CSV text."""
    ordered = frame.sort(frame.columns, nulls_last=True) if frame.height else frame
    return hashlib.sha256(ordered.write_csv().encode()).hexdigest()


@contextmanager
def copy(source: Tables, target: Tables) -> Iterator[CatalogCopy]:
    """Copy every table of ``source`` into ``target`` (made or migrated first; it must hold no
    rows) and verify each; the copy commits when the ``with`` block ends without an error, so a
    caller can do more (copy the bar files) before it does. StorageError names the first table
    that differs, or the first that is not empty."""
    source.verify()
    target.create()
    with source.connect(read_only=True) as con:
        names = sorted(source.table_names(con))
    with target.session(), target.connect() as con:  # reads back inside the transaction
        _must_be_empty(target, con, names)
        copied = [_copy_table(source, target, con, name) for name in names]
        _continue_sequences(target, con)
        yield CatalogCopy(copied)


def _must_be_empty(target: Tables, con: Any, names: list[str]) -> None:
    for name in names:
        where = f" WHERE key <> '{SCHEMA_VERSION}'" if name == "meta" else ""
        held = con.execute(f"SELECT count(*) FROM {name}{where}").fetchone()[0]
        if held:
            msg = (
                f"the catalog {target.where} already holds rows ({held} in {name}); "
                "migrate into a new, empty database"
            )
            raise StorageError(msg)


def _copy_table(source: Tables, target: Tables, con: Any, name: str) -> TableCopy:
    where = f" WHERE key <> '{SCHEMA_VERSION}'" if name == "meta" else ""
    rows = source.query(f"SELECT * FROM {name}{where}")
    columns = ", ".join(rows.columns)
    if rows.height:
        con.register("copied_rows", rows)
        con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM copied_rows")
    back = target.query(f"SELECT {columns} FROM {name}{where}")  # the same transaction
    back = back.cast(rows.schema, strict=False) if back.height else back
    want = digest(rows)
    if back.height != rows.height or digest(back) != want:
        msg = (
            f"the catalog's table {name} differs once copied ({back.height} rows read back of "
            f"{rows.height}); nothing was kept in {target.where}: run the migration again"
        )
        raise StorageError(msg)
    return TableCopy(name, rows.height, want)


def _continue_sequences(target: Tables, con: Any) -> None:
    """Move each ``<table>_id`` sequence past the highest copied id of its table."""
    if target.dialect != "postgres":
        return
    found = con.execute(
        "SELECT sequence_name FROM information_schema.sequences "
        "WHERE sequence_schema = current_schema()"
    ).fetchall()
    for (sequence,) in found:
        table = str(sequence).removesuffix("_id")
        con.execute(
            f"SELECT setval('{sequence}', (SELECT COALESCE(max(id), 0) + 1 FROM {table}), false)"
        )
