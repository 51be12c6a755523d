"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from barlake.catalog.repositories import Catalog, JobsRepository

if TYPE_CHECKING:
    from barlake.fetch.job import SymbolErrors


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    row["progress"], row["records_loaded"] = jobs.progress_counts(job_id)
    return row


def errors(jobs: Catalog, job: str | None = None) -> SymbolErrors:
    """A job's errors and warnings by symbol, as its result has them
    (``JobResult.symbol_errors``): ``{symbol: [{error, stage, interval, timestamp}, ...]}``,
    one per failed (interval, stage); and the symbols its provider refused as unknown, which
    fills leave out (stage ``set aside``)."""
    import polars as pl

    from barlake.fetch.job import add_error

    job_id = jobs.find_job(job)
    failed = jobs.progress(job_id).filter(pl.col("status").is_in(["failed", "warning"]))
    out: SymbolErrors = {}
    for sym, err, stage, interval, ts in failed.select(
        "symbol", "error_message", "stage", "interval", "completed_at"
    ).iter_rows():
        entry = {"error": err, "stage": stage, "interval": interval}
        add_error(out, sym, {**entry, "timestamp": ts.isoformat() if ts else None})
    provider = jobs.job(job_id).get("provider")
    for (sym, _), row in jobs.set_aside(provider).items() if provider else ():
        if sym not in out:
            entry = {
                "error": f"{row['error']}; `lake fill --retry-failed` asks again",
                "stage": "set aside",
                "interval": None,
                "timestamp": row["set_at"].isoformat() if row["set_at"] else None,
            }
            add_error(out, sym, entry)
    return dict(sorted(out.items()))
