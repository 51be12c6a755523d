"""The process's connection pools to PostgreSQL servers, and connections that run the
catalog's SQL as DuckDB does.

The repositories (``catalog.embedded.Tables``) write ``?`` placeholders and register frames by
name for the statements after; a ``Connection`` here turns the first into psycopg's ``%s`` and
the second into a temporary table filled by ``COPY``, typed as the catalog's own columns of that
name are. One pool per server and process (a forked child opens its own); every connection is
in UTC and reads UUIDs and JSON as text, as DuckDB hands them over.

A URL may carry a password: only ``redacted(url)`` ever reaches a message, and an error from
the driver is reduced to its first line with the password taken out.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from barlake.catalog.migrations import column_types
from barlake.errors import StorageError

if TYPE_CHECKING:
    import polars as pl

#: Seconds to wait for a server that does not answer, and for a free pooled connection.
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 60.0
#: Connections each process keeps open to one server at most: a worker's job, its heartbeat,
#: its rate limiter and a reader of its status each hold one for a short block.
POOL_SIZE = 8

_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url: str | None) -> bool:
    """Whether ``url`` names a PostgreSQL server."""
    return url is not None and url.startswith(_SCHEMES)


def redacted(url: str) -> str:
    """``url`` fit to print: its password (and any ``password=`` parameter) is ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        name = user.split(":", 1)[0]
        netloc = f"{name}:***@{host}" if ":" in user else f"{name}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _secrets(url: str) -> list[str]:
    """The password the URL carries, as written and decoded, to strip from messages."""
    parts = urlsplit(url)
    found = [parts.password or ""]
    found += re.findall(r"(?i)password=([^&]*)", parts.query)
    return [s for s in {*found, *(unquote(s) for s in found)} if s]


def reason(url: str, exc: BaseException) -> str:
    """The driver's error as one line, with the URL's password taken out."""
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        # libpq repeats the server address on a line of its own before the reason
        if line.strip() and not line.startswith(("connection to server", "\t")):
            text = line.strip()
            break
    else:
        text = text.splitlines()[0].strip()
    text = re.sub(r"^connection failed: ", "", text)
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def unreachable(url: str, exc: BaseException) -> StorageError:
    msg = f"cannot use the catalog at {redacted(url)}: {reason(url, exc)}"
    return StorageError(msg)


def _configure(conn: psycopg.Connection[Any]) -> None:
    for name in ("uuid", "json", "jsonb"):
        conn.adapters.register_loader(name, TextLoader)
    conn.execute("SET TIME ZONE 'UTC'")


class _Pools:
    """This process's pools, one per server URL."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
        self.pid = os.getpid()

    def get(self, url: str) -> ConnectionPool[psycopg.Connection[Any]]:
        with self.lock:
            if self.pid != os.getpid():  # a forked child never shares its parent's sockets
                self.pools, self.pid = {}, os.getpid()
            pool = self.pools.get(url)
            if pool is None:
                # One direct attempt first: a server that is down or refuses the password is
                # one clear error now, not a pool retrying in the background.
                try:
                    psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S).close()
                except psycopg.Error as exc:
                    raise unreachable(url, exc) from None
                pool = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=POOL_SIZE,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                    configure=_configure,
                    timeout=POOL_TIMEOUT_S,
                    name="barlake-catalog",
                    open=True,
                )
                self.pools[url] = pool
            return pool

    def close(self, url: str) -> None:
        with self.lock:
            pool = self.pools.pop(url, None)
        if pool is not None:
            pool.close()


POOLS = _Pools()


@contextmanager
def pooled(url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the pool for ``url`` for the block; StorageError (with the password
    taken out) when the server cannot be reached."""
    pool = POOLS.get(url)
    try:
        with pool.connection() as conn:
            yield conn
    except PoolTimeout as exc:
        raise unreachable(url, exc) from None
    except psycopg.OperationalError as exc:
        raise unreachable(url, exc) from None


def _placeholders(sql: str) -> str:
    """DuckDB's ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


#: What PostgreSQL calls the types of the catalog's columns, by column name.
_COLUMN_TYPES = {
    name: "DOUBLE PRECISION" if kind == "DOUBLE" else kind for name, kind in column_types().items()
}


def _staged_type(name: str, dtype: Any) -> str:
    """The type a registered frame's column gets: the catalog's column of that name, or one
    that holds the frame's values."""
    import polars as pl

    if name in _COLUMN_TYPES:
        return _COLUMN_TYPES[name]
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16):
        return "INTEGER"
    if dtype in (pl.Int64, pl.UInt32, pl.UInt64):
        return "BIGINT"
    if dtype in (pl.Float32, pl.Float64):
        return "DOUBLE PRECISION"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Date:
        return "DATE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ"
    if isinstance(dtype, pl.Decimal):
        return "NUMERIC"
    return "VARCHAR"


class Connection:
    """One pooled connection running the repositories' SQL (see the module docstring)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, query: str, parameters: Any = None) -> psycopg.Cursor[Any]:
        cursor = self.conn.cursor()
        if parameters:
            cursor.execute(_placeholders(query), list(parameters))
        else:
            cursor.execute(query.encode())  # bytes: no placeholders, several statements
        return cursor

    def register(self, view_name: str, python_object: Any) -> None:
        """A temporary table ``view_name`` holding the frame's (or Arrow table's) rows until
        the transaction ends."""
        import polars as pl

        frame = (
            python_object
            if isinstance(python_object, pl.DataFrame)
            else pl.from_arrow(python_object)
        )
        assert isinstance(frame, pl.DataFrame)
        name = psycopg.sql.Identifier(view_name)
        columns = [
            psycopg.sql.SQL("{} {}").format(
                psycopg.sql.Identifier(c), psycopg.sql.SQL(_staged_type(c, frame.schema[c]))
            )
            for c in frame.columns
        ]
        self.conn.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(name))
        self.conn.execute(
            psycopg.sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                name, psycopg.sql.SQL(", ").join(columns)
            )
        )
        names = psycopg.sql.SQL(", ").join(psycopg.sql.Identifier(c) for c in frame.columns)
        copy = psycopg.sql.SQL("COPY {} ({}) FROM STDIN").format(name, names)
        with self.conn.cursor().copy(copy) as rows:
            for row in frame.iter_rows():
                rows.write_row(row)


def frame_of(cursor: psycopg.Cursor[Any]) -> pl.DataFrame:
    """A query's rows as a frame typed as DuckDB types the same columns."""
    import polars as pl

    described: Sequence[Any] = cursor.description or ()
    rows = cursor.fetchall()
    series = []
    for i, column in enumerate(described):
        values = [r[i] for r in rows]
        series.append(pl.Series(column.name, values, dtype=_dtype(column), strict=False))
    return pl.DataFrame(series)


def _dtype(column: Any) -> Any:
    import polars as pl

    oid = column.type_code
    simple = {
        16: pl.Boolean,
        20: pl.Int64,
        21: pl.Int16,
        23: pl.Int32,
        700: pl.Float32,
        701: pl.Float64,
        1082: pl.Date,
        1184: pl.Datetime("us", "UTC"),
        1114: pl.Datetime("us"),
    }
    if oid in simple:
        return simple[oid]
    if oid == 1700:  # numeric: DECIMAL(p, s) as declared, a computed one as a float
        if column.precision is not None and column.scale is not None:
            return pl.Decimal(column.precision, column.scale)
        return pl.Float64
    return pl.String  # text, varchar, uuid and json (read as text)
