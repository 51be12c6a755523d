"""Intake: from a provider's answer to the bars that may be stored, and the ledger rows that
record what was asked and what came back. Pure functions: the scheduler calls them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain import bars as bars_
from barlake.domain.ranges import DateRange, session_runs, subtract
from barlake.fetch.job import NOTHING, Fetched
from barlake.providers.base import Request
from barlake.storage.store import latest


def screen(
    request: Request,
    frame: pl.DataFrame,
    windows: Mapping[str, DateRange],
    shift: timedelta,
) -> tuple[pl.DataFrame, dict[str, Fetched], list[tuple[str, str]]]:
    """The bars of ``frame`` that may be stored, per symbol how many on which session days
    and the days of its rejected bars, and (symbol, message) for each symbol whose impossible
    bars were rejected.

    Only the symbols of ``windows``, each inside its own window (a pack's range may reach past
    a later listing or a shorter gap), and the latest bar of each (symbol, ts) are kept. A
    frame that does not fit the bar schema raises ``ValidationError``.
    """
    frame = bars_.conform(frame)
    day = (pl.col("ts") + shift).dt.date()
    frame = frame.filter(
        pl.col("symbol").is_in(list(windows))
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
    refused: dict[str, npt.NDArray[np.datetime64]] = {}
    bad = bars_.invalid_rows(frame)
    if bad.any():
        flaws = frame.filter(bad).select("symbol", bars_.flaw(), day.alias("day"))
        found = flaws.group_by("symbol").agg(
            pl.len(), pl.col("flaw").unique().sort(), pl.col("day").unique()
        )
        for sym, n, kinds, days in found.iter_rows():
            rejected.append((sym, f"{n} impossible bar(s) rejected ({', '.join(kinds)})"))
            refused[sym] = _days(days)
        frame = frame.filter(~bad)
    per_day = frame.group_by("symbol", day.alias("day")).len().sort("symbol", "day")
    got = {
        sym: Fetched(int(group["len"].sum()), _days(group["day"]), group["len"].to_numpy())
        for (sym,), group in per_day.group_by("symbol", maintain_order=True)
    }
    for sym, days in refused.items():
        kept = got.get(sym, NOTHING)
        got[sym] = Fetched(kept.bars, kept.days, kept.per_day, days)
    return frame, {s: got.get(s, NOTHING) for s in request.symbols}, rejected


def reached(
    request: Request, frame: pl.DataFrame, windows: Mapping[str, DateRange], shift: timedelta
) -> dict[str, DateRange]:
    """The sessions an unfinished request's first pages (``frame``) returned whole, per symbol
    they reached: pages come in (symbol, ts) order, so every symbol before the last one seen
    is whole, and so is every session of the last one before its last session seen (the next
    page may continue that one). Each symbol's range lies inside its ``windows`` entry."""
    mine = frame.filter(pl.col("symbol").is_in(list(request.symbols)))
    if mine.is_empty():
        return {}
    seen = sorted(set(mine["symbol"].to_list()))
    last = seen[-1]
    upto = mine.filter(pl.col("symbol") == last).select((pl.col("ts") + shift).dt.date().max())
    out = {s: windows[s] for s in seen[:-1]}
    own = windows[last]
    end = min(own.end, upto.item())
    if end > own.start:
        out[last] = DateRange(own.start, end)
    return out


def _days(values: pl.Series | Any) -> npt.NDArray[np.datetime64]:
    return np.sort(pl.Series(values, dtype=pl.Date).to_numpy().astype("datetime64[D]"))


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
    """What was asked and what came back: the ``window`` with its bar count, and each run of
    sessions that came back empty (halts, days before a listing) with 0 bars. Only empty final
    ranges count as covered (``coverage.ledger``); lost bars of a non-empty range are gaps. A
    range is final when its last session had closed, plus ``grace``, at ``fetched_at``.

    Sessions with rejected bars were not returned whole, and sessions still open may change:
    each run of them is a provisional range of its own (fetched again until an answer brings
    them clean and closed), and the window's row is cut around them, so that no final range
    of the same answer settles them.
    """
    closed = calendar.closed_before(fetched_at, grace) if calendar else None
    row = {
        "provider": request.provider,
        "symbol": symbol,
        "interval": request.interval,
        "fetched_at": fetched_at,
        "job_id": job_id,
    }

    def ranged(r: DateRange, bars: int, *, final: bool = True) -> dict[str, Any]:
        final = final and closed is not None and r.last <= closed
        return {**row, "bars": bars, "final": final, "start_date": r.start, "end_date": r.end}

    if calendar is None or not got.answered:
        return [ranged(window, got.bars)]
    sessions = calendar.sessions_in(window)
    refused = np.isin(sessions, got.rejected)
    # Sessions not yet closed (plus grace) are provisional, each run a range of its own: the
    # closed sessions of the same answer stay final, so they are not fetched again.
    late = (
        sessions > np.datetime64(closed, "D")
        if closed is not None
        else np.ones(len(sessions), dtype=bool)
    )
    holes = session_runs(sessions, refused | late)
    rows = [ranged(r, _bars_in(got, r)) for r in subtract([window], holes)]
    rows += [ranged(r, _bars_in(got, r), final=False) for r in holes]
    if len(got.days) == len(sessions) and np.array_equal(got.days, sessions):
        return rows  # a bar on every session
    empty = ~np.isin(sessions, got.days) & ~refused & ~late
    rows += [ranged(run, 0) for run in session_runs(sessions, empty)]
    return rows


def _bars_in(got: Fetched, r: DateRange) -> int:
    lo, hi = np.searchsorted(got.days, [np.datetime64(r.start, "D"), np.datetime64(r.end, "D")])
    return int(got.per_day[lo:hi].sum())
