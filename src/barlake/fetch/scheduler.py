"""Running a plan: bounded concurrency, one rate limiter per provider, retries, batched writes.

Workers take requests in plan order and fetch their pages back to back. Every page waits for a
free slot in the provider's rate-limit window. Failures are retried when they are
``retryable``: those that throttle (rate-limit answers) pause the limiter for everyone, the
others back off with jitter; the rest are recorded once per symbol. Bars collect in a buffer
that is written partition file by partition file when it grows large, or when every request of
an interval is done (each daily year file is rewritten once per flush, not once per symbol).
Only after a flush are the ledger and the progress rows of the requests it covered updated, so
the catalog never claims bars that are not durable. A reporter keeps the job row current for
``lake status`` in other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import JobRecorder
from barlake.catalog.schema import LEDGER, PROGRESS_UPDATE
from barlake.clock import Clock, system_clock
from barlake.config import BackfillConfig
from barlake.domain import bars as bars_
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, Interrupted, LakeError, PermanentError, ProviderError
from barlake.fetch import intake
from barlake.fetch.job import (
    NOTHING,
    Fetched,
    JobResult,
    ProgressCallback,
    Stage,
    SymbolErrors,
    Unit,
    add_error,
)
from barlake.fetch.pages import Pager
from barlake.fetch.ratelimit import RateLimiter
from barlake.planning.plan import Plan, PlannedRequest
from barlake.providers.base import Provider, Request
from barlake.universe.tiers import request_tier

REPORT_EVERY_S = 1.0
FLUSH_EVERY_S = 15.0


class BarSink(Protocol):
    """Where fetched bars are written, durably, before the ledger hears of them (``Store``)."""

    def write(self, interval: Interval, frame: pl.DataFrame) -> int: ...


class Scheduler:
    """Runs one plan for one job. Use ``await Scheduler(...).run()``."""

    def __init__(
        self,
        *,
        job_id: str,
        plan: Plan,
        provider: Provider,
        limiter: RateLimiter,
        sink: BarSink,
        recorder: JobRecorder,
        calendars: dict[str, Calendar],
        config: BackfillConfig,
        clock: Clock = system_clock,
        on_progress: ProgressCallback | None = None,
        rng: random.Random | None = None,
        tiers: Mapping[str, str] | None = None,
    ) -> None:
        self.job_id, self.plan, self.provider, self.limiter = job_id, plan, provider, limiter
        # Tiers only gate concurrency: one semaphore per tier, none when tiers are off.
        self._tier_map = dict(tiers or {})
        self._tier_gates = (
            {name: asyncio.Semaphore(t.parallel) for name, t in config.tiers.items()}
            if tiers is not None
            else {}
        )
        self.sink, self.recorder, self.calendars = sink, recorder, calendars
        self.config, self.clock, self.on_progress = config, clock, on_progress
        self.pages = Pager(provider, limiter, config, rng or random.Random())
        self.units: dict[tuple[str, str], Unit] = {}
        for g in plan.gaps:
            unit = self.units.get((g.symbol, g.interval))
            window = (
                g.range
                if unit is None
                else DateRange(
                    min(unit.window.start, g.range.start), max(unit.window.end, g.range.end)
                )
            )
            self.units[(g.symbol, g.interval)] = Unit(g.symbol, g.interval, window)
        # Requests of each interval not finished yet: at 0 its bars are flushed at once, in
        # the background, while the other intervals are still being fetched.
        self._unfinished: Counter[str] = Counter()
        for p in plan.requests:
            self._unfinished[p.request.interval] += 1
            for s in p.request.symbols:
                self.units[(s, p.request.interval)].open_requests += 1
        self.bars_written = self.done_requests = 0
        self.errors: SymbolErrors = {}
        self.warnings: SymbolErrors = {}
        self._buffer: list[tuple[Interval, pl.DataFrame]] = []
        self._buffered_rows = 0
        self._fetched: list[tuple[Request, dict[str, Fetched], datetime]] = []
        self._flush_lock = asyncio.Lock()
        self._catalog_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._workers: list[asyncio.Task[None]] = []
        self._early: list[asyncio.Task[None]] = []  # flushes of finished intervals
        self._ledgers: list[pl.DataFrame] = []  # their ledger rows, saved with the next save
        self._interrupted = False
        self._last_flush = time.monotonic()
        self._fatal: BaseException | None = None

    # -- running -----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop fetching (SIGINT/SIGTERM): workers stop, fetched bars are still saved."""
        self._interrupted = True
        for w in self._workers:
            w.cancel()

    async def run(self) -> JobResult:
        """Run the plan and return its result.

        Raises ``AuthError`` (job failed) or ``Interrupted``, in both cases only after
        everything fetched so far has been written and recorded.
        """
        started = time.monotonic()
        queue: asyncio.Queue[PlannedRequest] = asyncio.Queue()
        for p in self.plan.requests:
            queue.put_nowait(p)
        self._workers = [
            asyncio.create_task(self._worker(queue))
            for _ in range(min(self.config.parallel_symbols, max(1, queue.qsize())))
        ]
        reporter = asyncio.create_task(self._reporter())
        outcomes = await asyncio.gather(*self._workers, return_exceptions=True)
        for outcome in outcomes:
            # Anything a worker did not handle (a bug, a storage failure) fails the job loudly
            # instead of leaving requests silently unrun.
            if isinstance(outcome, Exception) and self._fatal is None:
                self._fatal = outcome
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        for outcome in await asyncio.gather(*self._early, return_exceptions=True):
            if isinstance(outcome, BaseException) and self._fatal is None:
                self._fatal = outcome
        # Synchronous from here: nothing can interrupt the final write and its records.
        ledger = self._flush(*self._take_buffer())
        status = "failed" if self._fatal else "interrupted" if self._interrupted else "done"
        if status == "done" and any(u.status == "failed" for u in self.units.values()):
            status = "partial"
        if status in ("interrupted", "failed"):
            for u in self.units.values():
                if u.status in ("running", "pending"):
                    u.status, u.dirty = "interrupted", True
        job = {"status": status, "finished_at": self.clock(), **self._counters()}
        self._save(job=job, ledger=ledger)
        if self._fatal is not None:
            raise self._fatal
        if self._interrupted:
            msg = (
                f"job {self.job_id} interrupted; {self.bars_written:,} bars were saved. "
                "Run the same fill again to fetch the rest"
            )
            raise Interrupted(msg)
        return self._result(status, time.monotonic() - started)

    async def _worker(self, queue: asyncio.Queue[PlannedRequest]) -> None:
        while not self._interrupted:
            try:
                planned = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                async with self._gate(planned.request):
                    await self._serve(planned.request, queue)
            except AuthError as exc:
                # Credentials are refused for everyone: stop the whole job at once.
                self._fatal = exc
                for w in self._workers:
                    if w is not asyncio.current_task():
                        w.cancel()
                return

    def _gate(self, request: Request) -> AbstractAsyncContextManager[Any]:
        if not self._tier_gates:
            return contextlib.nullcontext()
        tier = request_tier(request.symbols, self._tier_map, self.config.tiers)
        return self._tier_gates.get(tier) or contextlib.nullcontext()

    async def _serve(self, request: Request, queue: asyncio.Queue[PlannedRequest]) -> None:
        try:
            await self._serve_one(request, queue)
        finally:
            self._unfinished[request.interval] -= 1
        if self._unfinished[request.interval] == 0 and not self._interrupted:
            self._early.append(asyncio.create_task(self._flush_interval(request.interval)))

    async def _serve_one(self, request: Request, queue: asyncio.Queue[PlannedRequest]) -> None:
        now = self.clock()
        for s in request.symbols:
            unit = self.units[(s, request.interval)]
            if unit.status == "pending":
                unit.status, unit.started_at, unit.dirty = "running", now, True
        pages: list[pl.DataFrame] = []
        cursor: str | None = None
        try:
            while True:
                page = await self.pages.fetch(request, cursor)
                for s in request.symbols:
                    self.units[(s, request.interval)].requests += 1
                pages.append(page.bars)
                cursor = page.next_cursor
                if cursor is None:
                    break
                # A provider that computes its pages (demo) never waits: let a background
                # flush get going between them.
                await asyncio.sleep(0)
        except LakeError as exc:
            if exc.retryable:  # retries ran out in ``_page``
                self._fail(request, request.symbols, f"gave up after retries: {exc}", "fetch")
                self._request_closed(request)
                return
            # Refused credentials stop the job (``_worker``); a failure that is not the
            # provider's (a bug, a misuse) fails it loudly.
            if isinstance(exc, AuthError) or not isinstance(exc, ProviderError):
                raise
            self._permanent(request, exc, queue)
            return
        frame = pl.concat(pages, how="vertical") if pages else bars_.empty()
        clean, counts = self._validate(request, frame)
        self._fetched.append((request, counts, self.clock()))
        self._request_closed(request, flushed=False)
        if clean.height:
            self._buffer.append((request.interval, clean))
            self._buffered_rows += clean.height
        if (
            self._buffered_rows >= self.config.flush_rows
            or time.monotonic() - self._last_flush > FLUSH_EVERY_S
        ):
            await self._flush_now()

    def _permanent(
        self, request: Request, exc: ProviderError, queue: asyncio.Queue[PlannedRequest]
    ) -> None:
        """Record a failure retrying will not fix. A permanent error may name its symbol; any
        other answer the vendor gives a pack is tried again symbol by symbol, so one bad symbol
        cannot sink the rest."""
        bad = exc.symbol if isinstance(exc, PermanentError) else None
        if len(request.symbols) == 1:
            self._fail(request, request.symbols, str(exc), "fetch")
            self._request_closed(request)
            return
        if bad:
            self._fail(request, [bad], str(exc), "fetch")
            self.units[(bad, request.interval)].open_requests -= 1
        rest = [s for s in request.symbols if s != bad]
        splits = [tuple(rest)] if bad else [(s,) for s in request.symbols]
        for symbols in splits:
            if symbols:
                sub = Request(request.provider, symbols, request.interval, request.range)
                queue.put_nowait(PlannedRequest(sub, 0, 0, 1))
                self._unfinished[request.interval] += 1

    def _validate(
        self, request: Request, frame: pl.DataFrame
    ) -> tuple[pl.DataFrame, dict[str, Fetched]]:
        """Bars of the request that may be stored, and per symbol how many and on which
        session days; impossible bars become symbol errors."""
        windows = {s: self._window(request, s) for s in request.symbols}
        try:
            kept, got, rejected = intake.screen(request, frame, windows, self._day_shift(request))
        except LakeError as exc:
            self._fail(request, request.symbols, str(exc), "validate")
            return bars_.empty(), {}
        for sym, message in rejected:
            self._fail(request, [sym], message, "validate")
        for sym, fetched in got.items():
            self._check_calendar(request, sym, fetched)
        return kept, got

    def _check_calendar(self, request: Request, symbol: str, fetched: Fetched) -> None:
        """Warn when bars came back on days that are no session of the symbol's calendar."""
        cal = self.calendars.get(symbol)
        message = intake.off_calendar(symbol, fetched, cal) if cal else None
        if message is None:
            return
        entry = {
            "warning": message,
            "stage": "validate",
            "interval": request.interval,
            "timestamp": self.clock().isoformat(),
        }
        add_error(self.warnings, symbol, entry)

    def _window(self, request: Request, symbol: str) -> DateRange:
        """The part of ``request``'s range that is ``symbol``'s own to fill."""
        own = self.units[(symbol, request.interval)].window
        start, end = max(own.start, request.range.start), min(own.end, request.range.end)
        return DateRange(start, max(start, end))

    def _day_shift(self, request: Request) -> timedelta:
        if request.interval == "1day":
            return timedelta(0)
        cal = self.calendars.get(request.symbols[0])
        return cal.day_shift if cal else timedelta(0)

    # -- bookkeeping -------------------------------------------------------------------------

    def _fail(self, request: Request, symbols: Any, message: str, stage: Stage) -> None:
        now = self.clock()
        for s in symbols:
            unit = self.units[(s, request.interval)]
            unit.status, unit.error, unit.stage, unit.dirty = "failed", message, stage, True
            unit.completed_at = now
            entry = {
                "error": message,
                "stage": stage,
                "interval": request.interval,
                "timestamp": now.isoformat(),
            }
            add_error(self.errors, s, entry)

    def _request_closed(self, request: Request, *, flushed: bool = True) -> None:
        self.done_requests += 1
        if flushed:
            for s in request.symbols:
                self.units[(s, request.interval)].open_requests -= 1
        if self.on_progress:
            self.on_progress(self.done_requests, len(self.plan.requests), self.bars_written)

    def _take_buffer(self) -> tuple[list[tuple[Interval, pl.DataFrame]], list[Any]]:
        buffer, fetched = self._buffer, self._fetched
        self._buffer, self._fetched, self._buffered_rows = [], [], 0
        self._last_flush = time.monotonic()
        return buffer, fetched

    async def _flush_interval(self, interval: str) -> None:
        """Write the buffered bars of ``interval``, all of whose requests are done, in a thread
        while the workers go on; its ledger rows wait for the next save."""
        buffer = [(i, f) for i, f in self._buffer if i == interval]
        fetched = [x for x in self._fetched if x[0].interval == interval]
        if not buffer and not fetched:
            return
        self._buffer = [(i, f) for i, f in self._buffer if i != interval]
        self._fetched = [x for x in self._fetched if x[0].interval != interval]
        self._buffered_rows -= sum(f.height for _, f in buffer)
        ledger = await asyncio.to_thread(self._flush, buffer, fetched)
        if ledger is not None:
            with self._catalog_lock:  # a save in a thread may be taking them
                self._ledgers.append(ledger)

    async def _flush_now(self) -> None:
        # The asyncio lock makes workers wait while a flush runs (memory stays bounded).
        async with self._flush_lock:
            buffer, fetched = self._take_buffer()
            if buffer or fetched:
                ledger = await asyncio.to_thread(self._flush, buffer, fetched)
                await asyncio.to_thread(self._save, job=self._counters(), ledger=ledger)

    def _flush(
        self, buffer: list[tuple[Interval, pl.DataFrame]], fetched: list[Any]
    ) -> pl.DataFrame | None:
        """Write buffered bars and return the ledger rows of the requests they completed; the
        caller saves those with the progress rows once the bars are durable.

        The thread lock keeps flushes apart even when a cancelled worker's flush thread is
        still running while the final flush starts.
        """
        with self._write_lock:
            return self._flush_locked(buffer, fetched)

    def _flush_locked(
        self, buffer: list[tuple[Interval, pl.DataFrame]], fetched: list[Any]
    ) -> pl.DataFrame | None:
        by_interval: dict[Interval, list[pl.DataFrame]] = {}
        for interval, frame in buffer:
            by_interval.setdefault(interval, []).append(frame)
        written = 0
        try:
            for interval, frames in by_interval.items():
                written += self.sink.write(interval, pl.concat(frames, how="vertical"))
        except LakeError as exc:
            for request, _, _ in fetched:
                self._fail(request, list(request.symbols), str(exc), "write")
                for s in request.symbols:
                    self.units[(s, request.interval)].open_requests -= 1
            return None
        self.bars_written += written
        ledger = []
        for request, counts, fetched_at in fetched:
            for s in request.symbols:
                unit = self.units[(s, request.interval)]
                unit.open_requests -= 1
                if unit.status == "failed":
                    continue
                got = counts.get(s, NOTHING)
                unit.records += got.bars
                unit.dirty = True
                ledger += self._ledger_rows(request, s, got, fetched_at)
                if unit.open_requests <= 0:
                    unit.status, unit.completed_at = "done", fetched_at
        return pl.DataFrame(ledger, schema=LEDGER) if ledger else None

    def _ledger_rows(
        self, request: Request, symbol: str, got: Fetched, fetched_at: datetime
    ) -> list[dict[str, Any]]:
        grace = timedelta(minutes=self.config.provisional_grace_minutes)
        return intake.ledger_rows(
            request,
            symbol,
            got,
            fetched_at,
            window=self._window(request, symbol),
            calendar=self.calendars.get(symbol),
            grace=grace,
            job_id=self.job_id,
        )

    def _counters(self) -> dict[str, Any]:
        units = self.units.values()
        return {
            "requests_made": self.pages.calls,
            "bars_written": self.bars_written,
            "symbols_done": len({u.symbol for u in units if u.status == "done"}),
            "symbols_failed": len({u.symbol for u in units if u.status == "failed"}),
            "heartbeat_at": datetime.now(UTC),  # liveness is wall time, whatever the lake clock
        }

    def _save(self, *, job: dict[str, Any], ledger: pl.DataFrame | None = None) -> None:
        with self._catalog_lock:
            early, self._ledgers = self._ledgers, []
            parts = [x for x in (*early, ledger) if x is not None]
            ledger = pl.concat(parts) if parts else None
            dirty = [u for u in self.units.values() if u.dirty]
            for u in dirty:
                u.dirty = False
            progress = (
                pl.DataFrame([u.row() for u in dirty], schema=PROGRESS_UPDATE) if dirty else None
            )
            self.recorder.record(self.job_id, job=job, progress=progress, ledger=ledger)

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            await asyncio.to_thread(self._save, job=self._counters())

    def _result(self, status: str, duration: float) -> JobResult:
        units = self.units.values()
        return JobResult(
            job_id=self.job_id,
            status=status,
            requests_planned=len(self.plan.requests),
            requests=self.pages.calls,
            retries=self.pages.retries,
            bars_written=self.bars_written,
            symbols=len({u.symbol for u in units}),
            symbols_done=len({u.symbol for u in units if u.status == "done"}),
            symbols_failed=len({u.symbol for u in units if u.status == "failed"}),
            duration_s=duration,
            symbol_errors=dict(sorted(self.errors.items())),
            symbol_warnings=dict(sorted(self.warnings.items())),
            skipped=[s.to_dict() for s in self.plan.skipped],
        )
