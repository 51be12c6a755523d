"""Intake: from a provider's answer to the bars that may be stored, and the ledger rows that
record what was asked and what came back. Pure functions: the scheduler calls them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain import bars as bars_
from barlake.domain.ranges import DateRange, session_runs
from barlake.fetch.job import NOTHING, Fetched
from barlake.providers.base import Request
from barlake.storage.store import latest


def screen(
    request: Request,
    frame: pl.DataFrame,
    windows: Mapping[str, DateRange],
    shift: timedelta,
) -> tuple[pl.DataFrame, dict[str, Fetched], list[tuple[str, str]]]:
    """The bars of ``frame`` that may be stored, per symbol how many and on which session
    days, and (symbol, message) for each symbol whose impossible bars were rejected.

    Only the request's symbols, each inside its own window (``windows``: a pack's range may
    reach past a later listing or a shorter gap), and the latest bar of each (symbol, ts) are
    kept. A frame that does not fit the bar schema raises ``ValidationError``.
    """
    frame = bars_.conform(frame)
    day = (pl.col("ts") + shift).dt.date()
    frame = frame.filter(
        pl.col("symbol").is_in(list(request.symbols))
        & (day >= request.range.start)
        & (day < request.range.end)
    )
    if any(w != request.range for w in windows.values()):
        bounds = pl.DataFrame(
            {
                "symbol": list(windows),
                "_lo": [w.start for w in windows.values()],
                "_hi": [w.end for w in windows.values()],
            }
        )
        frame = (
            frame.join(bounds, on="symbol", how="left")
            .filter((day >= pl.col("_lo")) & (day < pl.col("_hi")))
            .drop("_lo", "_hi")
        )
    frame = latest(frame)
    rejected: list[tuple[str, str]] = []
    bad = bars_.invalid_rows(frame)
    if bad.any():
        flaws = frame.filter(bad).select("symbol", bars_.flaw())
        found = flaws.group_by("symbol").agg(pl.len(), pl.col("flaw").unique().sort())
        for sym, n, kinds in found.iter_rows():
            rejected.append((sym, f"{n} impossible bar(s) rejected ({', '.join(kinds)})"))
        frame = frame.filter(~bad)
    per_symbol = frame.group_by("symbol").agg(pl.len(), day.unique().alias("days"))
    got = {
        sym: Fetched(int(n), days.to_numpy().astype("datetime64[D]"))
        for sym, n, days in zip(
            per_symbol["symbol"], per_symbol["len"], per_symbol["days"], strict=True
        )
    }
    return frame, {s: got.get(s, NOTHING) for s in request.symbols}, rejected


def off_calendar(symbol: str, got: Fetched, calendar: Calendar) -> str | None:
    """A warning when ``got`` has bars on days that are no session of ``calendar`` (a crypto
    pair left on an exchange calendar, say): they are stored all the same, and ``lake check``
    reports them under its timestamp rule."""
    off = np.sort(got.days[~np.isin(got.days, calendar.sessions)])
    if not len(off):
        return None
    days = str(off[0]) if len(off) == 1 else f"{off[0]} to {off[-1]}"
    return (
        f"{len(off)} day(s) with bars outside the {calendar.name} calendar ({days}); set the "
        f"symbol's calendar, e.g. `lake symbols add {symbol} --calendar 24/7` for a crypto pair"
    )


def ledger_rows(
    request: Request,
    symbol: str,
    got: Fetched,
    fetched_at: datetime,
    *,
    window: DateRange,
    calendar: Calendar | None,
    grace: timedelta,
    job_id: str,
) -> list[dict[str, Any]]:
    """What was asked and what came back: the whole ``window`` with its bar count, and each
    run of sessions that came back empty (halts, days before a listing) with 0 bars. Only
    empty final ranges count as covered (``coverage.ledger``); lost bars of a non-empty range
    are gaps. A range is final when its last session had closed, plus ``grace``, at
    ``fetched_at``."""
    closed = calendar.closed_before(fetched_at, grace) if calendar else None
    final = closed is not None and window.last <= closed
    row = {
        "provider": request.provider,
        "symbol": symbol,
        "interval": request.interval,
        "bars": got.bars,
        "fetched_at": fetched_at,
        "final": final,
        "job_id": job_id,
    }
    rows = [{**row, "start_date": window.start, "end_date": window.end}]
    if got.bars == 0 or calendar is None:
        return rows
    sessions = calendar.sessions_in(window)
    if len(got.days) == len(sessions) and np.array_equal(np.sort(got.days), sessions):
        return rows  # a bar on every session
    empty = ~np.isin(sessions, got.days)
    for run in session_runs(sessions, empty):
        rows.append({**row, "bars": 0, "start_date": run.start, "end_date": run.end})
    return rows
