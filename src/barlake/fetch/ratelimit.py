"""The rate limiter shared by every task (and process) that talks to a provider; retry backoff.

Vendors state a limit as N requests a minute and enforce it over a sliding (or fixed) 60-second
window, so the limiter keeps the same rule: at most ``per_minute`` acquisitions in any
``window_s`` seconds. A small job therefore sends its requests at once, and a long one never
exceeds the vendor's window. Each acquisition occupies the window for ``margin_s`` more, so that
a clock difference, or a request slower than the ones after it (the first of a process also opens
its connection), does not earn a 429 at the window's edge; one second of a minute costs under 2%
of the rate.

Given a ``share`` key (a provider's name and base URL), the window lives in a file under the
cache directory and every process on the machine counts against it; see ``ratewindow``.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from barlake.config import RATE_MARGIN_S
from barlake.errors import UsageError
from barlake.fetch.progress import RATE_LIMIT, RETRY_AFTER
from barlake.fetch.ratewindow import LocalWindow, Window, open_window

# A waiter woken a rounding error early sleeps again; on a fake clock, a sleep shorter than the
# clock's resolution would never get there.
_MIN_SLEEP = 1e-6


class Waits:
    """How often and how long this process's limiters made a request wait (``/metrics``)."""

    def __init__(self) -> None:
        self.count, self.seconds = 0, 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.seconds += seconds


#: Every limiter of the process counts its waits here.
WAITS = Waits()

#: Told of each wait before it starts: its reason (``barlake.fetch.progress``) and seconds.
OnWait = Callable[[str, float], None]


@dataclass(frozen=True)
class Timing:
    """The seconds clock a job reads and the sleep it waits with: wall time, or a test's fake
    clock that moves only when someone sleeps."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


WALL = Timing()


class RateLimiter:
    """At most ``per_minute`` acquisitions in any window of ``window_s`` seconds.

    Waiters of one process are served first come, first served: the one at the head of the
    queue sleeps until a slot of the window frees while the others queue behind it. A limit
    below one stretches the window instead (0.5 a minute: one per 120 s); a fractional limit
    above one rounds down. ``per_minute`` <= 0 or infinite means unlimited, though ``pause``
    still holds everyone back. ``share`` names a window that every process shares (see
    ``ratewindow.window_path``); ``directory`` overrides where its file lives, and
    ``windows`` where the window lives instead of a file (a team's catalog database, which
    every machine shares).
    """

    def __init__(
        self,
        per_minute: float,
        *,
        window_s: float = 60.0,
        margin_s: float = RATE_MARGIN_S,
        share: str | None = None,
        directory: Path | None = None,
        windows: Callable[[str, int], Window] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not window_s > 0 or not margin_s >= 0:
            msg = f"window_s must be positive and margin_s not negative, got {window_s}, {margin_s}"
            raise UsageError(msg)
        self.unlimited = per_minute <= 0 or math.isinf(per_minute)
        self.limit = 0 if self.unlimited else max(1, int(per_minute))
        self.window_s = window_s if self.unlimited or per_minute >= 1 else window_s / per_minute
        self.margin_s = margin_s
        self.window: Window = LocalWindow()
        if share is not None:
            opened = windows(share, self.limit) if windows is not None else None
            self.window = opened or open_window(share, self.limit, directory)
        self._clock = clock
        self._sleep = sleep
        self._queue: asyncio.Lock | None = None
        self._queue_loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self, on_wait: OnWait | None = None) -> None:
        """Wait for a free slot of the window, behind every task of this process that asked
        earlier; ``on_wait`` hears of each sleep before it starts."""
        if self.unlimited:
            while (left := self.window.held(self._clock)) > 0:
                self._waiting(on_wait, RETRY_AFTER, left)
                await self._sleep(max(left, _MIN_SLEEP))
            return
        span = self.span
        async with self._lock():
            while (wait := self.window.take(self._clock, self.limit, span)) > 0:
                # A pause is a provider's "slow down" (answered to us or to another process).
                paused = self.window.held(self._clock) > 0
                self._waiting(on_wait, RETRY_AFTER if paused else RATE_LIMIT, wait)
                await self._sleep(max(wait, _MIN_SLEEP))

    @property
    def span(self) -> float:
        """Seconds each acquisition holds the window."""
        return self.window_s + self.margin_s

    @staticmethod
    def _waiting(on_wait: OnWait | None, reason: str, seconds: float) -> None:
        WAITS.add(seconds)
        if on_wait is not None:
            on_wait(reason, seconds)

    def pause(self, seconds: float) -> None:
        """Hold every acquisition, in every process sharing the window, until ``seconds`` from
        now, e.g. a 429's Retry-After."""
        self.window.hold(self._clock, max(0.0, seconds))

    def _lock(self) -> asyncio.Lock:
        # asyncio.Lock binds to the first loop it waits on; a limiter may outlive a loop
        # (one per asyncio.run), so each loop gets its own queue.
        loop = asyncio.get_running_loop()
        if self._queue is None or self._queue_loop is not loop:
            self._queue, self._queue_loop = asyncio.Lock(), loop
        return self._queue


def backoff(
    attempt: int, *, base: float = 0.2, cap: float = 10.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry ``attempt``: ``uniform(0, min(cap, base * 2**attempt))``.

    Full jitter spreads retries of many tasks that failed together, instead of synchronising them.
    """
    # Beyond 2**64 the bound is the cap anyway, and float(2**2000) would overflow.
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))
    return (rng or random).uniform(0, ceiling)
