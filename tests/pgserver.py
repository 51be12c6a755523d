"""The tests' PostgreSQL server: the throwaway cluster of ``barlake.catalog.postgres.cluster``."""

from barlake.catalog.postgres.cluster import admin, cluster, database, missing, with_database

__all__ = ["admin", "cluster", "database", "missing", "with_database"]
