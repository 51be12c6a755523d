"""Exchange calendars: which sessions exist, and when each one opens and closes.

Backed by the ``exchange_calendars`` library (real holidays, early closes, DST); crypto trades on
the ``24/7`` calendar. A session is keyed by its date; its open and close are UTC instants.
"""

from __future__ import annotations

import os
import warnings
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from importlib import metadata
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import polars as pl

from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.domain.resample import Period
from barlake.errors import UsageError

DEFAULT_CALENDAR = "XNYS"
CRYPTO_CALENDAR = "24/7"
_FIRST_YEAR = "1990-01-01"
_EPOCH = date(1970, 1, 1)

Days = npt.NDArray[np.datetime64]


@dataclass(frozen=True, eq=False)
class Calendar:
    """The sessions of one exchange, as sorted numpy arrays for fast range queries."""

    name: str
    tz: str
    sessions: Days  # datetime64[D], sorted
    opens: npt.NDArray[np.int64]  # epoch microseconds, UTC
    closes: npt.NDArray[np.int64]  # epoch microseconds, UTC

    @property
    def day_shift(self) -> timedelta:
        """What to add to a bar's UTC start so that its UTC date is its session's date.

        The exchange's standard UTC offset does it for every real exchange, whose sessions
        never straddle local midnight; crypto's 24/7 sessions are UTC days.
        """
        offset = datetime(2001, 1, 15, 12, tzinfo=ZoneInfo(self.tz)).utcoffset()
        return offset or timedelta(0)

    # Python lists for ``bisect``: a gap query asks for thousands of symbols' windows one at a
    # time, and numpy's per-call overhead would dominate it.
    @cached_property
    def _day_numbers(self) -> list[int]:
        """Session dates as days since 1970-01-01."""
        return self.sessions.astype("datetime64[D]").astype(np.int64).tolist()  # type: ignore[no-any-return]

    @cached_property
    def _open_list(self) -> list[int]:
        return self.opens.tolist()  # type: ignore[no-any-return]

    @cached_property
    def _close_list(self) -> list[int]:
        return self.closes.tolist()  # type: ignore[no-any-return]

    def _bounds(self, window: DateRange) -> tuple[int, int]:
        days = self._day_numbers
        lo = (window.start - _EPOCH).days
        hi = (window.end - _EPOCH).days
        if lo < days[0] or hi > days[-1] + 1:
            msg = (
                f"{window} is outside the {self.name} calendar "
                f"({self.sessions[0]}..{self.sessions[-1]}); choose dates inside it"
            )
            raise UsageError(msg)
        return bisect_left(days, lo), bisect_left(days, hi)

    def sessions_in(self, window: DateRange) -> Days:
        """The session dates inside ``window``, sorted."""
        i, j = self._bounds(window)
        return self.sessions[i:j]

    def session_count(self, window: DateRange) -> int:
        i, j = self._bounds(window)
        return j - i

    def open_close(self, session: date) -> tuple[datetime, datetime]:
        """The UTC open and close of ``session`` (early closes included)."""
        i = int(np.searchsorted(self.sessions, np.datetime64(session, "D")))
        if i >= len(self.sessions) or self.sessions[i] != np.datetime64(session, "D"):
            msg = f"{session} is not a {self.name} session"
            raise UsageError(msg)
        return _utc(int(self.opens[i])), _utc(int(self.closes[i]))

    def first_bar(self, session: date, interval: Interval) -> datetime:
        """Where the first bar of ``session`` starts on ``interval``'s clock grid: the open,
        or the grid point before it (Alpaca's and Polygon's 09:00 hour of a 09:30 open)."""
        opened = self.open_close(session)[0]
        if not spec(interval).intraday:
            return opened
        step = spec(interval).seconds * 1_000_000
        micros = int((opened - _utc(0)).total_seconds()) * 1_000_000
        return _utc(_clock_floor(micros, step, self._shift_us))

    def bars_in_session(self, session: date, interval: Interval) -> int:
        """How many bars of ``interval`` a full session has (1 for daily bars): those of the
        clock grid that overlap its open..close, the first one perhaps starting before the
        open. A grid from the open (Yahoo's 09:30 hours) has as many on every calendar whose
        opens and closes lie on the half hour."""
        self.open_close(session)  # a UsageError for a day that is no session
        i = int(np.searchsorted(self.sessions, np.datetime64(session, "D")))
        return int(self.bar_counts(i, i + 1, interval)[0])

    def bar_counts(self, i: int, j: int, interval: Interval) -> npt.NDArray[np.int64]:
        """``bars_in_session`` of the sessions at indices ``i`` to ``j`` (exclusive), at once."""
        s = spec(interval)
        if not s.intraday:
            return np.ones(max(0, j - i), dtype=np.int64)
        step = s.seconds * 1_000_000
        first = _clock_floor(self.opens[i:j], step, self._shift_us)
        counts: npt.NDArray[np.int64] = -((first - self.closes[i:j]) // step)
        return counts

    def bar_sessions(self, ts: pl.Series) -> pl.DataFrame:
        """For each bar start of ``ts`` (UTC), the open and close (epoch microseconds) of the
        session on its date in exchange time: columns ``open`` and ``close``, null where that
        date is no session (or the start is null). Rows line up with ``ts``."""
        days = (ts + self.day_shift).dt.date()
        known = days.drop_nulls()
        if known.is_empty():
            return pl.DataFrame(
                {"open": [None] * len(ts), "close": [None] * len(ts)},
                schema={"open": pl.Int64, "close": pl.Int64},
            )
        lo = np.datetime64(str(known.min()), "D")
        hi = np.datetime64(str(known.max()), "D") + 1
        i, j = np.searchsorted(self.sessions, [lo, hi])
        table = pl.DataFrame(
            {
                "day": pl.Series(self.sessions[i:j].astype("datetime64[D]")).cast(pl.Date),
                "open": self.opens[i:j],
                "close": self.closes[i:j],
            }
        )
        return pl.DataFrame({"day": days}).join(table, on="day", how="left").drop("day")

    @cached_property
    def _shift_us(self) -> int:
        return self.day_shift // timedelta(microseconds=1)

    @cached_property
    def week_start(self) -> int:
        """The weekday (0 Monday .. 6 Sunday) the exchange's week starts on: the one its
        sessions most often resume on after two or more days without one. Monday for XNYS
        (a holiday Monday does not move it), Sunday for a Sunday-to-Thursday exchange, Monday
        for 24/7 trading, which has no weekend."""
        days = self.sessions.astype("datetime64[D]").astype(np.int64)
        resumed = days[1:][np.diff(days) >= 2]
        if not len(resumed):
            return 0
        weekday = (resumed + 3) % 7  # 1970-01-01 was a Thursday
        return int(np.bincount(weekday, minlength=7).argmax())

    def period_firsts(self, period: Period) -> pl.DataFrame:
        """Each exchange week or calendar month (``period``) of the calendar, keyed by its first
        day (``period_key``), with its first session: columns ``key`` and ``first``, dates."""
        days = pl.Series("first", self.sessions.astype("datetime64[D]")).cast(pl.Date)
        return (
            pl.DataFrame([days])
            .group_by(period_key(pl.col("first"), period, self.week_start).alias("key"))
            .agg(pl.col("first").min())
            .sort("key")
        )

    def closed_before(self, now: datetime, grace: timedelta = timedelta(0)) -> date | None:
        """The last session whose close plus ``grace`` is at or before ``now``."""
        cutoff = int((now - grace).timestamp() * 1_000_000)
        i = bisect_right(self._close_list, cutoff)
        return None if i == 0 else _EPOCH + timedelta(days=self._day_numbers[i - 1])

    def opened_before(self, now: datetime) -> date | None:
        """The last session that has opened by ``now`` (it may still be trading)."""
        i = bisect_right(self._open_list, int(now.timestamp() * 1_000_000))
        return None if i == 0 else _EPOCH + timedelta(days=self._day_numbers[i - 1])


def in_session(start: pl.Expr, step_us: int, opened: pl.Expr, closed: pl.Expr) -> pl.Expr:
    """Whether a bar starting at ``start`` (epoch microseconds) and ``step_us`` long belongs to
    the session ``opened``..``closed``: whether the two overlap. The lake's one rule for bars
    that start before the open: kept, stamped as the vendor stamps them (a 09:00 hour holds the
    session's first half hour); a bar starting at the close or ending by the open is not."""
    return (start < closed) & (start + step_us > opened)


def on_clock_grid(start: pl.Expr, step_us: int, shift_us: int) -> pl.Expr:
    """Whether bar starts (epoch microseconds) lie on the exchange's wall-clock grid of
    ``step_us`` (``Calendar.day_shift`` in microseconds as ``shift_us``; a daylight-saving
    hour keeps every grid of an hour or less)."""
    return (start + shift_us) % step_us == 0


def bar_start(ts: pl.Expr, step_us: int, shift_us: pl.Expr | int) -> pl.Expr:
    """The start of the ``step_us`` bar of the exchange's clock grid (``shift_us``: its
    ``Calendar.day_shift`` in microseconds) that each bar start ``ts`` (UTC) falls in: the
    grid ``first_bar`` and ``bars_in_session`` count, which fetched bars are stamped on."""
    floor: pl.Expr = _clock_floor(ts.dt.epoch("us"), step_us, shift_us)
    return pl.from_epoch(floor, time_unit="us").dt.replace_time_zone("UTC")


def period_key(day: pl.Expr, period: Period, week_start: int | pl.Expr) -> pl.Expr:
    """The first day of the exchange week (starting on weekday ``week_start``, 0 Monday) or
    calendar month that each date ``day`` falls in."""
    if period == "1month":
        return day.dt.truncate("1mo")
    back = (day.dt.weekday().cast(pl.Int32) - 1 - week_start) % 7
    return day - pl.duration(days=back)


def _clock_floor(micros: Any, step_us: int, shift_us: Any) -> Any:
    """``micros`` (an int, an array, an expression) down to the clock grid of ``step_us``."""
    return (micros + shift_us) // step_us * step_us - shift_us


def _utc(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)


@cache
def get_calendar(name: str = DEFAULT_CALENDAR) -> Calendar:
    """The calendar called ``name`` (an ISO MIC such as ``XNYS``, or ``24/7``), cached.

    Building a calendar takes exchange_calendars about a second, so its sessions are also kept
    in a small file per calendar, library version and month (see ``cache_dir``); a missing or
    unreadable cache only costs that second.
    """
    path = _cache_file(name)
    if path is not None:
        try:
            with np.load(path) as data:
                return Calendar(
                    name, str(data["tz"]), data["sessions"], data["opens"], data["closes"]
                )
        except (OSError, KeyError, ValueError):
            pass
    cal = _build(name)
    if path is not None:
        _save(path, cal)
    return cal


def cache_dir() -> Path:
    """Where calendar caches live: ``$BARLAKE_CACHE_DIR``, else ``$XDG_CACHE_HOME/barlake``,
    else ``~/.cache/barlake``."""
    return cache_dir_source()[0]


def cache_dir_source(environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """``cache_dir`` and where it comes from: ``env BARLAKE_CACHE_DIR``, ``env
    XDG_CACHE_HOME`` or ``default``."""
    env = os.environ if environ is None else environ
    if env.get("BARLAKE_CACHE_DIR"):
        return Path(env["BARLAKE_CACHE_DIR"]), "env BARLAKE_CACHE_DIR"
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "barlake", "env XDG_CACHE_HOME"
    return Path.home() / ".cache" / "barlake", "default"


def _cache_file(name: str) -> Path | None:
    try:
        version = metadata.version("exchange_calendars")
    except metadata.PackageNotFoundError:
        return None
    # The library's calendars reach one year past the day they are built: rebuild monthly.
    stamp = date.today().strftime("%Y-%m")
    safe = name.replace("/", "_")
    return cache_dir() / "calendars" / f"{safe}-{version}-{_FIRST_YEAR[:4]}-{stamp}.npz"


def _save(path: Path, cal: Calendar) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp, tz=np.array(cal.tz), sessions=cal.sessions, opens=cal.opens, closes=cal.closes
        )
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only loses the speed-up


def _build(name: str) -> Calendar:
    import exchange_calendars as xcals

    try:
        # exchange_calendars reads tz-aware ``Series.values``, which pandas 3 deprecates; the
        # warning is not ours to act on and would fail every caller running with -W error.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            try:
                cal = xcals.get_calendar(name, start=_FIRST_YEAR)
            except ValueError:
                cal = xcals.get_calendar(name)
    except xcals.errors.InvalidCalendarName:
        msg = f"unknown calendar {name!r}; use an exchange code such as XNYS, XLON or 24/7"
        raise UsageError(msg) from None
    schedule = cal.schedule
    sessions = schedule.index.to_numpy().astype("datetime64[D]")
    opens = _utc_micros(schedule["open"])
    closes = _utc_micros(schedule["close"])
    return Calendar(name, str(cal.tz), sessions, opens, closes)


def _utc_micros(column: Any) -> npt.NDArray[np.int64]:
    """Epoch microseconds of a pandas column of UTC instants (tz-aware or naive)."""
    if getattr(column.dt, "tz", None) is not None:
        column = column.dt.tz_convert(None)
    values: npt.NDArray[np.int64] = column.to_numpy().astype("datetime64[us]").astype(np.int64)
    return values


def calendar_for(calendar: str | None, asset_class: str | None = None) -> Calendar:
    """The calendar a symbol trades on: its own, 24/7 for crypto, else the default."""
    if calendar:
        return get_calendar(calendar)
    if asset_class == "crypto":
        return get_calendar(CRYPTO_CALENDAR)
    return get_calendar(DEFAULT_CALENDAR)
