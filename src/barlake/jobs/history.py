"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

from typing import Any

from barlake.catalog.repositories import JobsRepository


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    row["progress"], row["records_loaded"] = jobs.progress_counts(job_id)
    return row


def errors(jobs: JobsRepository, job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-symbol errors of a job: ``{symbol: {error, stage, interval, timestamp}}``."""
    import polars as pl

    job_id = jobs.find_job(job)
    failed = jobs.progress(job_id).filter(pl.col("status") == "failed")
    return {
        sym: {
            "error": err,
            "stage": stage,
            "interval": interval,
            "timestamp": ts.isoformat() if ts else None,
        }
        for sym, err, stage, interval, ts in failed.select(
            "symbol", "error_message", "stage", "interval", "completed_at"
        ).iter_rows()
    }
