"""The one clock of a lake: what "now" is for windows, providers and the calendar cache.

A clock is any callable that returns an aware UTC ``datetime``; ``Lake(clock=...)`` pins it
(the notebooks and tests do), and wiring hands the same clock to every part that asks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Returns the current time, timezone-aware in UTC."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The machine's time."""
    return datetime.now(UTC)


def fixed(moment: datetime) -> Clock:
    """A clock that always says ``moment``."""

    def clock() -> datetime:
        return moment

    return clock
