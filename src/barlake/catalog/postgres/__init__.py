"""The catalog on a PostgreSQL server (``catalog: {url: postgresql://...}``): the only package
that talks to psycopg."""

from barlake.catalog.postgres.catalog import PostgresCatalog
from barlake.catalog.postgres.engine import is_postgres, redacted
from barlake.catalog.postgres.window import PostgresWindow

__all__ = ["PostgresCatalog", "PostgresWindow", "is_postgres", "redacted"]
