"""Bar intervals and the one table that decides how each interval is partitioned on disk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from barlake.errors import UsageError

Interval = Literal["1min", "5min", "15min", "30min", "1hour", "1day"]
INTERVALS: tuple[Interval, ...] = get_args(Interval)

Partitioning = Literal["year", "symbol_year", "symbol_month"]

#: Version of the on-disk layout; recorded in the lake and checked on open.
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class IntervalSpec:
    """What the lake needs to know about one interval."""

    name: Interval
    length: timedelta
    partitioning: Partitioning

    @property
    def intraday(self) -> bool:
        return self.name != "1day"

    @property
    def seconds(self) -> int:
        return int(self.length.total_seconds())


# Daily bars are small: one file per year holds every symbol. Intraday bars are large: one file
# per symbol and period, so a new symbol's backfill never rewrites another symbol's data.
SPECS: dict[Interval, IntervalSpec] = {
    "1min": IntervalSpec("1min", timedelta(minutes=1), "symbol_month"),
    "5min": IntervalSpec("5min", timedelta(minutes=5), "symbol_month"),
    "15min": IntervalSpec("15min", timedelta(minutes=15), "symbol_month"),
    "30min": IntervalSpec("30min", timedelta(minutes=30), "symbol_month"),
    "1hour": IntervalSpec("1hour", timedelta(hours=1), "symbol_year"),
    "1day": IntervalSpec("1day", timedelta(days=1), "year"),
}


#: Other spellings of the intervals, as freqtrade, yfinance, ccxt and Binance write them (``1m``
#: ``5m`` ``15m`` ``30m`` ``1h`` ``1d``). They are accepted wherever an interval is read
#: (options, the API, policies, lake.yaml) and stored under the name they stand for. Case
#: matters: in pandas' spelling ``1M`` is a month.
ALIASES: dict[str, Interval] = {
    name.replace("min", "m").replace("hour", "h").replace("day", "d"): name for name in INTERVALS
}


def spec(interval: str) -> IntervalSpec:
    """The spec of ``interval`` (a name or one of ``ALIASES``), or a UsageError naming the
    valid ones."""
    name: str = ALIASES.get(interval) or interval
    try:
        return SPECS[name]  # type: ignore[index]
    except KeyError:
        msg = (
            f"unknown interval {interval!r}; use one of: {' '.join(INTERVALS)} "
            f"(or {' '.join(ALIASES)})"
        )
        raise UsageError(msg) from None


def parse_intervals(text: str) -> list[Interval]:
    """Parse a comma list of intervals such as ``1day,1min`` (or ``1d,1m``) into their names;
    UsageError when it names none."""
    names = [spec(part.strip()).name for part in text.split(",") if part.strip()]
    if not names:
        msg = f"--interval {text!r} is empty; give one or more of: {' '.join(INTERVALS)}"
        raise UsageError(msg)
    return names
