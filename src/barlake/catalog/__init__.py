"""The catalog: symbols, jobs, progress, ledger, events, findings.

Two backends implement its repositories (``catalog.repositories``): the DuckDB file in the
lake's folder (``catalog.embedded``), and a PostgreSQL database a team shares
(``catalog.postgres``), chosen by lake.yaml's ``catalog.url``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from barlake.catalog.embedded import Tables

#: The environment variable that puts a lake's catalog on a PostgreSQL server (as
#: ``config.CATALOG_URL_ENV``, which lake.yaml's settings take it from).
URL_ENV = "LAKE_CATALOG_URL"


def catalog_url(root: Path, environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL URL of the lake's catalog, None for its DuckDB file. Cheap when
    lake.yaml says nothing of a catalog: opening a lake does not parse its settings."""
    env = os.environ if environ is None else environ
    if env.get(URL_ENV):
        return env[URL_ENV]
    try:
        text = (Path(root) / "lake.yaml").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if "catalog" not in text:
        return None
    from barlake.config import load

    return load(root, env).catalog.url


def without_password(url: str) -> tuple[str, bool]:
    """``url`` without its password (in the user part or a ``password=`` parameter), and
    whether it had one: what may be written into lake.yaml."""
    import re
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc, had = parts.netloc, False
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        had = ":" in user
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = "&".join(p for p in parts.query.split("&") if p and not re.match(r"(?i)password=", p))
    had = had or query != "&".join(p for p in parts.query.split("&") if p)
    return urlunsplit(parts._replace(netloc=netloc, query=query)), had


def open_catalog(root: Path, url: str | None = None) -> Tables:
    """The catalog of the lake at ``root``: its DuckDB file, or the PostgreSQL database at
    ``url`` (psycopg loads only then)."""
    if url is None:
        from barlake.catalog.embedded import Catalog

        return Catalog(root)
    from barlake.catalog.postgres import PostgresCatalog

    return PostgresCatalog(url)
