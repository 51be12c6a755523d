"""A job's bookkeeping: what each request brought, each (symbol, interval)'s progress row,
and the result a fill returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from barlake.domain.ranges import DateRange

# Re-exported: callers type their progress callbacks from here.
from barlake.fetch.progress import Progress as Progress
from barlake.fetch.progress import ProgressCallback as ProgressCallback
from barlake.providers.base import Request

Stage = str  # one of: plan, fetch, validate, write, resample
#: A unit's status once its requests are over: ``done``, ``failed``, or ``warning`` (every
#: session came back empty from a vendor that has not shown the symbol exists).
WARNING = "warning"


_NO_DAYS = np.array([], dtype="datetime64[D]")

#: A job's failures by symbol: one entry ``{error, stage, interval, timestamp}`` per
#: (interval, stage) that failed, so a symbol failing at two intervals shows both.
SymbolErrors = dict[str, list[dict[str, Any]]]


def add_error(errors: SymbolErrors, symbol: str, entry: dict[str, Any]) -> None:
    """Record ``entry`` under ``symbol``, replacing an earlier one of its (interval, stage)."""
    key = _where(entry)
    kept = [e for e in errors.get(symbol, []) if _where(e) != key]
    errors[symbol] = sorted([*kept, entry], key=_where)


def error_rows(errors: SymbolErrors) -> list[dict[str, Any]]:
    """``errors`` as one row per (symbol, interval, stage), as tables show them."""
    return [{"symbol": sym, **e} for sym, entries in errors.items() for e in entries]


def _where(entry: dict[str, Any]) -> tuple[str, str]:
    return str(entry["interval"]), str(entry["stage"])


@dataclass(frozen=True)
class Fetched:
    """What a request brought for one symbol: bars, the session days they fall on with each
    day's count, and the days on which bars were rejected as impossible."""

    bars: int
    days: npt.NDArray[np.datetime64] = field(default_factory=lambda: _NO_DAYS)  # datetime64[D]
    per_day: npt.NDArray[np.int64] = field(default_factory=lambda: np.array([], dtype=np.int64))
    rejected: npt.NDArray[np.datetime64] = field(default_factory=lambda: _NO_DAYS)

    @property
    def answered(self) -> bool:
        """Whether anything came for the symbol, kept or rejected."""
        return self.bars > 0 or self.rejected.size > 0


NOTHING = Fetched(0)


@dataclass(frozen=True)
class Answer:
    """What one request brought, waiting for its bars to be durable before the ledger hears
    of it: per symbol what came, for the symbols it answered for, and the window of sessions
    each symbol's answer covers. ``closes``: the request is over (its symbols have one open
    request less once the answer is saved); an answer kept from an unfinished request does not
    close it."""

    request: Request
    got: dict[str, Fetched]
    at: datetime
    windows: dict[str, DateRange]
    closes: bool = True


@dataclass
class Unit:
    """The work for one (symbol, interval): one progress row."""

    symbol: str
    interval: str
    window: DateRange
    open_requests: int = 0
    records: int = 0
    requests: int = 0
    status: str = "pending"
    error: str | None = None
    stage: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    dirty: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "status": self.status,
            "records_loaded": self.records,
            "error_message": self.error,
            "stage": self.stage,
            "requests": self.requests,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
        }


@dataclass
class JobResult:
    """What a fill did; ``lake fill --json`` prints it."""

    job_id: str
    status: str
    requests_planned: int
    requests: int
    retries: int
    bars_written: int
    symbols: int
    symbols_done: int
    symbols_failed: int
    duration_s: float
    symbol_errors: SymbolErrors = field(default_factory=dict)
    #: What was stored but looks wrong, by symbol: ``{warning, stage, interval, timestamp}``.
    symbol_warnings: SymbolErrors = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    #: Corporate-action requests made and actions received (``backfill.fetch_actions``).
    action_requests: int = 0
    actions: int = 0
    #: Trades requests made (not counted in ``requests``, as action requests are not) and
    #: prints stored.
    trade_requests: int = 0
    trades_written: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "requests_planned": self.requests_planned,
            "requests": self.requests,
            "retries": self.retries,
            "bars_written": self.bars_written,
            "symbols": self.symbols,
            "symbols_done": self.symbols_done,
            "symbols_failed": self.symbols_failed,
            "duration_s": round(self.duration_s, 3),
            "symbol_errors": self.symbol_errors,
            "symbol_warnings": self.symbol_warnings,
            "skipped": self.skipped,
            "action_requests": self.action_requests,
            "actions": self.actions,
            "trade_requests": self.trade_requests,
            "trades_written": self.trades_written,
        }
