"""The catalog: a DuckDB file of symbols, jobs, progress, the ledger and events.

All catalog access goes through ``Catalog``. Every method opens a connection, runs one short
transaction and closes it, so other processes (``lake status`` beside a running ``lake fill``)
get their turn; opening retries while another process holds the file.

The repositories' SQL lives in ``Tables``, written so that DuckDB and PostgreSQL both run it: a
backend subclasses it with its connections (``Catalog`` here, ``catalog.postgres`` for a team's
server), so a query changed here changes on both.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from barlake.catalog.actions import ActionsTable
from barlake.catalog.aside import SetAsideTable
from barlake.catalog.engine import open_file, transaction, writes
from barlake.catalog.jobs import Connection, JobsTable
from barlake.catalog.migrations import MIGRATIONS, Dialect, script
from barlake.catalog.queue import QueueTable
from barlake.domain.events import EventType
from barlake.domain.ranges import DateRange
from barlake.domain.symbols import LAYER_FLAGS, SYMBOL_COLUMNS
from barlake.errors import StorageError, UsageError

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

#: The upsert both engines run (``INSERT OR REPLACE`` is DuckDB's alone).
SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

FILE_NAME = "catalog.duckdb"
#: How long after the catalog file last changed its ``Catalog.stamp`` can be trusted: longer
#: than the tick of the clock that stamps file times (the kernel's, at most 10 ms) on a file
#: system that keeps times finer than a second, and than two seconds on one that does not.
STAMP_SETTLE_NS = 50_000_000
COARSE_SETTLE_NS = 2_000_000_000


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _symbols_sql(names: Sequence[str] | None, *, active_only: bool) -> tuple[str, list[Any]]:
    where, params = [], []
    if names is not None:
        where.append("symbol IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(names))
    if active_only:
        where.append("active")
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT * FROM symbols {clause} ORDER BY symbol", params


#: The tables the migrations create, in order.
TABLES = tuple(re.findall(r"CREATE TABLE (\w+)", "\n".join(MIGRATIONS)))


def _meta(con: Connection, path: str, tables: set[str]) -> dict[str, str]:
    if "meta" not in tables:
        msg = (
            f"the catalog {path} has no meta table: it is not a barlake catalog, or it is "
            "damaged; restore it from a backup, or move it aside and run `lake init`"
        )
        raise StorageError(msg)
    return {str(k): str(v) for k, v in con.execute("SELECT key, value FROM meta").fetchall()}


def _schema_version(path: str, meta: dict[str, str]) -> int:
    """The catalog's schema version; StorageError unless this barlake knows it."""
    text = meta.get("schema_version", "0")
    if not text.isdigit():
        msg = (
            f"the catalog {path} has schema version {text!r}, which is not a number: its "
            "meta table is damaged; restore the catalog from a backup"
        )
        raise StorageError(msg)
    if int(text) > len(MIGRATIONS):
        msg = (
            f"the catalog {path} has schema version {text}, newer than this barlake's "
            f"{len(MIGRATIONS)}: a newer barlake wrote it; upgrade barlake to use this lake"
        )
        raise StorageError(msg)
    return int(text)


def _require_tables(path: str, tables: set[str], version: int) -> None:
    """StorageError naming the first table that schema ``version`` should have and lacks."""
    made = "\n".join(MIGRATIONS[:version])
    missing = [t for t in TABLES if t not in tables and f"CREATE TABLE {t}" in made]
    if missing:
        msg = (
            f"the catalog {path} has no {missing[0]} table: it is damaged; restore it from a "
            "backup, or move it aside and run `lake init`"
        )
        raise StorageError(msg)


class Tables(JobsTable, QueueTable, SetAsideTable, ActionsTable, ABC):
    """The catalog's repositories over a backend's connections; every method is one short
    transaction. A backend provides ``connect``, ``query``, ``rows``, ``execute``, what its
    messages call the catalog (``where``) and the names of its tables (``table_names``)."""

    dialect: Dialect = "duckdb"

    @property
    @abstractmethod
    def where(self) -> str:
        """Provided by each backend."""

    @abstractmethod
    def connect(self, *, read_only: bool = False) -> AbstractContextManager[Connection]:
        """Provided by each backend."""

    @abstractmethod
    def session(self, *, read_only: bool = False) -> AbstractContextManager[None]:
        """Provided by each backend."""

    @abstractmethod
    def writes(self) -> int:
        """Provided by each backend."""

    def stamp(self) -> Hashable | None:
        """A value that differs after any write to the catalog by any process, so that what
        was read under one stamp is current while the stamp stays; None when the backend has
        no cheap one (then nothing read may be reused)."""
        return None

    @contextmanager
    def lease(self, name: str) -> Iterator[bool]:
        """Hold ``name`` against every other process of this catalog, on any machine, while
        the block runs: it gets True, or False when another holds it. A process that dies
        lets go. A catalog file serves one machine, whose file locks decide (the caller
        takes one): this lease is always granted; a database catalog's is shared."""
        yield True

    @abstractmethod
    def exists(self) -> bool:
        """Provided by each backend."""

    @abstractmethod
    def create(self) -> bool:
        """Provided by each backend."""

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        """Provided by each backend."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read-only query and return its rows as dicts (uuids as strings): the cheap
        answer for a handful of rows, with no frame library loaded."""
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql, list(params))
            names = [d[0] for d in cursor.description or ()]
            return [
                {
                    k: str(v) if isinstance(v, uuid.UUID) else v
                    for k, v in zip(names, r, strict=True)
                }
                for r in cursor.fetchall()
            ]

    @abstractmethod
    def execute(
        self, sql: str, params: Sequence[Any] = (), **tables: pa.Table | pl.DataFrame
    ) -> None:
        """Provided by each backend."""

    @abstractmethod
    def table_names(self, con: Connection) -> set[str]:
        """Provided by each backend."""

    def migrate(self, con: Connection) -> None:
        """Run the migrations this catalog has not run yet, inside the caller's transaction."""
        tables = self.table_names(con)
        version = 0
        if tables:
            version = _schema_version(self.where, _meta(con, self.where, tables))
            _require_tables(self.where, tables, version)
        for index in range(version, len(MIGRATIONS)):
            con.execute(script(index, self.dialect))
        con.execute(SET_META, ["schema_version", str(len(MIGRATIONS))])

    def verify(self) -> dict[str, str]:
        """The ``meta`` settings of a catalog this barlake can use; StorageError when a table
        is missing or the schema is older (run ``lake init``) or newer (upgrade barlake)."""
        with self.connect(read_only=True) as con:
            tables = self.table_names(con)
            meta = _meta(con, self.where, tables)
        version = _schema_version(self.where, meta)
        if version < len(MIGRATIONS):
            msg = (
                f"the catalog {self.where} has schema version {version}, this barlake uses "
                f"{len(MIGRATIONS)}; run `lake init` to bring it up to date"
            )
            raise StorageError(msg)
        _require_tables(self.where, tables, version)
        return meta

    def schema_version(self) -> int:
        return int(self.meta("schema_version") or 0)

    def meta(self, key: str) -> str | None:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.connect() as con:
            con.execute(SET_META, [key, value])

    # -- symbols -----------------------------------------------------------------------------

    def upsert_symbols(self, frame: pl.DataFrame) -> int:
        """Insert symbols or update the columns ``frame`` carries; returns rows touched."""
        if frame.is_empty():
            return 0
        cols = [c for c in frame.columns if c in SYMBOL_COLUMNS]
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "symbol")
        conflict = f"DO UPDATE SET {updates}, updated_at = now()" if updates else "DO NOTHING"
        names = ", ".join(cols)
        self.execute(
            f"INSERT INTO symbols ({names}) SELECT {names} FROM new_symbols "
            f"ON CONFLICT (symbol) {conflict}",
            new_symbols=frame.select(cols),
        )
        return frame.height

    def symbols(
        self, names: Sequence[str] | None = None, *, active_only: bool = False
    ) -> pl.DataFrame:
        """Rows of the symbols table (all, or ``names``), ordered by symbol."""
        return self.query(*_symbols_sql(names, active_only=active_only))

    def symbol_rows(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``symbols`` as plain rows (what ``lake symbols list`` prints), each with
        ``set_aside``: the providers that refused it as unknown, comma-separated (or None)."""
        sql, params = _symbols_sql(names, active_only=False)
        return self.rows(
            f"SELECT s.*, a.providers AS set_aside FROM ({sql}) s LEFT JOIN ("
            "SELECT symbol, string_agg(provider, ',' ORDER BY provider) AS providers "
            "FROM set_aside GROUP BY symbol) a USING (symbol) ORDER BY s.symbol",
            params,
        )

    def remove_symbols(self, names: Sequence[str]) -> int:
        """Delete ``names`` from the symbols table; returns how many existed."""
        with self.connect() as con:
            row = con.execute(
                "SELECT count(*) FROM symbols WHERE symbol IN (SELECT unnest(?::VARCHAR[]))",
                [list(names)],
            ).fetchone()
            con.execute(
                "DELETE FROM symbols WHERE symbol IN (SELECT unnest(?::VARCHAR[]))", [list(names)]
            )
        return int(row[0]) if row else 0

    # -- ledger ------------------------------------------------------------------------------

    def ledger(
        self, interval: str, window: DateRange, names: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """Ledger ranges of ``interval`` overlapping ``window``, by symbol and start."""
        sql = (
            "SELECT symbol, start_date, end_date, final, bars, provider, fetched_at FROM ledger "
            "WHERE interval = ? AND end_date > ? AND start_date < ?"
        )
        params: list[Any] = [interval, window.start, window.end]
        if names is not None:
            sql += " AND symbol IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(names))
        return self.query(sql + " ORDER BY symbol, start_date", params)

    def shown(self, provider: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` ``provider`` has answered with bars, at any interval."""
        found = self.rows(
            "SELECT DISTINCT symbol FROM ledger WHERE provider = ? AND bars > 0 "
            "AND symbol IN (SELECT unnest(?::VARCHAR[]))",
            [provider, list(names)],
        )
        return {str(r["symbol"]) for r in found}

    def last_fills(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Per symbol and interval of the ledger (``names`` only, unless None), the latest
        fetch: ``symbol, interval, fetched_at, provider, job_id``."""
        sql = (
            "SELECT DISTINCT ON (symbol, interval) symbol, interval, fetched_at, provider, "
            "job_id FROM ledger"
        )
        params: list[Any] = []
        if names is not None:
            sql += " WHERE symbol IN (SELECT unnest(?::VARCHAR[]))"
            params.append(list(names))
        return self.rows(sql + " ORDER BY symbol, interval, fetched_at DESC", params)

    def add_ledger(self, frame: pl.DataFrame) -> None:
        """Record fetched ranges (columns as the ledger table)."""
        if not frame.is_empty():
            cols = ", ".join(frame.columns)
            self.execute(f"INSERT INTO ledger ({cols}) SELECT {cols} FROM rows", rows=frame)

    # -- layers and events -------------------------------------------------------------------

    def set_layers(self, updates: pl.DataFrame) -> dict[str, int]:
        """Apply layer updates (see ``barlake.universe.layers``) and write the events they imply.

        Returns counts: symbols updated and events written, by type.
        """
        flags = [c for c in LAYER_FLAGS if c in updates.columns]
        new = {f: f"coalesce(u.{f}, s.{f})" if f in flags else f"s.{f}" for f in LAYER_FLAGS}
        effective = (
            f"CASE WHEN {new['layer3_qualified']} THEN 3 WHEN {new['layer2_qualified']} THEN 2 "
            f"WHEN {new['layer1_qualified']} THEN 1 ELSE 0 END"
        )
        # (PostgreSQL stages ``updates`` with the table's types; DuckDB casts on assignment)
        score = "CAST({} AS DECIMAL(10, 2))".format(
            "u.liquidity_score" if "liquidity_score" in updates.columns else "NULL"
        )
        json_object = "json_build_object" if self.dialect == "postgres" else "json_object"
        with self.connect() as con:
            con.register("updates", updates.to_arrow())
            unknown = con.execute(
                "SELECT u.symbol FROM updates u WHERE NOT EXISTS "
                "(SELECT 1 FROM symbols s WHERE s.symbol = u.symbol) ORDER BY u.symbol LIMIT 5"
            ).fetchall()
            if unknown:
                names = ", ".join(r[0] for r in unknown)
                msg = f"unknown symbol(s) {names}; add them with `lake symbols add` first"
                raise UsageError(msg)
            con.execute(f"""
                CREATE TEMP TABLE changes AS
                SELECT s.symbol, s.layer AS old_layer, {effective} AS new_layer,
                       {", ".join(f"s.{f} AS old_{f}, {new[f]} AS new_{f}" for f in LAYER_FLAGS)},
                       {score}
                           AS score
                FROM symbols s JOIN updates u USING (symbol)
            """)
            for n, f in enumerate(LAYER_FLAGS, start=1):
                con.execute(
                    f"""
                    INSERT INTO events (type, payload)
                    SELECT ?, {json_object}('symbol', symbol, 'layer', {n})
                    FROM changes WHERE new_{f} AND NOT old_{f} ORDER BY symbol
                    """,
                    [EventType.SYMBOL_QUALIFIED.value],
                )
            for kind, op in ((EventType.LAYER_PROMOTED, ">"), (EventType.LAYER_DEMOTED, "<")):
                con.execute(
                    f"""
                    INSERT INTO events (type, payload)
                    SELECT ?, {json_object}('symbol', symbol, 'from', old_layer, 'to', new_layer)
                    FROM changes WHERE new_layer {op} old_layer ORDER BY symbol
                    """,
                    [kind.value],
                )
            stamps = ", ".join(
                f"{f} = c.new_{f}, layer{n}_updated = CASE WHEN c.new_{f} <> c.old_{f} "
                f"THEN now() ELSE s.layer{n}_updated END"
                for n, f in enumerate(LAYER_FLAGS, start=1)
            )
            con.execute(f"""
                UPDATE symbols s SET {stamps}, layer = c.new_layer,
                    liquidity_score = coalesce(c.score, s.liquidity_score), updated_at = now()
                FROM changes c WHERE s.symbol = c.symbol
            """)
            counts = con.execute("""
                SELECT count(*) FILTER (WHERE new_layer > old_layer),
                       count(*) FILTER (WHERE new_layer < old_layer),
                       count(*) FILTER (WHERE (new_layer1_qualified AND NOT old_layer1_qualified)
                           OR (new_layer2_qualified AND NOT old_layer2_qualified)
                           OR (new_layer3_qualified AND NOT old_layer3_qualified)),
                       count(*)
                FROM changes
            """).fetchone()
            con.execute("DROP TABLE changes")
        promoted, demoted, qualified, total = counts or (0, 0, 0, 0)
        return {"symbols": total, "promoted": promoted, "demoted": demoted, "qualified": qualified}

    def add_events(self, kind: EventType, payloads: Sequence[dict[str, Any]]) -> int:
        """Write events of one type; returns how many."""
        import polars as pl

        if payloads:
            frame = pl.DataFrame({"payload": [json.dumps(p, default=str) for p in payloads]})
            self.execute(
                "INSERT INTO events (type, payload) SELECT ?, payload::JSON FROM rows",
                [kind.value],
                rows=frame,
            )
        return len(payloads)

    def events(self, *, pending: bool = False, limit: int | None = None) -> pl.DataFrame:
        """Events, oldest first (only unprocessed ones when ``pending``)."""
        where = "WHERE processed_at IS NULL" if pending else ""
        tail = f"LIMIT {int(limit)}" if limit else ""
        return self.query(
            f"SELECT id, type, CAST(payload AS VARCHAR) AS payload, created_at, processed_at, "
            f"job_id, CAST(request_id AS VARCHAR) AS request_id FROM events {where} "
            f"ORDER BY id {tail}"
        )

    def mark_events(self, ids: Sequence[int], job_id: str | None) -> None:
        """Record that the events ``ids`` were served by ``job_id``."""
        if ids:
            self.execute(
                "UPDATE events SET processed_at = now(), job_id = ? "
                "WHERE id IN (SELECT unnest(?::BIGINT[]))",
                [job_id, list(ids)],
            )

    def trim_ledger(self, interval: str, cutoffs: dict[str, date | None]) -> None:
        """Forget ledger coverage before each symbol's cutoff (all of it for None), so pruned
        sessions count as missing again if retention later grows."""
        import polars as pl

        if not cutoffs:
            return
        frame = pl.DataFrame(
            {"symbol": list(cutoffs), "cutoff": [c or date.max for c in cutoffs.values()]},
            schema={"symbol": pl.String, "cutoff": pl.Date},
        )
        with self.connect() as con:
            con.register("cutoffs", frame.to_arrow())
            con.execute(
                "DELETE FROM ledger l USING cutoffs c WHERE l.symbol = c.symbol "
                "AND l.interval = ? AND l.end_date <= c.cutoff",
                [interval],
            )
            con.execute(
                "UPDATE ledger l SET start_date = c.cutoff FROM cutoffs c "
                "WHERE l.symbol = c.symbol AND l.interval = ? AND l.start_date < c.cutoff",
                [interval],
            )

    # -- quality -----------------------------------------------------------------------------

    def replace_findings(
        self, check_id: str, checked: pl.DataFrame, findings: pl.DataFrame
    ) -> None:
        """Replace the stored findings of the (symbol, interval) pairs in ``checked``."""
        with self.connect() as con:
            con.register("checked", checked.to_arrow())
            con.execute(
                "DELETE FROM quality_issues q USING checked c "
                "WHERE q.symbol = c.symbol AND q.interval = c.interval"
            )
            if not findings.is_empty():
                con.register("found", findings.to_arrow())
                cols = ", ".join(findings.columns)
                con.execute(
                    f"INSERT INTO quality_issues (check_id, {cols}) "
                    f"SELECT CAST(? AS UUID), {cols} FROM found",
                    [check_id],
                )

    def findings(self) -> pl.DataFrame:
        """Stored findings, worst first."""
        return self.query(
            "SELECT rule, severity, symbol, interval, first, last, message, check_id, checked_at "
            "FROM quality_issues ORDER BY CASE severity WHEN 'error' THEN 0 "
            "WHEN 'warning' THEN 1 ELSE 2 END, symbol, interval, rule, first"
        )

    def pending_gap_events(self) -> set[tuple[str, str, str, str]]:
        """(symbol, interval, first, last) of gap events not yet served."""
        rows = self.query(
            "SELECT payload->>'symbol' AS symbol, payload->>'interval' AS interval, "
            "payload->>'first' AS first, payload->>'last' AS last "
            "FROM events WHERE type = ? AND processed_at IS NULL",
            [EventType.GAP_DETECTED.value],
        )
        return {(str(a), str(b), str(c), str(d)) for a, b, c, d in rows.iter_rows()}


class Catalog(Tables):
    """The catalog of one lake in its DuckDB file."""

    def __init__(self, root: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(root) / FILE_NAME
        self.lock_timeout = lock_timeout
        self._session = threading.local()

    @property
    def where(self) -> str:
        return str(self.path)

    # -- connections -------------------------------------------------------------------------

    def writes(self) -> int:
        """How many write blocks this process has ended on this catalog (``engine.writes``)."""
        return writes(self.path)

    def stamp(self) -> Hashable | None:
        """This process's writes and the catalog file's and its write-ahead log's size, mtime
        and inode: every commit of any process changes one of them. None while a file was
        modified within the settle time: a second write in the same tick of the file system's
        clock could leave the same mtime (git's "racy" entries)."""
        now = time.time_ns()
        parts: list[object] = [writes(self.path)]
        for path in (self.path, self.path.with_name(self.path.name + ".wal")):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                parts.append(None)
                continue
            # Whole seconds: a file system that keeps no finer times (or a rare exact second).
            coarse = st.st_mtime_ns % 1_000_000_000 == 0
            if now - st.st_mtime_ns < (COARSE_SETTLE_NS if coarse else STAMP_SETTLE_NS):
                return None
            parts.append((st.st_size, st.st_mtime_ns, st.st_ino))
        return tuple(parts)

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[None]:
        """Share one connection among the calls inside the block (opening one costs tens of
        milliseconds); keep the block short, other processes wait while it is open."""
        if getattr(self._session, "con", None) is not None:
            yield
            return
        with open_file(self.path, read_only=read_only, timeout=self.lock_timeout) as con:
            self._session.con = con
            try:
                yield
            finally:
                self._session.con = None

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection held only for the ``with`` block, retried while the file is locked;
        writes inside the block form one transaction."""
        shared = getattr(self._session, "con", None)
        if shared is not None:
            with transaction(shared, read_only=read_only):
                yield shared
            return
        opened = open_file(self.path, read_only=read_only, timeout=self.lock_timeout)
        with opened as con, transaction(con, read_only=read_only):
            yield con

    def exists(self) -> bool:
        """Whether the catalog file is there (``lake init`` makes it)."""
        return self.path.exists()

    def create(self) -> bool:
        """Create or migrate the catalog; returns True when it did not exist."""
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            duckdb.connect(str(self.path)).close()
        with self.connect() as con:
            self.migrate(con)
        return new

    def table_names(self, con: Connection) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        return {str(r[0]) for r in rows}

    def query(self, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
        """Run a read-only query and return its rows."""
        import polars as pl

        with self.connect(read_only=True) as con:
            return pl.from_arrow(con.sql(sql, params=list(params)).to_arrow_table())  # type: ignore[return-value]

    def execute(
        self, sql: str, params: Sequence[Any] = (), **tables: pa.Table | pl.DataFrame
    ) -> None:
        """Run one writing statement, with ``tables`` visible to it by name."""
        import polars as pl

        with self.connect() as con:
            for name, table in tables.items():
                con.register(name, table.to_arrow() if isinstance(table, pl.DataFrame) else table)
            con.execute(sql, list(params))
