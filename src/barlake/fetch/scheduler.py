"""Running a plan: bounded concurrency, one rate limiter per provider, retries, batched writes.

Workers take requests in plan order and fetch their pages back to back. Every page waits for a
free slot in the provider's rate-limit window. Failures are retried when they are
``retryable``: those that throttle (rate-limit answers) pause the limiter for everyone, the
others back off with jitter; the rest are recorded once per symbol. Bars collect in a buffer
that is written partition file by partition file when it grows large, or when every request of
an interval is done (each daily year file is rewritten once per flush, not once per symbol).
Only after a flush are the ledger and the progress rows of the requests it covered updated, so
the catalog never claims bars that are not durable. A reporter keeps the job row current for
``lake status`` in other processes, and ``on_progress`` hears of every call, wait and save
(``barlake.fetch.progress``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import JobRecorder
from barlake.catalog.schema import LEDGER, PROGRESS_UPDATE
from barlake.clock import Clock, system_clock
from barlake.config import BackfillConfig
from barlake.coverage.finder import Expected, span_of
from barlake.domain import bars as bars_
from barlake.domain.datasets import bar_interval
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange, session_runs
from barlake.domain.resample import RESAMPLED
from barlake.errors import (
    AuthError,
    FileSystemError,
    Interrupted,
    LakeError,
    PermanentError,
    ProviderError,
    UnknownAtProviderError,
)
from barlake.fetch import intake
from barlake.fetch.books import Books
from barlake.fetch.job import (
    WARNING,
    Answer,
    Fetched,
    JobResult,
    ProgressCallback,
    SymbolErrors,
    Unit,
    add_error,
)
from barlake.fetch.pages import Pager
from barlake.fetch.progress import Progress, Waiting
from barlake.fetch.ratelimit import WALL, RateLimiter, Timing
from barlake.fetch.resample import Resampler
from barlake.planning.plan import Plan, PlannedRequest
from barlake.providers.base import Provider, Request
from barlake.universe.tiers import request_tier

REPORT_EVERY_S = 1.0
#: Symbols resampled at once: their finer bars are read together (a few months of 1min bars
#: of this many symbols fit in memory).
RESAMPLE_SYMBOLS = 50
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
        exists: Collection[str] = (),
        resampler: Resampler | None = None,
        timing: Timing = WALL,
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
        self.resampler = resampler
        self.config, self.clock, self.on_progress = config, clock, on_progress
        self.timing = timing
        self.pages = Pager(
            provider,
            limiter,
            config,
            rng or random.Random(),
            timing=timing,
            on_wait=self._waiting,
            on_send=self._sending,
            on_call=self._report,
        )
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
        for r in plan.resampled:
            self.units[(r.gap.symbol, r.gap.interval)].open_requests += 1
        self.bars_written = self.done_requests = 0
        # For the progress reports: calls still expected (each unanswered request's planned
        # pages, corrected as its answers come), what the latest save recorded, and the wait
        # in progress.
        self._calls_left = plan.total_requests
        self._recorded = 0  # bars_written as the latest save recorded it
        self._wait: tuple[str, float] | None = None  # why, and until when (timing's clock)
        # Seconds spent writing bars, and how many: the next plans' estimate of a final write.
        self._write_s, self._write_bars = 0.0, 0
        self._started = timing.clock()
        self.books = Books(
            job_id=job_id,
            provider=plan.provider,
            units=self.units,
            calendars=calendars,
            grace=timedelta(minutes=config.provisional_grace_minutes),
            clock=clock,
            exists=exists,
            trusted=provider.capabilities.refuses_unknown,
        )
        self.errors = self.books.errors
        self.warnings: SymbolErrors = {}
        self._buffer: list[tuple[Interval, pl.DataFrame]] = []
        self._buffered_rows = 0
        self._fetched: list[Answer] = []
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
        if self.plan.resampled and not self._interrupted and self._fatal is None:
            found = [x for x in (ledger, self._resample()) if x is not None]
            ledger = pl.concat(found) if found else None
        status = "failed" if self._fatal else "interrupted" if self._interrupted else "done"
        if status == "done" and any(u.status in ("failed", WARNING) for u in self.units.values()):
            status = "partial"
        if status in ("interrupted", "failed"):
            for u in self.units.values():
                if u.status in ("running", "pending"):
                    u.status, u.dirty = "interrupted", True
        job = {"status": status, "finished_at": self.clock(), **self._counters()}
        self._save(job=job, ledger=ledger)
        self._report(saved=True, done=True)
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
        while not self._interrupted and self._fatal is None:
            try:
                planned = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                async with self._gate(planned.request):
                    await self._serve(planned, queue)
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

    async def _serve(self, planned: PlannedRequest, queue: asyncio.Queue[PlannedRequest]) -> None:
        request = planned.request
        try:
            await self._serve_one(planned, queue)
        finally:
            self._unfinished[request.interval] -= 1
        if self._unfinished[request.interval] == 0 and not self._interrupted:
            self._early.append(asyncio.create_task(self._flush_interval(request.interval)))

    async def _serve_one(
        self, planned: PlannedRequest, queue: asyncio.Queue[PlannedRequest]
    ) -> None:
        request = planned.request
        left = planned.pages  # pages of this request still expected to be sent

        def sent() -> None:  # a page went out: one fewer to come
            nonlocal left
            if left:
                left -= 1
                self._calls_left -= 1

        now = self.clock()
        for s in request.symbols:
            unit = self.units[(s, request.interval)]
            if unit.status == "pending":
                unit.status, unit.started_at, unit.dirty = "running", now, True
        pages: list[pl.DataFrame] = []
        cursor: str | None = None
        try:
            while True:
                page = await self.pages.fetch(request, cursor, sent)
                for s in request.symbols:
                    self.units[(s, request.interval)].requests += 1
                pages.append(page.bars)
                cursor = page.next_cursor
                if cursor is None:  # pages the plan expected but the answer did not need
                    self._calls_left -= left
                    break
                if not left:  # one more page than the plan expected
                    left = 1
                    self._calls_left += 1
                # A provider that computes its pages (demo) never waits: let a background
                # flush get going between them.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            self._keep_whole(request, pages)  # interrupted: the final flush saves them
            raise
        except LakeError as exc:
            self._calls_left -= left  # this request makes no more calls
            left = 0
            if exc.retryable:  # retries ran out in ``_page``
                self._keep_whole(request, pages)
                self.books.fail(request, request.symbols, f"gave up after retries: {exc}", "fetch")
                self._request_closed(request)
                return
            # Refused credentials stop the job (``_worker``); a failure that is not the
            # provider's (a bug, a misuse) fails it loudly.
            if isinstance(exc, AuthError) or not isinstance(exc, ProviderError):
                raise
            self._permanent(request, exc, queue)
            return
        windows = {s: self._window(request, s) for s in request.symbols}
        self._keep(request, _concat(pages), windows, closes=True)
        self._request_closed(request, flushed=False)
        if (
            self._buffered_rows >= self.config.flush_rows
            or time.monotonic() - self._last_flush > FLUSH_EVERY_S
        ):
            await self._flush_now()

    def _keep(
        self,
        request: Request,
        frame: pl.DataFrame,
        windows: dict[str, DateRange],
        *,
        closes: bool,
    ) -> None:
        """Buffer the valid bars of ``frame`` inside ``windows`` and the answer they make."""
        clean, counts = self._validate(request, frame, windows)
        got = {s: counts[s] for s in windows if s in counts}
        self._fetched.append(Answer(request, got, self.clock(), windows, closes))
        if clean.height:
            self._buffer.append((request.interval, clean))
            self._buffered_rows += clean.height

    def _keep_whole(self, request: Request, pages: list[pl.DataFrame]) -> None:
        """Keep what the first ``pages`` of an unfinished request returned whole: symbols
        before the last one they reached, and the sessions of that one before its last."""
        if not pages:
            return
        frame = _concat(pages)
        windows = {s: self._window(request, s) for s in request.symbols}
        whole = intake.reached(request, frame, windows, self._day_shift(request))
        if whole:
            self._keep(request, frame, whole, closes=False)

    def _permanent(
        self, request: Request, exc: ProviderError, queue: asyncio.Queue[PlannedRequest]
    ) -> None:
        """Record a failure retrying will not fix. A permanent error may name its symbol; any
        other answer the vendor gives a pack is tried again symbol by symbol, so one bad symbol
        cannot sink the rest."""
        bad = exc.symbol if isinstance(exc, PermanentError) else None
        if isinstance(exc, UnknownAtProviderError):
            alone = request.symbols[0] if len(request.symbols) == 1 else None
            self.books.set_aside(bad or alone, exc)
        if len(request.symbols) == 1:
            self.books.fail(request, request.symbols, str(exc), "fetch")
            self._request_closed(request)
            return
        if bad:
            self.books.fail(request, [bad], str(exc), "fetch")
            self.units[(bad, request.interval)].open_requests -= 1
        rest = [s for s in request.symbols if s != bad]
        splits = [tuple(rest)] if bad else [(s,) for s in request.symbols]
        for symbols in splits:
            if symbols:
                sub = Request(request.provider, symbols, request.interval, request.range)
                queue.put_nowait(PlannedRequest(sub, 0, 0, 1))
                self._unfinished[request.interval] += 1
                self._calls_left += 1

    def _validate(
        self, request: Request, frame: pl.DataFrame, windows: dict[str, DateRange]
    ) -> tuple[pl.DataFrame, dict[str, Fetched]]:
        """Bars of the request inside ``windows`` that may be stored, and per symbol how many
        and on which session days; impossible bars become symbol errors. A frame that cannot
        be read answers for no symbol."""
        try:
            kept, got, rejected = intake.screen(request, frame, windows, self._day_shift(request))
        except LakeError as exc:
            self.books.fail(request, list(windows), str(exc), "validate")
            return bars_.empty(), {}
        for sym, message in rejected:
            self.books.fail(request, [sym], message, "validate")
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

    def _resample(self) -> pl.DataFrame | None:
        """Build the plan's resampled sessions from the stored finer bars (those this job
        fetched are written by now), write them and return their ledger rows, a batch of
        symbols at a time. A session whose finer bars are still missing (their fetch failed)
        stays a gap, with an error."""
        groups: dict[tuple[Interval, Interval], dict[str, list[DateRange]]] = {}
        for step in self.plan.resampled:
            key = (bar_interval(step.gap.interval), step.source)
            groups.setdefault(key, {}).setdefault(step.gap.symbol, []).append(step.gap.range)
        ledgers: list[pl.DataFrame] = []
        for (interval, fine), ranges in groups.items():
            names = sorted(ranges)
            for i in range(0, len(names), RESAMPLE_SYMBOLS):
                batch = {s: ranges[s] for s in names[i : i + RESAMPLE_SYMBOLS]}
                self._resample_batch(interval, fine, batch)
                ledger = self._flush(*self._take_buffer())
                if ledger is not None:
                    ledgers.append(ledger)
        self._report()
        return pl.concat(ledgers) if ledgers else None

    def _resample_batch(
        self, interval: Interval, fine: Interval, ranges: Mapping[str, list[DateRange]]
    ) -> None:
        """Buffer the ``interval`` bars of the sessions in ``ranges`` (per symbol) that the
        stored ``fine`` bars settle, and the answers they make."""
        assert self.resampler is not None
        now = self.clock()
        calendars = {s: self.calendars[s] for s in ranges}
        spans = {s: span_of(r) for s, r in ranges.items()}
        for s in ranges:
            unit = self.units[(s, interval)]
            unit.open_requests -= len(ranges[s])
            if unit.status == "pending":
                unit.status, unit.started_at, unit.dirty = "running", now, True
        try:
            expected = {s: Expected(calendars[s], w) for s, w in spans.items()}
            settled = self.resampler.settled(fine, expected)
            frame = self.resampler.bars(interval, fine, calendars, span_of(spans.values()))
        except LakeError as exc:
            for s, w in spans.items():
                self.books.fail(Request(RESAMPLED, (s,), interval, w), [s], str(exc), "resample")
            return
        by_symbol = {str(k[0]): v for k, v in frame.partition_by("symbol", as_dict=True).items()}
        for s, runs in ranges.items():
            mine = by_symbol.get(s, frame.clear())
            for whole in runs:
                sessions = calendars[s].sessions_in(whole)
                have = np.isin(sessions, settled.get(s, sessions[:0]))
                for run in session_runs(sessions, have):
                    part = Request(RESAMPLED, (s,), interval, run)
                    self._keep(part, mine, {s: run}, closes=False)
                if not have.all():
                    message = (
                        f"{int((~have).sum())} session(s) not resampled: their {fine} bars are "
                        "missing (their fetch failed); the next fill resamples or fetches them"
                    )
                    self.books.fail(
                        Request(RESAMPLED, (s,), interval, whole), [s], message, "resample"
                    )

    # -- bookkeeping -------------------------------------------------------------------------

    def _request_closed(self, request: Request, *, flushed: bool = True) -> None:
        self.done_requests += 1
        if flushed:
            for s in request.symbols:
                self.units[(s, request.interval)].open_requests -= 1

    def _take_buffer(self) -> tuple[list[tuple[Interval, pl.DataFrame]], list[Answer]]:
        buffer, fetched = self._buffer, self._fetched
        self._buffer, self._fetched, self._buffered_rows = [], [], 0
        self._last_flush = time.monotonic()
        return buffer, fetched

    async def _flush_interval(self, interval: str) -> None:
        """Write the buffered bars of ``interval``, all of whose requests are done, in a thread
        while the workers go on; its ledger rows wait for the next save."""
        buffer = [(i, f) for i, f in self._buffer if i == interval]
        fetched = [a for a in self._fetched if a.request.interval == interval]
        if not buffer and not fetched:
            return
        self._buffer = [(i, f) for i, f in self._buffer if i != interval]
        self._fetched = [a for a in self._fetched if a.request.interval != interval]
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
                self._report(saved=True)

    def _flush(
        self, buffer: list[tuple[Interval, pl.DataFrame]], fetched: list[Answer]
    ) -> pl.DataFrame | None:
        """Write buffered bars and return the ledger rows of the requests they completed; the
        caller saves those with the progress rows once the bars are durable.

        The thread lock keeps flushes apart even when a cancelled worker's flush thread is
        still running while the final flush starts.
        """
        with self._write_lock:
            return self._flush_locked(buffer, fetched)

    def _flush_locked(
        self, buffer: list[tuple[Interval, pl.DataFrame]], fetched: list[Answer]
    ) -> pl.DataFrame | None:
        by_interval: dict[Interval, list[pl.DataFrame]] = {}
        for interval, frame in buffer:
            by_interval.setdefault(interval, []).append(frame)
        written = 0
        started = time.perf_counter()
        try:
            for interval, frames in by_interval.items():
                written += self.sink.write(interval, pl.concat(frames, how="vertical"))
        except LakeError as exc:
            for answer in fetched:
                request = answer.request
                self.books.fail(request, list(answer.windows), str(exc), "write")
                if answer.closes:
                    for s in request.symbols:
                        self.units[(s, request.interval)].open_requests -= 1
            if isinstance(exc, FileSystemError) and self._fatal is None:
                # No other write can succeed either: the workers stop taking requests and
                # the job fails with this one error (this may run in a flush thread).
                self._fatal = exc
            return None
        self.bars_written += written
        if written:
            self._write_s += time.perf_counter() - started
            self._write_bars += written
        ledger = self.books.saved(fetched)
        return pl.DataFrame(ledger, schema=LEDGER) if ledger else None

    def _counters(self) -> dict[str, Any]:
        units = self.units.values()
        latency = self.pages.latency_s
        return {
            "requests_made": self.pages.calls,
            "bars_written": self.bars_written,
            "latency_ms": None if latency is None else round(latency * 1000, 3),
            "write_us_per_bar": (
                round(self._write_s / self._write_bars * 1e6, 4) if self._write_bars else None
            ),
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
            self.recorder.record(
                self.job_id,
                job=job,
                progress=progress,
                ledger=ledger,
                set_aside=self.books.take_aside(),
            )
            if "bars_written" in job:
                self._recorded = job["bars_written"]

    async def _reporter(self) -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            await asyncio.to_thread(self._save, job=self._counters())
            self._report(saved=True)

    # -- progress reports --------------------------------------------------------------------

    def _waiting(self, reason: str, seconds: float) -> None:
        self._wait = (reason, self.timing.clock() + seconds)
        self._report()

    def _sending(self) -> None:
        self._wait = None  # a call goes out: whatever held the job back is over

    def _report(self, *, saved: bool = False, done: bool = False) -> None:
        """Tell ``on_progress`` where the job stands. Bars written are those the latest save
        recorded, so that a report never runs ahead of the catalog; a wait shows until a call
        goes out, with the seconds it has left."""
        if self.on_progress is None:
            return
        now = self.timing.clock()
        calls = self.pages.calls
        waiting = None
        if self._wait is not None and not done:
            waiting = Waiting(self._wait[0], max(0.0, self._wait[1] - now))
        self.on_progress(
            Progress(
                requests=calls,
                requests_expected=calls + (0 if done else max(0, self._calls_left)),
                bars_fetched=self.pages.bars,
                bars_written=self._recorded,
                elapsed_s=max(0.0, now - self._started),
                waiting=waiting,
                limit=self.limiter.limit or None,
                window_s=self.limiter.span,
                saved=saved,
                done=done,
            )
        )

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


def _concat(pages: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(pages, how="vertical") if pages else bars_.empty()
