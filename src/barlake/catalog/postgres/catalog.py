"""The catalog of a lake kept in a PostgreSQL database, for a team: many processes on many
machines share its tables, its queue and its rate-limit windows.

It runs the same repositories as the DuckDB file (``catalog.embedded.Tables``) over pooled
connections: each block is one transaction (a block inside another is a savepoint of it), and
``session`` keeps one connection for the blocks inside it. Claims skip the rows other workers
hold (``FOR UPDATE SKIP LOCKED``), and a worker's writes for a claimed request check, in their
own transaction, that the claim is still its own.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from barlake.catalog.embedded import Tables
from barlake.catalog.migrations import Dialect
from barlake.catalog.postgres.bell import RING, Bell
from barlake.catalog.postgres.engine import (
    CONNECT_TIMEOUT_S,
    POOLS,
    Connection,
    frame_of,
    pooled,
    redacted,
    unreachable,
)

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

#: Taken while migrating, so that two ``lake init`` at once run each script once.
_MIGRATION_LOCK = 0x6261726C616B65  # "barlake"


class PostgresCatalog(Tables):
    """The catalog of one lake in the database at ``url``."""

    dialect: Dialect = "postgres"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    lock_row = " FOR UPDATE"
    ring = RING

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._writes = 0

    @property
    def where(self) -> str:
        return redacted(self.url)

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.where!r})"

    # -- connections -------------------------------------------------------------------------

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[None]:
        """Share one connection among the calls inside the block."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with pooled(self.url) as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[Connection]:
        """A connection for the ``with`` block, its statements one transaction."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            with shared.transaction():
                yield Connection(shared)
            return
        with pooled(self.url) as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield Connection(conn)
            finally:
                self._local.conn = None
        if not read_only:
            self._writes += 1

    def bell(self) -> Bell:
        """What an idle worker waits on: a notification that a request became claimable."""
        return Bell(self.url)

    @contextmanager
    def lease(self, name: str) -> Iterator[bool]:
        """A session advisory lock of ``name`` on a connection of its own, held while the
        block runs; the server lets go when the connection ends (the process died)."""
        import psycopg

        key = int(hashlib.sha256(f"lease:{name}".encode()).hexdigest()[:15], 16)
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise unreachable(self.url, exc) from None
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            yield bool(row and row[0])
        finally:
            conn.close()  # ends the session: the lock goes with it

    def writes(self) -> int:
        """How many write blocks this process has ended on this catalog."""
        return self._writes

    def close(self) -> None:
        """Close this process's connections to the server."""
        POOLS.close(self.url)

    def exists(self) -> bool:
        """Whether the database holds a catalog (``lake init`` makes it)."""
        with self.connect(read_only=True) as con:
            return "meta" in self.table_names(con)

    def create(self) -> bool:
        """Create or migrate the catalog's tables; returns True when there were none."""
        with self.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(?)", [_MIGRATION_LOCK])
            new = "meta" not in self.table_names(con)
            self.migrate(con)
        return new

    def table_names(self, con: Any) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        return {str(r[0]) for r in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        """Run a read-only query and return its rows, typed as DuckDB types them."""
        with self.connect(read_only=True) as con:
            return frame_of(con.execute(sql, list(params)))

    def execute(
        self, sql: str, params: Sequence[Any] = (), **tables: pa.Table | pl.DataFrame
    ) -> None:
        """Run one writing statement, with ``tables`` visible to it by name."""
        with self.connect() as con:
            for name, table in tables.items():
                con.register(name, table)
            con.execute(sql, list(params))
