"""What jobs did: a job's status with its progress counts, and its per-symbol errors."""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from barlake.catalog.repositories import Catalog, JobsRepository
from barlake.liveness import HOST, LEASE

if TYPE_CHECKING:
    from barlake.fetch.job import SymbolErrors


def status(jobs: JobsRepository, job: str | None = None) -> dict[str, Any]:
    """The job row (the latest job when ``job`` is None) with its progress counts."""
    job_id = jobs.find_job(job)
    row = jobs.job(job_id)
    row["progress"], row["records_loaded"] = jobs.progress_counts(job_id)
    return row


class Statuses:
    """``status``, read from the catalog again only when the job can have changed since.

    A service answers the same job's status to every page and script that polls it. Two kinds of
    job cannot change behind this process's back: a finished one (nothing writes its rows again),
    and one this process runs, whose rows only this process writes, so its status stays what was
    read until this process next writes the catalog. Every other job is read each time, and so
    is a job of ours whose last heartbeat is half a lease old (it may be about to read as
    interrupted).
    """

    def __init__(self, jobs: Catalog, keep: int = 256) -> None:
        self._jobs, self._keep = jobs, keep
        self._kept: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def kept(self, job: str) -> dict[str, Any] | None:
        """The status of ``job`` if the one kept is still current (a copy), else None; never
        reads the catalog, so an event loop may call it."""
        with self._lock:
            kept = self._kept.get(job)
        if kept is not None and self._current(*kept):
            return copy.deepcopy(kept[1])
        return None

    def status(self, job: str | None = None) -> dict[str, Any]:
        """As ``status(jobs, job)``; a copy the caller may change."""
        if job is not None and (kept := self.kept(job)) is not None:
            return kept
        writes = self._jobs.writes()  # before the read: a write during it makes it stale
        with self._jobs.session(read_only=True):  # its three reads share one connection
            row = status(self._jobs, job)
        if job is not None and str(row["job_id"]) == job and (_finished(row) or _ours(row)):
            with self._lock:
                self._kept[job] = (writes, copy.deepcopy(row))
                while len(self._kept) > self._keep:
                    self._kept.popitem(last=False)
        return row

    def _current(self, writes: int, row: dict[str, Any]) -> bool:
        if _finished(row):
            return True
        beat = row.get("heartbeat_at") or row["created_at"]
        fresh = datetime.now(UTC) - beat < LEASE / 2
        return _ours(row) and fresh and writes == self._jobs.writes()


def _finished(row: dict[str, Any]) -> bool:
    # The table sets finished_at when a job ends (also when another process records it as
    # interrupted); a running job whose owner is gone only reads as interrupted until then.
    return row.get("finished_at") is not None


def _ours(row: dict[str, Any]) -> bool:
    return row.get("host") == HOST and row.get("pid") == os.getpid()


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
