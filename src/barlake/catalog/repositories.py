"""The catalog's seams: one protocol per table family, and the unit of work that groups them.

Use cases receive these, never a backend: the embedded DuckDB file (``catalog.embedded``)
implements all of them today. Rows travel as polars frames with the columns of the tables
(``catalog.embedded.MIGRATIONS`` draws them) or as plain dicts for single rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

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


class LedgerRepository(Protocol):
    def ledger(
        self, interval: str, window: DateRange, names: Sequence[str] | None = None
    ) -> pl.DataFrame: ...
    def add_ledger(self, frame: pl.DataFrame) -> None: ...
    def trim_ledger(self, interval: str, cutoffs: dict[str, date | None]) -> None: ...


class JobRecorder(Protocol):
    """Where a running job's counters, progress rows and ledger rows go, in one transaction."""

    def record(
        self,
        job_id: str,
        *,
        job: dict[str, Any] | None = None,
        progress: pl.DataFrame | None = None,
        ledger: pl.DataFrame | None = None,
    ) -> None: ...


class JobsRepository(JobRecorder, Protocol):
    def create_job(self, job_id: str, progress: pl.DataFrame, **fields: Any) -> None: ...
    def find_job(self, prefix: str | None = None) -> str: ...
    def job(self, job_id: str) -> dict[str, Any]: ...
    def jobs(self, limit: int = 20) -> pl.DataFrame: ...
    def progress(self, job_id: str) -> pl.DataFrame: ...
    def progress_counts(self, job_id: str) -> tuple[dict[str, int], int]: ...
    def interrupt_stale(self) -> int: ...
    def totals(self) -> dict[str, list[dict[str, Any]]]: ...


class EventsRepository(Protocol):
    def add_events(self, kind: EventType, payloads: Sequence[dict[str, Any]]) -> int: ...
    def events(self, *, pending: bool = False, limit: int | None = None) -> pl.DataFrame: ...
    def mark_events(self, ids: Sequence[int], job_id: str | None) -> None: ...
    def pending_gap_events(self) -> set[tuple[str, str, str, str]]: ...


class FindingsRepository(Protocol):
    def replace_findings(
        self, check_id: str, checked: pl.DataFrame, findings: pl.DataFrame
    ) -> None: ...
    def findings(self) -> pl.DataFrame: ...


class Catalog(
    UnitOfWork,
    SymbolsRepository,
    LedgerRepository,
    JobsRepository,
    EventsRepository,
    FindingsRepository,
    Protocol,
):
    """Every repository of one lake's catalog, with its unit of work."""

    def meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...
