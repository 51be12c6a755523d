"""The catalog's seams: one protocol per table family, and the unit of work that groups them.

Use cases receive these, never a backend: the embedded DuckDB file (``catalog.embedded``)
implements all of them today. Rows travel as polars frames with the columns of the tables
(``catalog.embedded.MIGRATIONS`` draws them) or as plain dicts for single rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from barlake.domain.events import EventType
from barlake.domain.ranges import DateRange

if TYPE_CHECKING:
    import polars as pl


class UnitOfWork(Protocol):
    """A short block in which several calls share one connection (one transaction when
    writing). Keep it short: other processes wait while it is open."""

    def session(self, *, read_only: bool = False) -> AbstractContextManager[None]: ...


class SymbolsRepository(Protocol):
    def upsert_symbols(self, frame: pl.DataFrame) -> int: ...
    def symbol_rows(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]: ...
    def symbols(
        self, names: Sequence[str] | None = None, *, active_only: bool = False
    ) -> pl.DataFrame: ...
    def remove_symbols(self, names: Sequence[str]) -> int: ...
    def set_layers(self, updates: pl.DataFrame) -> dict[str, int]: ...
    def set_aside(
        self, provider: str | None = None, names: Sequence[str] | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]: ...
    def forget_set_aside(self, names: Sequence[str], provider: str | None = None) -> int: ...


class LedgerRepository(Protocol):
    def ledger(
        self, interval: str, window: DateRange, names: Sequence[str] | None = None
    ) -> pl.DataFrame: ...
    def shown(self, provider: str, names: Sequence[str]) -> set[str]: ...
    def add_ledger(self, frame: pl.DataFrame) -> None: ...
    def trim_ledger(self, interval: str, cutoffs: dict[str, date | None]) -> None: ...


class Measured(NamedTuple):
    """A provider's pace as its latest jobs measured it: seconds from a request to its
    answer, seconds to write a bar (None: no job wrote any), and how many jobs said so."""

    latency_s: float
    write_s_per_bar: float | None
    jobs: int


class Claim(NamedTuple):
    """A worker's claim on a queued request: its id, the worker, and which claim of it this
    is (the request's ``attempts`` when the worker claimed it)."""

    request_id: str
    worker: str
    attempt: int


class Ending(NamedTuple):
    """How a worker ends its claim: the request's next state (``done``, ``failed``, or
    ``queued`` again: released, to be claimed after ``retry_in`` when given), and what to
    record with it."""

    state: str
    error: str | None = None
    summary: dict[str, Any] | None = None
    retry_in: timedelta | None = None


class JobRecorder(Protocol):
    """Where a running job's counters, progress rows, ledger rows and set-aside symbols go, in
    one transaction (with the ``end`` of the ``claim`` it serves, when given: False when that
    claim was no longer held)."""

    def record(
        self,
        job_id: str,
        *,
        job: dict[str, Any] | None = None,
        progress: pl.DataFrame | None = None,
        ledger: pl.DataFrame | None = None,
        set_aside: pl.DataFrame | None = None,
        claim: Claim | None = None,
        end: Ending | None = None,
    ) -> bool: ...


class JobsRepository(JobRecorder, Protocol):
    def create_job(self, job_id: str, progress: pl.DataFrame, **fields: Any) -> None: ...
    def find_job(self, prefix: str | None = None) -> str: ...
    def job(self, job_id: str) -> dict[str, Any]: ...
    def jobs(self, limit: int = 20) -> pl.DataFrame: ...
    def progress(self, job_id: str) -> pl.DataFrame: ...
    def progress_counts(self, job_id: str) -> tuple[dict[str, int], int]: ...
    def interrupt_stale(self) -> int: ...
    def totals(self) -> dict[str, list[dict[str, Any]]]: ...
    def warnings(self, intervals: Sequence[str], names: Sequence[str]) -> list[dict[str, Any]]: ...
    def latency(self, provider: str, jobs: int = 10) -> Measured | None: ...
    def writes(self) -> int: ...


class EventsRepository(Protocol):
    def add_events(self, kind: EventType, payloads: Sequence[dict[str, Any]]) -> int: ...
    def events(self, *, pending: bool = False, limit: int | None = None) -> pl.DataFrame: ...
    def mark_events(self, ids: Sequence[int], job_id: str | None) -> None: ...
    def pending_gap_events(self) -> set[tuple[str, str, str, str]]: ...


class Bell(Protocol):
    """Where an idle worker hears that a request became claimable (in another process)."""

    def listen(self) -> None: ...
    def wait(self, timeout: float, stop: threading.Event) -> bool: ...
    def close(self) -> None: ...


class QueueRepository(Protocol):
    """The durable work queue: backfill requests and when schedules last queued work."""

    def bell(self) -> Bell | None:
        """A bell that rings when any process queues work; None: idle workers poll."""
        ...

    def enqueue(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]: ...
    def requests(self, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    def request(self, prefix: str) -> dict[str, Any]: ...
    def queue_depth(self) -> dict[str, int]: ...
    def claim(
        self, worker: str, host: str, pid: int, *, provider: str | None = None
    ) -> dict[str, Any] | None: ...
    def heartbeat(self, request_id: str, worker: str, *, attempt: int | None = None) -> bool: ...
    def attach_job(self, request_id: str, job_id: str) -> None: ...
    def finish(
        self,
        request_id: str,
        worker: str,
        state: str,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
        retry_in: timedelta | None = None,
        attempt: int | None = None,
    ) -> bool: ...
    def cancel_request(self, request_id: str) -> bool: ...
    def requeue_abandoned(self, lease: timedelta) -> list[str]: ...
    def serve_events(self, served: Sequence[tuple[int, str | None]]) -> None: ...
    def schedule_runs(self) -> dict[str, tuple[datetime, str | None]]: ...
    def record_schedule_run(self, entry: str, at: datetime, key: str | None) -> None: ...
    def register_worker(self, name: str, host: str, pid: int, provider: str | None) -> None: ...
    def beat_worker(self, name: str, *, stopped: bool = False) -> None: ...
    def workers(self, lease: timedelta) -> list[dict[str, Any]]: ...


class FindingsRepository(Protocol):
    def replace_findings(
        self, check_id: str, checked: pl.DataFrame, findings: pl.DataFrame
    ) -> None: ...
    def findings(self) -> pl.DataFrame: ...


class ActionsRepository(Protocol):
    def record_actions(self, rows: pl.DataFrame) -> int: ...
    def action_rows(
        self,
        names: Sequence[str] | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        types: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]: ...


class Catalog(
    UnitOfWork,
    SymbolsRepository,
    LedgerRepository,
    JobsRepository,
    EventsRepository,
    FindingsRepository,
    QueueRepository,
    ActionsRepository,
    Protocol,
):
    """Every repository of one lake's catalog, with its unit of work."""

    def exists(self) -> bool: ...
    def create(self) -> bool: ...
    def verify(self) -> dict[str, str]: ...
    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
