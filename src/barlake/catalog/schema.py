"""The rows of the catalog's tables as polars schemas: what frames written to them hold.

The tables themselves come from the migrations in ``catalog.embedded``, which never change once
shipped; ``tests/test_catalog.py`` checks these schemas against them. The catalog itself imports
this module only where it builds frames, so commands that print a few rows never load polars.
"""

from __future__ import annotations

import polars as pl

from barlake.domain.symbols import IMPORT_COLUMNS

_UTC = pl.Datetime("us", "UTC")

#: The ``symbols`` table, in table order (``domain.symbols.SYMBOL_COLUMNS``).
SYMBOLS: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "name": pl.String(),
    "exchange": pl.String(),
    "asset_class": pl.String(),
    "calendar": pl.String(),
    "listed_on": pl.Date(),
    "delisted_on": pl.Date(),
    "market_cap": pl.Float64(),
    "tier": pl.String(),
    "layer": pl.Int32(),
    "layer1_qualified": pl.Boolean(),
    "layer2_qualified": pl.Boolean(),
    "layer3_qualified": pl.Boolean(),
    "liquidity_score": pl.Decimal(10, 2),
    "layer1_updated": _UTC,
    "layer2_updated": _UTC,
    "layer3_updated": _UTC,
    "active": pl.Boolean(),
    "updated_at": _UTC,
}
#: What a symbols file may carry, with the types its cells are cast to.
IMPORTS: dict[str, pl.DataType] = {c: SYMBOLS[c] for c in IMPORT_COLUMNS}

#: The ``ledger`` table: a range of sessions asked of a provider for one symbol, and what came.
LEDGER: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "symbol": pl.String(),
    "interval": pl.String(),
    "start_date": pl.Date(),
    "end_date": pl.Date(),
    "bars": pl.Int64(),
    "fetched_at": _UTC,
    "final": pl.Boolean(),
    "job_id": pl.String(),
}

#: The ``backfill_progress`` table, one row per job, symbol and interval, without the columns
#: the catalog fills itself (``id``, ``job_id``, ``created_at``).
PROGRESS: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "data_type": pl.String(),
    "interval": pl.String(),
    "start_date": pl.Date(),
    "end_date": pl.Date(),
    "status": pl.String(),
    "records_loaded": pl.Int64(),
    "error_message": pl.String(),
    "started_at": _UTC,
    "completed_at": _UTC,
    "stage": pl.String(),
    "attempts": pl.Int32(),
    "requests": pl.Int32(),
}

#: A job's progress rows as it starts (``Catalog.create_job``).
PROGRESS_START: dict[str, pl.DataType] = {
    c: PROGRESS[c] for c in ("symbol", "data_type", "interval", "start_date", "end_date", "status")
}

#: What a running job updates of its progress rows, keyed by symbol and interval
#: (``Catalog.record``).
PROGRESS_UPDATE: dict[str, pl.DataType] = {
    c: PROGRESS[c]
    for c in (
        "symbol",
        "interval",
        "status",
        "records_loaded",
        "error_message",
        "stage",
        "requests",
        "started_at",
        "completed_at",
    )
}

#: The ``set_aside`` table: a symbol a provider refused as unknown to it, and why.
SET_ASIDE: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "provider": pl.String(),
    "error": pl.String(),
    "job_id": pl.String(),
    "set_at": _UTC,
}

#: The ``quality_issues`` table without the check's id and time: one finding of ``lake check``.
FINDINGS: dict[str, pl.DataType] = {
    name: pl.String()
    for name in ("rule", "severity", "symbol", "interval", "first", "last", "message")
}
