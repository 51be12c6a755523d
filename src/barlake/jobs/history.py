"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

from typing import Any

from barlake.catalog.repositories import JobsRepository
from barlake.fetch.job import SymbolErrors, add_error


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    row["progress"], row["records_loaded"] = jobs.progress_counts(job_id)
    return row


def errors(jobs: JobsRepository, job: str | None = None) -> SymbolErrors:
    """A job's errors by symbol, as its result has them (``JobResult.symbol_errors``):
    ``{symbol: [{error, stage, interval, timestamp}, ...]}``, one per failed interval."""
    import polars as pl

    job_id = jobs.find_job(job)
    failed = jobs.progress(job_id).filter(pl.col("status") == "failed")
    out: SymbolErrors = {}
    for sym, err, stage, interval, ts in failed.select(
        "symbol", "error_message", "stage", "interval", "completed_at"
    ).iter_rows():
        entry = {"error": err, "stage": stage, "interval": interval}
        add_error(out, sym, {**entry, "timestamp": ts.isoformat() if ts else None})
    return out
