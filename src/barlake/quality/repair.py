"""What ``lake fill --repair`` fetches again: the sessions whose stored bars a check flags.

The same expressions as the rules (``quality.rules``) decide, so that once these sessions are
fetched again and their stored bars replaced, the next check finds nothing there: impossible
values, keys stored twice, bars off the grid or at the wrong time of a session, and intraday
sessions with under half their bars. Bars on days that are no session of the symbol's
calendar cannot be fetched again by session; the timestamp rule keeps reporting them (the
symbol's calendar is what needs fixing).
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.domain.intervals import Interval, spec
from barlake.quality import rules


def bad_sessions(
    bars: pl.DataFrame, interval: Interval, calendars: dict[str, Calendar], closed: date | None
) -> pl.DataFrame:
    """(symbol, day) of each session of ``bars`` that a check flags, sorted; intraday
    sessions count as short only once closed by ``closed``."""
    parts = [pl.DataFrame(schema={"symbol": pl.String, "day": pl.Date})]
    intraday = spec(interval).intraday
    for cal, frame in rules.by_calendar(bars, calendars):
        shift = cal.day_shift if intraday else timedelta(0)
        day = (pl.col("ts") + shift).dt.date().alias("day")
        flagged = rules.BAD_BAR | rules.DUPLICATE | rules.off_timestamp(frame, interval, cal)
        found = frame.filter(flagged).select("symbol", day)
        parts.append(found.filter(rules.is_session(pl.col("day"), cal)))
        if intraday and closed is not None:
            short = rules.short_sessions(rules.sound(frame), interval, cal, closed)
            parts.append(short.select("symbol", "day"))
    return pl.concat(parts).unique().sort("symbol", "day")
