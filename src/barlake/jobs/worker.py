"""The worker: claims requests from the queue by priority, plans and runs each one.

An idle worker looks at the queue again every ``worker.poll_s``, or at once when a request is
queued in this process (``DOORBELL``) or, on a PostgreSQL catalog, anywhere (its ``bell``).
Between requests it does the upkeep: claims whose worker is gone go back to the queue, pending
events become requests, and due schedule entries queue theirs. A request is served under the
lake's fill lock (one writer per lake): a fill is planned at claim time and runs through the
scheduler (rate limits, retries, atomic writes, progress rows) as a job of its own; a heartbeat
keeps the claim while it runs. Between requests it also starts the followers of lake.yaml's
``follow:`` selections when their session opens (``barlake.jobs.following``). ``stop()``
(SIGTERM) stops claiming, stops the job in flight (what it fetched is saved), puts its request
back in the queue and stops the followers.

>>> worker = lake.worker(concurrency=4)  # doctest: +SKIP
>>> worker.run(once=True)                # serve what is queued, then return  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import timedelta
from enum import Enum
from typing import Any

from barlake.catalog.repositories import Catalog, Claim, Ending
from barlake.config import WorkerConfig
from barlake.errors import Interrupted, LakeError, LockError
from barlake.fetch.job import Progress, error_rows
from barlake.fetch.runner import Stop
from barlake.jobs.backfill import Backfill, Fenced, RunOptions
from barlake.jobs.following import Following
from barlake.jobs.queue import DOORBELL, Queue, Request
from barlake.jobs.schedule import Schedule
from barlake.liveness import HOST
from barlake.retention.selection import Selection

#: One line of the worker's log: the event name and its fields.
Log = Callable[[str, dict[str, Any]], None]
#: Runs a prune or check request's selection (the fill lock already held) and sums it up.
Task = Callable[[Selection], dict[str, Any]]


class Turn(Enum):
    """What one look at the queue came to."""

    SERVED = "served"
    EMPTY = "empty"
    BUSY = "busy"  # another process holds the lake's fill lock


#: How a request ended: its next state (done, failed, or queued: released), and what to
#: record with it.
Outcome = Ending


_NAMES = itertools.count(1)

#: Seconds of a job between two ``progress`` lines of the worker's log.
PROGRESS_EVERY_S = 30.0


class ProgressLog:
    """A running job's ``progress`` lines in the worker's log: one every ``PROGRESS_EVERY_S``
    seconds of the job, and one when a wait of a second or more starts for another reason
    than the last one logged (the rate limit, a Retry-After, a backoff), so that a quiet
    worker says why it is quiet."""

    def __init__(self, log: Log, request: str) -> None:
        self.log, self.request = log, request
        self._next = PROGRESS_EVERY_S
        self._said: str | None = None

    def __call__(self, p: Progress) -> None:
        wait = p.waiting if p.waiting is not None and p.waiting.seconds >= 1 else None
        news = wait is not None and wait.reason != self._said
        if p.done or not (news or p.elapsed_s >= self._next):
            return
        self._said = wait.reason if wait is not None else None
        self._next = p.elapsed_s + PROGRESS_EVERY_S
        fields: dict[str, Any] = {
            "request": self.request,
            "requests": p.requests,
            "requests_expected": p.requests_expected,
            "bars_written": p.bars_written,
        }
        if p.waiting is not None:
            fields |= {"waiting_for": p.waiting.reason, "wait_s": round(p.waiting.seconds, 1)}
        self.log("progress", fields)


class Worker:
    """Serves one lake's queue until stopped."""

    def __init__(
        self,
        *,
        queue: Queue,
        backfill: Backfill,
        schedule: Schedule,
        prune: Task,
        check: Task,
        config: WorkerConfig,
        name: str | None = None,
        concurrency: int | None = None,
        provider: str | None = None,
        log: Log | None = None,
        following: Following | None = None,
    ) -> None:
        self.queue, self.backfill, self.schedule = queue, backfill, schedule
        self.following = following
        self.tasks = {"prune": prune, "check": check}
        self.config, self.concurrency, self.provider = config, concurrency, provider
        self.name = name or f"{HOST}:{os.getpid()}:{next(_NAMES)}"
        self.log: Log = log or (lambda event, fields: None)
        self.lease = timedelta(seconds=config.lease_s)
        self._stopping = threading.Event()
        self._job_stop: Stop | None = None

    @property
    def catalog(self) -> Catalog:
        return self.queue.catalog

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        """Serve requests until ``stop()`` (with ``once``: until the queue is empty); returns
        how many were served."""
        served, idle = 0, False
        # Requests queued by other processes ring the catalog's bell when it has one (a
        # PostgreSQL catalog); it listens before the first look, so that none is missed.
        bell = None if once else self.catalog.bell()
        if bell is not None:
            bell.listen()
        self.log("started", {"worker": self.name, "provider": self.provider})
        # The worker's own heartbeat in the catalog, so that every process's /health and
        # lake status count it, whatever it is doing (a long request included).
        self.catalog.register_worker(self.name, HOST, os.getpid(), self.provider)
        beating = threading.Event()
        beat = threading.Thread(target=self._beat, args=(beating,), daemon=True, name="worker")
        beat.start()
        try:
            while not self._stopping.is_set():
                rings = DOORBELL.rings()  # a request queued from here on ends the wait below
                self.upkeep()
                if self.following is not None and not once:  # a follower runs all session
                    self.following.tick()
                turn = self.turn()
                if turn is Turn.SERVED:
                    served, idle = served + 1, False
                    continue
                if once and turn is Turn.EMPTY:
                    break
                if not idle:
                    self.log("idle", {"worker": self.name, "waiting_for": turn.value})
                    idle = True
                if bell is not None and turn is Turn.EMPTY and DOORBELL.rings() == rings:
                    bell.wait(self.config.poll_s, self._stopping)
                else:
                    DOORBELL.wait(rings, self.config.poll_s, self._stopping)
        finally:
            if bell is not None:
                bell.close()
            if self.following is not None:
                self.following.stop()
            beating.set()
            beat.join()
            with contextlib.suppress(LakeError):  # else its lease says it is gone
                self.catalog.beat_worker(self.name, stopped=True)
        self.log("stopped", {"worker": self.name, "served": served})
        return served

    def _beat(self, done: threading.Event) -> None:
        every = max(0.05, min(self.config.lease_s / 4, 5.0))
        while not done.wait(every):
            with contextlib.suppress(LakeError):  # busy this once: the lease has room for it
                self.catalog.beat_worker(self.name)

    def stop(self) -> None:
        """Stop claiming, stop the job in flight (thread-safe; what it fetched is saved and its
        request is queued again) and the followers (what they received is saved)."""
        self._stopping.set()
        DOORBELL.wake()
        job = self._job_stop
        if job is not None:
            job()

    def upkeep(self) -> None:
        """Requeue abandoned claims, queue the work of pending events and due schedules."""
        for request_id in self.catalog.requeue_abandoned(self.lease):
            self.log("requeued", {"request": request_id, "reason": "its worker stopped"})
        self.catalog.interrupt_stale()
        for event_id, request in self.queue.from_events():
            self.log(
                "queued",
                {"event": event_id, "request": request.id if request else None, "source": "event"},
            )
        for request in self.schedule.due():
            self.log("queued", {"request": request.id, "source": "schedule", "kind": request.kind})

    def turn(self) -> Turn:
        """Claim the next request and serve it, under the lake's fill lock."""
        with ExitStack() as held:
            try:
                held.enter_context(self.backfill.fill_lock())
            except LockError:
                return Turn.BUSY
            row = self.catalog.claim(self.name, HOST, os.getpid(), provider=self.provider)
            if row is None:
                return Turn.EMPTY
            self.serve(Request.from_row(row))
            return Turn.SERVED

    # -- one request -------------------------------------------------------------------------

    def serve(self, request: Request) -> Outcome:
        """Run one claimed request to its end and record how it ended."""
        self.log(
            "claimed",
            {
                "request": request.id,
                "kind": request.kind,
                "priority": request.priority,
                "attempt": request.attempts,
            },
        )
        stop = self._job_stop = Stop()
        beating = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(request, stop, beating), daemon=True, name="lease"
        )
        beat.start()
        # The job's last record waits in the fence, to commit with the request's end.
        fence = Fenced(self.catalog, Claim(request.id, self.name, request.attempts))
        try:
            outcome = self._outcome(request, stop, fence)
        finally:
            beating.set()
            beat.join()
            self._job_stop = None
        kept = fence.end(outcome)
        event = {"done": "done", "failed": "failed", "queued": "released"}[outcome.state]
        if not kept:  # cancelled, or taken over after the lease ran out
            event = self.queue.get(request.id).state
        fields: dict[str, Any] = {"request": request.id, **(outcome.summary or {})}
        if outcome.error:
            fields["error"] = outcome.error
        self.log(event, fields)
        return outcome

    def _outcome(self, request: Request, stop: Stop, fence: Fenced) -> Outcome:
        try:
            if request.kind == "fill":
                return self._fill(request, stop, fence)
            summary = self.tasks[request.kind](request.to_selection())
            return Outcome("done", summary=summary)
        except Interrupted as exc:  # stopped (the worker's stop, or the request cancelled)
            return Outcome("queued", error=f"stopped with its worker: {exc}")
        except LakeError as exc:
            if exc.retryable and request.attempts < self.config.max_attempts:
                wait = timedelta(seconds=min(300.0, 5.0 * 2 ** (request.attempts - 1)))
                return Outcome("queued", error=str(exc), retry_in=wait)
            return Outcome("failed", error=str(exc))

    def _fill(self, request: Request, stop: Stop, fence: Fenced) -> Outcome:
        plan = self.backfill.plan(request.to_selection())
        options = RunOptions(
            parallel=self.concurrency,
            on_progress=ProgressLog(self.log, request.id),
            command=f"lake worker: request {request.id[:8]}",
        )
        scheduler = self.backfill.start(plan, options, fence=fence)
        self.catalog.attach_job(request.id, scheduler.job_id)
        result = self.backfill.execute(scheduler, stop)
        summary = {
            "job_id": result.job_id,
            "requests": result.requests,
            "bars_written": result.bars_written,
            "symbols_done": result.symbols_done,
            "symbols_failed": result.symbols_failed,
        }
        if result.status == "done":
            return Outcome("done", summary=summary)
        failed = error_rows(result.symbol_errors)
        shown = "; ".join(
            f"{e['symbol']} {e['interval']}: [{e['stage']}] {e['error']}" for e in failed[:3]
        )
        more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
        count = len(result.symbol_errors)
        error = f"{count} symbol(s) failed: {shown}{more}" if failed else result.status
        return Outcome("failed", error=error, summary=summary)

    def _heartbeat(self, request: Request, stop: Stop, done: threading.Event) -> None:
        """Extend the lease while the request runs; stop its job when the claim is lost."""
        every = max(0.05, min(self.config.lease_s / 4, 5.0))
        while not done.wait(every):
            try:
                mine = self.catalog.heartbeat(request.id, self.name, attempt=request.attempts)
            except LockError:
                continue  # the catalog was busy this once; the lease has room for it
            if not mine:
                stop()
                return
