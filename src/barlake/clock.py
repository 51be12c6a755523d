"""The one clock of a lake: what "now" is for windows, providers and the calendar cache.

A clock is any callable that returns an aware UTC ``datetime``; ``Lake(clock=...)`` pins it
(the notebooks and tests do), and wiring hands the same clock to every part that asks.

A ``Lake`` opened without one (every command: ``lake follow``, ``lake status``, ``lake serve``)
takes its clock from the environment variable ``LAKE_CLOCK`` when it is set:

- an ISO time (``LAKE_CLOCK=2025-01-15T15:00:00Z``): "now" stays that moment;
- anything else is the path of a file holding an ISO time, read again on every call: whoever
  writes the file moves the lake's time, so a test fast-forwards a session in a process of
  its own (``SharedClock`` writes such a file, atomically, as it advances).

Only the lake's "now" moves: timeouts, backoff, heartbeats and job leases stay wall time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

#: The environment variable that sets the clock of a lake opened without one.
ENV = "LAKE_CLOCK"


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


class SharedClock(ManualClock):
    """A ``ManualClock`` that writes each "now" to ``path`` (atomically: a temporary file
    and a rename), so that a process started with ``LAKE_CLOCK=path`` agrees on it."""

    def __init__(self, path: str | Path, start: datetime) -> None:
        super().__init__(start)
        self.path = Path(path)
        self._write()

    def advance(self, by: timedelta) -> datetime:
        super().advance(by)
        self._write()
        return self.now

    def set(self, moment: datetime) -> datetime:
        """Move "now" to ``moment``."""
        self.now = moment
        self._write()
        return self.now

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.write_text(self.now.isoformat())
        os.replace(tmp, self.path)


def file_clock(path: str | Path) -> Clock:
    """A clock that reads "now" from the file at ``path`` on every call (an ISO time)."""
    target = Path(path)

    def clock() -> datetime:
        try:
            text = target.read_text()
        except OSError as exc:
            msg = f"{ENV}: cannot read the clock file {target} ({exc.strerror})"
            raise ValueError(msg) from None
        return _moment(text, f"the clock file {target}")

    return clock


def from_environment(environ: Mapping[str, str] | None = None) -> Clock:
    """The clock ``LAKE_CLOCK`` names (see the module), else the machine's; ValueError (one
    line, naming the variable) when it names neither a time nor a file holding one."""
    value = (os.environ if environ is None else environ).get(ENV, "").strip()
    if not value:
        return system_clock
    try:
        moment = _moment(value, ENV)
    except ValueError:
        if not Path(value).is_file():
            msg = f"{ENV}={value!r} is neither an ISO time nor a file holding one"
            raise ValueError(msg) from None
        clock = file_clock(value)
        clock()  # a file that does not hold a time fails here, once, with its name
        return clock
    return fixed(moment)


def _moment(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        msg = f"{where} holds {text.strip()[:40]!r}, not an ISO time such as 2025-01-15T15:00:00Z"
        raise ValueError(msg) from None
    if moment.tzinfo is None:
        msg = f"{where} holds {text.strip()[:40]!r} without a zone; add Z for UTC"
        raise ValueError(msg) from None
    return moment.astimezone(UTC)
