"""A job's books: each (symbol, interval)'s unit, the per-symbol errors and warnings, the
symbols the provider refused as unknown, and the ledger rows of the answers once saved."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.schema import SET_ASIDE
from barlake.clock import Clock
from barlake.domain.ranges import DateRange
from barlake.domain.resample import RESAMPLED
from barlake.errors import ProviderError
from barlake.fetch import intake
from barlake.fetch.job import WARNING, Answer, Fetched, Stage, SymbolErrors, Unit, add_error
from barlake.providers.base import Request


class Books:
    """What one job has done so far, symbol by symbol; the scheduler saves it."""

    def __init__(
        self,
        *,
        job_id: str,
        provider: str,
        units: dict[tuple[str, str], Unit],
        calendars: dict[str, Calendar],
        grace: timedelta,
        clock: Clock,
        exists: Collection[str] = (),
        trusted: bool = False,
    ) -> None:
        self.job_id, self.provider, self.units = job_id, provider, units
        self.calendars, self.grace, self.clock = calendars, grace, clock
        self.errors: SymbolErrors = {}
        #: Symbols the provider has shown bars of (before this job, or in it): an empty answer
        #: for one of them is evidence that it did not trade. ``trusted``: the provider refuses
        #: unknown symbols, so every empty answer of it is.
        self.exists: set[str] = set(exists)
        self.trusted = trusted
        self._aside: list[dict[str, Any]] = []

    def fail(self, request: Request, symbols: Iterable[str], message: str, stage: Stage) -> None:
        self.note(request, symbols, message, stage, "failed")

    def note(
        self, request: Request, symbols: Iterable[str], message: str, stage: Stage, status: str
    ) -> None:
        now = self.clock()
        for s in symbols:
            unit = self.units[(s, request.interval)]
            unit.status, unit.error, unit.stage, unit.dirty = status, message, stage, True
            unit.completed_at = now
            entry = {
                "error": message,
                "stage": stage,
                "interval": request.interval,
                "timestamp": now.isoformat(),
            }
            add_error(self.errors, s, entry)

    def set_aside(self, symbol: str | None, exc: ProviderError) -> None:
        """Remember that the provider does not know ``symbol``: fills leave it out until asked
        to retry it."""
        if symbol is not None:
            row = {"symbol": symbol, "provider": self.provider, "error": str(exc)}
            self._aside.append({**row, "job_id": self.job_id, "set_at": self.clock()})

    def take_aside(self) -> pl.DataFrame | None:
        """The set-aside symbols not saved yet, as rows of the ``set_aside`` table."""
        aside, self._aside = self._aside, []
        return pl.DataFrame(aside, schema=SET_ASIDE) if aside else None

    def saved(self, answers: list[Answer]) -> list[dict[str, Any]]:
        """Count answers whose bars are now durable against their units; their ledger rows."""
        for answer in answers:
            self.exists.update(s for s, got in answer.got.items() if got.answered)
        rows: list[dict[str, Any]] = []
        for answer in answers:
            rows += self._answered(answer)
        return rows

    def _answered(self, answer: Answer) -> list[dict[str, Any]]:
        """A symbol of which nothing came is covered only when the provider has shown that it
        exists; otherwise it gets a warning and nothing is recorded, so the next fill asks
        again."""
        request, rows = answer.request, []
        for s in request.symbols:
            unit = self.units[(s, request.interval)]
            if answer.closes:
                unit.open_requests -= 1
            got = answer.got.get(s)
            # Resampled sessions are settled at the finer interval: empty there, empty here.
            trusted = self.trusted or s in self.exists or request.provider == RESAMPLED
            if got is not None and not got.answered and not trusted:
                self._warn(request, s, answer.windows[s])
            elif got is not None:
                unit.records += got.bars
                unit.dirty = True
                rows += self._ledger_rows(request, s, got, answer.at, answer.windows[s])
            if unit.open_requests <= 0 and unit.status == "running":
                unit.status, unit.completed_at, unit.dirty = "done", answer.at, True
        return rows

    def _warn(self, request: Request, symbol: str, window: DateRange) -> None:
        if self.units[(symbol, request.interval)].status == "failed":
            return
        message = (
            f"{request.provider} answered no {request.interval} bars for any session of "
            f"{window}, and has never shown bars of {symbol}: it may not know the symbol (a "
            "typo, a wrong feed or a missing entitlement); nothing was recorded as covered. "
            "If it lists later, set --listed-on"
        )
        self.note(request, [symbol], message, "fetch", WARNING)

    def _ledger_rows(
        self, request: Request, symbol: str, got: Fetched, fetched_at: datetime, window: DateRange
    ) -> list[dict[str, Any]]:
        return intake.ledger_rows(
            request,
            symbol,
            got,
            fetched_at,
            window=window,
            calendar=self.calendars.get(symbol),
            grace=self.grace,
            job_id=self.job_id,
        )
