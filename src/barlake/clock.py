"""The one clock of a lake: what "now" is for windows, providers and the calendar cache.

A clock is any callable that returns an aware UTC ``datetime``; ``Lake(clock=...)`` pins it
(the notebooks and tests do), and wiring hands the same clock to every part that asks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


class ManualClock:
    """A clock that moves only when told: tests and benchmarks fast-forward a simulated
    session with it, and every part handed it (a follower, a stream emulator) agrees on "now"."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        """Move "now" forward by ``by``; returns the new time."""
        self.now += by
        return self.now
