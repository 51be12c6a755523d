"""Selection: what a user asked about (symbols or a layer, intervals, a range, a policy).

Every ``Lake`` method that looks at a part of the lake builds one ``Selection`` from its keyword
arguments and hands it to a service; services resolve it into targets (``retention.targets``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

from barlake.domain.datasets import Dataset, dataset
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.domain.symbols import split_symbols
from barlake.errors import UsageError

if TYPE_CHECKING:
    from barlake.retention.policy import Policy


class Span(TypedDict, total=False):
    """The keyword arguments that choose symbols' ranges, as ``Lake`` methods take them."""

    days: int | None
    start: date | None
    end: date | None
    layer: int | None
    policy: str | Policy | None


class Chosen(Span, total=False):
    """``Span`` and the intervals."""

    interval: Dataset | Sequence[Dataset] | None


@dataclass(frozen=True)
class Selection:
    """Symbols (None: every active symbol), intervals (None: the policy's, else 1day), dates
    (``days`` or ``start``/``end``; None: the policy's or the default), a layer filter, a policy
    (a name, a path or a loaded ``Policy``; None: lake.yaml's default) and a provider."""

    symbols: tuple[str, ...] | None = None
    intervals: tuple[Dataset, ...] | None = None
    days: int | None = None
    start: date | None = None
    end: date | None = None
    layer: int | None = None
    policy: str | Policy | None = None
    provider: str | None = None

    @classmethod
    def of(
        cls,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Dataset | Sequence[Dataset] | None = None,
        **fields: Any,
    ) -> Selection:
        """A selection from the keyword arguments ``Lake`` methods take (names are split,
        checked and upper-cased as ``lake symbols add`` does; intervals are checked)."""
        names = symbols_of(symbols)
        intervals = None
        if interval is not None:
            given = [interval] if isinstance(interval, str) else list(interval)
            intervals = tuple(dataset(i) for i in given)
        return cls(tuple(names) if names is not None else None, intervals, **fields)

    @property
    def names(self) -> list[str] | None:
        return list(self.symbols) if self.symbols is not None else None

    def window(self, today: date) -> DateRange | None:
        """The range the user asked for, or None when they gave no dates."""
        return requested_window(today, days=self.days, start=self.start, end=self.end)

    def parameters(self, policy: str | None) -> dict[str, Any]:
        """The selection as a job records it."""
        return {
            "symbols": self.names,
            "intervals": list(self.intervals) if self.intervals else None,
            "days": self.days,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "layer": self.layer,
            "policy": policy,
        }


def symbols_of(symbols: str | Sequence[str] | None) -> list[str] | None:
    """``"AAPL,MSFT"`` or a list as checked names; None stays None."""
    if symbols is None:
        return None
    return split_symbols(symbols if isinstance(symbols, str) else list(symbols))


#: The earliest date a range may reach: no market data is older, and calendar arithmetic
#: near year 1 overflows.
EARLIEST = date(1900, 1, 1)


def requested_window(
    today: date, *, days: int | None = None, start: date | None = None, end: date | None = None
) -> DateRange | None:
    """The range a user asked for: ``days`` calendar days ending today, or ``start``..``end``
    inclusive (``end`` defaults to today); None when they asked for nothing.

    UsageError for a range that reaches before ``EARLIEST`` or lies wholly after today (no
    session of it has happened, so nothing can be expected yet).
    """
    if days is not None and (start or end):
        msg = "give either --days or --start/--end, not both"
        raise UsageError(msg)
    if days is not None:
        return days_window(today, days, "--days")
    if start is None and end is None:
        return None
    if start is None:
        msg = "--end needs --start (or use --days N)"
        raise UsageError(msg)
    if start < EARLIEST:
        msg = f"--start {start} is before {EARLIEST}, the earliest date a lake holds"
        raise UsageError(msg)
    if start > today:
        msg = (
            f"--start {start} is in the future (today is {today}): nothing can be expected "
            "yet; give dates up to today"
        )
        raise UsageError(msg)
    if end is not None and end == date.max:
        msg = f"--end {end} is too far in the future; give dates up to today"
        raise UsageError(msg)
    return DateRange.inclusive(start, end or today)


def days_window(today: date, days: int, what: str) -> DateRange:
    """The ``days`` calendar days ending with ``today``; UsageError naming ``what`` (an option
    or a policy key) when ``days`` is below 1 or reaches before ``EARLIEST``."""
    most = (today - EARLIEST).days + 1
    if not 1 <= days <= most:
        msg = f"{what} must be at least 1 and at most {most} (back to {EARLIEST}), got {days}"
        raise UsageError(msg)
    return DateRange(today - (days - 1) * ONE_DAY, today + ONE_DAY)
