"""The trades phase of a fill: before the bars (the job stays running until both are done), the
plan's trade requests run through the same provider and rate limiter, ``parallel`` at a time,
and each request's outcome is recorded as it ends: its progress rows (``data_type = trades``)
and its ledger ranges, in one transaction; the job's status and counters once the bars are in.

The ledger gets, per symbol, the range asked with the prints stored (final once every session
of it had closed when it was fetched; else provisional, so the session in progress is fetched
again) and each run of sessions that came back without prints (final: covered without a file,
as halted days are for bars). A vendor that answers nothing for a symbol it does not know
(``Capabilities.refuses_unknown`` False) covers no session of a symbol it answered nothing
for: that is a warning about the symbol, not proof that it did not trade.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import JobRecorder
from barlake.catalog.schema import LEDGER, PROGRESS_UPDATE
from barlake.clock import Clock
from barlake.domain.datasets import TRADES
from barlake.domain.ranges import DateRange, session_runs
from barlake.fetch.job import JobResult, SymbolErrors, Unit, add_error
from barlake.fetch.ratelimit import RateLimiter
from barlake.fetch.runner import Stop, run_blocking
from barlake.fetch.trades import Fetched, TradeFetcher
from barlake.planning.trades import TradeRequest
from barlake.providers.base import Provider
from barlake.storage.trades import TradeStore


class Started(Protocol):
    """What the trades phase needs of a started job (``fetch.scheduler.Scheduler``)."""

    @property
    def job_id(self) -> str: ...
    @property
    def provider(self) -> Provider: ...
    @property
    def limiter(self) -> RateLimiter: ...
    @property
    def calendars(self) -> Mapping[str, Calendar]: ...
    @property
    def units(self) -> dict[tuple[str, str], Unit]: ...


@dataclass
class TradeTotals:
    """What a job's trades phase did, to add to its result once the bars are done."""

    requests: int = 0
    prints: int = 0
    errors: SymbolErrors = field(default_factory=dict)

    def apply(self, result: JobResult, job: Started, recorder: JobRecorder) -> None:
        """Add these to ``result`` (and to the job's row): requests, prints, errors, and the
        status (``partial`` when a symbol's trades failed)."""
        if not (self.requests or self.prints or self.errors):
            return
        result.trade_requests += self.requests
        result.trades_written += self.prints
        for sym, entries in self.errors.items():
            for entry in entries:
                add_error(result.symbol_errors, sym, entry)
        failed = {s for (s, _), u in job.units.items() if u.status == "failed"}
        if self.errors and result.status == "done":
            result.status = "partial"
        result.symbols_failed = len(failed)
        recorder.record(job.job_id, job={"status": result.status, "symbols_failed": len(failed)})


def run_trades(
    requests: Sequence[TradeRequest],
    job: Started,
    store: TradeStore,
    recorder: JobRecorder,
    clock: Clock,
    *,
    parallel: int,
    stop: Stop | None = None,
) -> TradeTotals:
    """Run ``requests`` for the started ``job``, ``parallel`` at a time, recording each
    request's outcome (progress and ledger rows) as it ends."""
    totals = TradeTotals()
    if not requests:
        return totals
    fetcher = TradeFetcher(job.provider, store, job.limiter, job.calendars)
    refuses = job.provider.capabilities.refuses_unknown
    stamp = clock().isoformat()

    async def main() -> None:
        gate = asyncio.Semaphore(max(1, parallel))

        async def one(request: TradeRequest) -> None:
            async with gate:
                if stop is not None and stop.asked:
                    return
                started = clock()
                for sym in request.symbols:
                    unit = job.units.get((sym, TRADES))
                    if unit is not None and unit.status == "pending":
                        unit.status, unit.started_at = "running", started
                got = await fetcher.fetch(request)
                now = clock()
                rows = _ledger(job, request, got, now, refuses=refuses)
                progress = _progress(job, request, got, now)
                totals.requests += got.requests
                totals.prints += sum(got.prints.values())
                for sym, (error, stage) in sorted(got.errors.items()):
                    entry = {"error": error, "stage": stage, "interval": TRADES, "timestamp": stamp}
                    add_error(totals.errors, sym, entry)
                await asyncio.to_thread(recorder.record, job.job_id, progress=progress, ledger=rows)

        try:
            await asyncio.gather(*(one(r) for r in requests))
        finally:
            await job.provider.aclose()  # its connections belong to this event loop

    run_blocking(main)
    return totals


def _ledger(
    job: Started, request: TradeRequest, got: Fetched, now: datetime, *, refuses: bool
) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    provider = job.provider.name

    def row(sym: str, window: DateRange, prints: int, *, final: bool) -> dict[str, Any]:
        return {
            "provider": provider,
            "symbol": sym,
            "interval": TRADES,
            "start_date": window.start,
            "end_date": window.end,
            "bars": prints,
            "fetched_at": now,
            "final": final,
            "job_id": job.job_id,
        }

    for sym in request.symbols:
        if got.errors.get(sym, ("", ""))[1] == "fetch":
            continue
        cal = job.calendars[sym]
        closed = cal.closed_before(now)
        final = closed is not None and closed >= request.range.last
        rows.append(row(sym, request.range, got.prints.get(sym, 0), final=final))
        empty = got.empty.get(sym, [])
        if not empty or not (refuses or got.prints.get(sym, 0) > 0):
            continue
        sessions = cal.sessions_in(request.range)
        none = set(empty)
        mask = np.array([date.fromisoformat(str(d)) in none for d in sessions], dtype=np.bool_)
        for run in session_runs(sessions, mask):
            if closed is not None and closed >= run.last:
                rows.append(row(sym, run, 0, final=True))
    return pl.DataFrame(rows, schema=LEDGER)


def _progress(job: Started, request: TradeRequest, got: Fetched, now: datetime) -> pl.DataFrame:
    out = []
    for sym in request.symbols:
        unit = job.units.get((sym, TRADES))
        if unit is None:
            unit = job.units[(sym, TRADES)] = Unit(sym, TRADES, request.range)
        unit.records += got.prints.get(sym, 0)
        unit.requests += got.requests
        error = got.errors.get(sym)
        if error is not None:
            unit.status, unit.error, unit.stage = "failed", error[0], error[1]
        elif unit.status != "failed":
            unit.status = "done"
        unit.completed_at = now
        out.append(unit.row())
    return pl.DataFrame(out, schema=PROGRESS_UPDATE)
