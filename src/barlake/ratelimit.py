"""A token bucket that every task talking to one provider shares, and the backoff between retries.

The bucket holds ``capacity`` tokens and refills at ``per_minute / 60`` tokens a second; each
request takes one. In any window of ``t`` seconds at most ``capacity + rate * t`` requests pass.
The default capacity, ``max(1, ceil(per_minute / 60))``, is one second's worth: bursts stay
short, yet a vendor's per-minute quota is used in full.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable

from barlake.errors import UsageError

# Tokens are floats; without slack, a waiter woken a rounding error early would sleep again
# for a few nanoseconds, and a fake clock might never get there.
_SLACK = 1e-9


class RateLimiter:
    """At most ``per_minute`` acquisitions a minute, in bursts of at most ``capacity``.

    Waiters are served first come, first served: the one at the head of the queue sleeps until
    its token has refilled while the others queue behind it. ``per_minute`` <= 0 or infinite
    means unlimited, though ``pause`` still holds everyone back.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.unlimited = per_minute <= 0 or math.isinf(per_minute)
        self.rate = 0.0 if self.unlimited else per_minute / 60
        self.capacity = burst if burst is not None else max(1, math.ceil(self.rate))
        if self.capacity < 1:
            msg = f"burst must be at least 1, got {burst}"
            raise UsageError(msg)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.capacity)
        self._updated = clock()
        self._paused_until = -math.inf
        self._queue: asyncio.Lock | None = None
        self._queue_loop: asyncio.AbstractEventLoop | None = None

    async def acquire(self) -> None:
        """Wait for a token, behind every task that asked earlier."""
        if self.unlimited:
            await self._wait_for_pause()
            return
        async with self._lock():
            while True:
                await self._wait_for_pause()
                now = self._clock()
                self._refill(now)
                if self._tokens >= 1 - _SLACK:
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)

    def pause(self, seconds: float) -> None:
        """Hold every acquisition until ``seconds`` from now, e.g. a 429's Retry-After."""
        self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.capacity), self._tokens + elapsed * self.rate)
        self._updated = now

    async def _wait_for_pause(self) -> None:
        while (left := self._paused_until - self._clock()) > 0:
            await self._sleep(left)

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
