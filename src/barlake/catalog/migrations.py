"""The catalog's schema, one script per version: a catalog at version N runs scripts N and on.

A shipped script never changes: a new column or table is a new script at the end. Both
catalogs apply the same scripts (``catalog.embedded.Catalog.create``, and PostgreSQL's in
``catalog.postgres``), each in its own dialect (``script``); ``meta.schema_version`` records how
many ran. Write them in the types both engines know: VARCHAR, INTEGER, BIGINT, BOOLEAN, DATE,
TIMESTAMPTZ, JSON, UUID, DOUBLE, DECIMAL(p, s).
"""

from __future__ import annotations

import re
from typing import Literal

Dialect = Literal["duckdb", "postgres"]

#: What PostgreSQL calls the types whose DuckDB names it does not know.
_POSTGRES_TYPES = ((re.compile(r"\bDOUBLE\b(?!\s+PRECISION)"), "DOUBLE PRECISION"),)


def script(index: int, dialect: Dialect) -> str:
    """Migration ``index`` (0-based) as ``dialect`` runs it."""
    sql = MIGRATIONS[index]
    if dialect == "postgres":
        for pattern, name in _POSTGRES_TYPES:
            sql = pattern.sub(name, sql)
    return sql


def column_types() -> dict[str, str]:
    """Each column name the migrations give one type to, with that type: what a frame's
    column of that name is staged as before it joins a table."""
    found: dict[str, set[str]] = {}
    body = "\n".join(MIGRATIONS)
    for name, kind in re.findall(
        r"(?:^|,|\(|ADD COLUMN)\s*(\w+)\s+(VARCHAR|INTEGER|BIGINT|BOOLEAN|DATE|TIMESTAMPTZ|"
        r"JSON|UUID|DOUBLE|DECIMAL\(\d+,\s*\d+\))",
        body,
        flags=re.MULTILINE,
    ):
        found.setdefault(name, set()).add(kind)
    return {name: kinds.pop() for name, kinds in found.items() if len(kinds) == 1}


MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
    CREATE TABLE symbols (
        symbol VARCHAR PRIMARY KEY,
        name VARCHAR,
        exchange VARCHAR,
        asset_class VARCHAR,
        calendar VARCHAR,
        listed_on DATE,
        delisted_on DATE,
        market_cap DOUBLE,
        tier VARCHAR,
        layer INTEGER NOT NULL DEFAULT 0,
        layer1_qualified BOOLEAN NOT NULL DEFAULT false,
        layer2_qualified BOOLEAN NOT NULL DEFAULT false,
        layer3_qualified BOOLEAN NOT NULL DEFAULT false,
        liquidity_score DECIMAL(10, 2),
        layer1_updated TIMESTAMPTZ,
        layer2_updated TIMESTAMPTZ,
        layer3_updated TIMESTAMPTZ,
        active BOOLEAN NOT NULL DEFAULT true,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE jobs (
        job_id UUID PRIMARY KEY,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        finished_at TIMESTAMPTZ,
        status VARCHAR NOT NULL,
        command VARCHAR,
        parameters JSON,
        provider VARCHAR,
        pid INTEGER,
        requests_planned INTEGER NOT NULL DEFAULT 0,
        requests_made INTEGER NOT NULL DEFAULT 0,
        bars_written BIGINT NOT NULL DEFAULT 0,
        symbols_total INTEGER NOT NULL DEFAULT 0,
        symbols_done INTEGER NOT NULL DEFAULT 0,
        symbols_failed INTEGER NOT NULL DEFAULT 0,
        heartbeat_at TIMESTAMPTZ
    );
    CREATE SEQUENCE backfill_progress_id;
    CREATE TABLE backfill_progress (
        id BIGINT PRIMARY KEY DEFAULT nextval('backfill_progress_id'),
        job_id UUID NOT NULL,
        symbol VARCHAR NOT NULL,
        data_type VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        start_date DATE,
        end_date DATE,
        status VARCHAR NOT NULL,
        records_loaded BIGINT NOT NULL DEFAULT 0,
        error_message VARCHAR,
        started_at TIMESTAMPTZ,
        completed_at TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        stage VARCHAR,
        attempts INTEGER NOT NULL DEFAULT 0,
        requests INTEGER NOT NULL DEFAULT 0,
        UNIQUE (job_id, symbol, data_type, interval)
    );
    CREATE TABLE ledger (
        provider VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        start_date DATE NOT NULL,
        end_date DATE NOT NULL,
        bars BIGINT NOT NULL,
        fetched_at TIMESTAMPTZ NOT NULL,
        final BOOLEAN NOT NULL,
        job_id UUID
    );
    CREATE SEQUENCE events_id;
    CREATE TABLE events (
        id BIGINT PRIMARY KEY DEFAULT nextval('events_id'),
        type VARCHAR NOT NULL,
        payload JSON,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        processed_at TIMESTAMPTZ,
        job_id UUID
    );
    """,
    """
    CREATE TABLE quality_issues (
        check_id UUID NOT NULL,
        checked_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        rule VARCHAR NOT NULL,
        severity VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        interval VARCHAR NOT NULL,
        first VARCHAR,
        last VARCHAR,
        message VARCHAR
    );
    """,
    """
    ALTER TABLE jobs ADD COLUMN host VARCHAR;
    """,
    """
    CREATE TABLE backfill_requests (
        request_id UUID PRIMARY KEY,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        kind VARCHAR NOT NULL,
        selection JSON NOT NULL,
        provider VARCHAR,
        priority INTEGER NOT NULL DEFAULT 0,
        source VARCHAR NOT NULL,
        selection_key VARCHAR NOT NULL,
        idempotency_key VARCHAR,
        state VARCHAR NOT NULL,
        not_before TIMESTAMPTZ,
        worker VARCHAR,
        host VARCHAR,
        pid INTEGER,
        claimed_at TIMESTAMPTZ,
        heartbeat_at TIMESTAMPTZ,
        attempts INTEGER NOT NULL DEFAULT 0,
        job_id UUID,
        finished_at TIMESTAMPTZ,
        error VARCHAR,
        summary JSON
    );
    ALTER TABLE events ADD COLUMN request_id UUID;
    CREATE TABLE schedule_runs (
        entry VARCHAR PRIMARY KEY,
        last_run_at TIMESTAMPTZ NOT NULL,
        last_key VARCHAR
    );
    """,
    # Symbols a provider refused as unknown to it: fills from that provider leave them out
    # until `lake fill --retry-failed` or `lake symbols add` of them again.
    """
    CREATE TABLE set_aside (
        symbol VARCHAR NOT NULL,
        provider VARCHAR NOT NULL,
        error VARCHAR NOT NULL,
        job_id UUID,
        set_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (symbol, provider)
    );
    """,
    # Each job's mean milliseconds from sending a request to its answer, and microseconds it
    # took to write a bar: `lake plan` estimates the next fill's time from recent jobs.
    """
    ALTER TABLE jobs ADD COLUMN latency_ms DOUBLE;
    ALTER TABLE jobs ADD COLUMN write_us_per_bar DOUBLE;
    """,
    # Corporate actions beside the raw bars: adjusted prices are computed from them on read.
    """
    CREATE TABLE actions (
        symbol VARCHAR NOT NULL,
        type VARCHAR NOT NULL,
        ex_date DATE NOT NULL,
        ratio DOUBLE,
        amount DOUBLE,
        currency VARCHAR,
        record_date DATE,
        pay_date DATE,
        source VARCHAR NOT NULL,
        vendor_id VARCHAR,
        fetched_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (symbol, type, ex_date, source)
    );
    """,
    # Rate-limit windows that workers on many machines share through a PostgreSQL catalog:
    # each window's pause (a Retry-After) and its latest acquisitions, in wall-clock seconds.
    """
    CREATE TABLE rate_windows (
        window_key VARCHAR PRIMARY KEY,
        pause_set DOUBLE NOT NULL DEFAULT 0,
        pause_until DOUBLE NOT NULL DEFAULT 0
    );
    CREATE TABLE rate_takes (
        window_key VARCHAR NOT NULL,
        taken_at DOUBLE NOT NULL
    );
    """,
    # Queue workers on any machine: each registers when it starts, beats while it runs and
    # marks its end, so that /health counts the workers of every process.
    """
    CREATE TABLE workers (
        name VARCHAR PRIMARY KEY,
        host VARCHAR NOT NULL,
        pid INTEGER NOT NULL,
        provider VARCHAR,
        started_at TIMESTAMPTZ NOT NULL,
        heartbeat_at TIMESTAMPTZ NOT NULL,
        stopped_at TIMESTAMPTZ
    );
    """,
)
