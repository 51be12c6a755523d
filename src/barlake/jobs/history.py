"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

from typing import Any

import polars as pl

from barlake.catalog.repositories import JobsRepository


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    progress = jobs.progress(job_id)
    counts = dict(progress.group_by("status").len().iter_rows()) if progress.height else {}
    row["progress"] = {k: int(v) for k, v in sorted(counts.items())}
    row["records_loaded"] = int(progress["records_loaded"].sum()) if progress.height else 0
    return row


def errors(jobs: JobsRepository, job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-symbol errors of a job: ``{symbol: {error, stage, interval, timestamp}}``."""
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
