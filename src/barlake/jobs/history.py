"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

from typing import Any

from barlake.catalog.repositories import Catalog, JobsRepository


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    row["progress"], row["records_loaded"] = jobs.progress_counts(job_id)
    return row


def errors(jobs: Catalog, job: str | None = None) -> dict[str, dict[str, Any]]:
    """Per-symbol errors and warnings of a job, ``{symbol: {error, stage, interval,
    timestamp}}``, and the symbols its provider refused as unknown, which fills leave out
    (stage ``set aside``)."""
    import polars as pl

    job_id = jobs.find_job(job)
    failed = jobs.progress(job_id).filter(pl.col("status").is_in(["failed", "warning"]))
    found: dict[str, dict[str, Any]] = {
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
    provider = jobs.job(job_id).get("provider")
    for (sym, _), row in jobs.set_aside(provider).items() if provider else ():
        if sym not in found:
            found[sym] = {
                "error": f"{row['error']}; `lake fill --retry-failed` asks again",
                "stage": "set aside",
                "interval": None,
                "timestamp": row["set_at"].isoformat() if row["set_at"] else None,
            }
    return dict(sorted(found.items()))
