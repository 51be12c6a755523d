"""The sliding-window rate limiter and the retry backoff, driven by a fake clock on a real event
loop. These limiters keep their window in the process; tests/test_ratelimit_shared.py shares it."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest

from barlake.errors import UsageError
from barlake.fetch.ratelimit import RateLimiter, backoff

START = 1000.0


class FakeTime:
    """A clock that only moves when someone sleeps; sleeping still yields to other tasks."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def limiter(fake: FakeTime, per_minute: float, **options: Any) -> RateLimiter:
    options.setdefault("margin_s", 0.25)
    return RateLimiter(per_minute, clock=fake.clock, sleep=fake.sleep, **options)


def acquire_all(limit: RateLimiter, fake: FakeTime, tasks: int, each: int) -> list[float]:
    """Times at which ``tasks`` concurrent tasks made each of their ``each`` acquisitions."""
    times: list[float] = []

    async def worker() -> None:
        for _ in range(each):
            await limit.acquire()
            times.append(fake.now)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(tasks)))

    asyncio.run(main())
    return times


def busiest_window(times: list[float], window: float) -> int:
    """The most acquisitions in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    j = 0
    best = 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def test_many_tasks_never_exceed_the_limit_in_any_window() -> None:
    fake = FakeTime()
    limit = limiter(fake, 120)
    times = acquire_all(limit, fake, tasks=50, each=10)

    assert len(times) == 500
    # Each acquisition occupies the window for window_s + margin_s: none may start early.
    assert busiest_window(times, 60.25) == 120
    assert busiest_window(times, 60.0) == 120
    # Bursts of 120 every 60.25 s: 4 full windows, then the last 20 at once.
    assert sorted(set(times)) == pytest.approx([START + 60.25 * k for k in range(5)])
    assert fake.now - START == pytest.approx(4 * 60.25)


def test_a_burst_within_the_limit_passes_without_sleeping() -> None:
    fake = FakeTime()
    limit = limiter(fake, 200)
    times = acquire_all(limit, fake, tasks=15, each=1)
    assert times == [START] * 15
    assert fake.sleeps == []
    times = acquire_all(limit, fake, tasks=1, each=185)  # the rest of the minute's 200
    assert times == [START] * 185
    assert fake.sleeps == []


def test_the_first_acquisition_over_the_limit_waits_for_the_window_and_margin() -> None:
    fake = FakeTime()
    limit = limiter(fake, 5, window_s=10, margin_s=0.5)
    times = acquire_all(limit, fake, tasks=1, each=6)
    assert times[:5] == [START] * 5
    assert times[5] == pytest.approx(START + 10.5)
    assert fake.sleeps == [pytest.approx(10.5)]


@pytest.mark.parametrize(
    ("per_minute", "limit", "window"),
    [(0.5, 1, 120.0), (1, 1, 60.0), (2.7, 2, 60.0), (200, 200, 60.0)],
)
def test_fractional_limits_never_exceed_the_rate(per_minute, limit, window) -> None:
    fake = FakeTime()
    limiter_ = limiter(fake, per_minute, margin_s=0)
    assert (limiter_.limit, limiter_.window_s) == (limit, window)
    times = acquire_all(limiter_, fake, tasks=3, each=limit)
    assert busiest_window(times, window) == limit
    assert busiest_window(times, 60.0) <= max(1, per_minute)


def test_waiters_are_served_in_arrival_order() -> None:
    fake = FakeTime()
    limit = limiter(fake, 3)
    served: list[int] = []

    async def worker(n: int) -> None:
        await limit.acquire()
        served.append(n)

    async def main() -> None:
        tasks = []
        for n in range(20):
            tasks.append(asyncio.create_task(worker(n)))
            await asyncio.sleep(0)  # each task starts waiting before the next one exists
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert served == list(range(20))


def test_pause_delays_every_waiter() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60000)
    limit.pause(5)
    times = acquire_all(limit, fake, tasks=10, each=1)
    assert len(times) == 10
    assert min(times) >= START + 5


def test_pause_during_waiting_holds_back_queued_tasks() -> None:
    fake = FakeTime()
    limit = limiter(fake, 2)
    times: list[float] = []

    async def worker() -> None:
        await limit.acquire()
        times.append(fake.now)

    async def main() -> None:
        await limit.acquire()
        limit.pause(30)
        await asyncio.gather(*(worker() for _ in range(3)))

    asyncio.run(main())
    # Two slots left after the first acquisition, but the pause comes first; then the window.
    assert times[:1] == [START + 30]
    assert times[1:] == pytest.approx([START + 60.25, START + 90.25])
    assert busiest_window([START, *times], 60.0) <= 2


def test_pause_never_shortens_an_earlier_pause() -> None:
    fake = FakeTime()
    limit = limiter(fake, 0)
    limit.pause(10)
    limit.pause(2)
    times = acquire_all(limit, fake, tasks=1, each=1)
    assert times == [START + 10]


@pytest.mark.parametrize("per_minute", [0, -1, math.inf])
def test_unlimited_never_sleeps(per_minute: float) -> None:
    fake = FakeTime()
    limit = limiter(fake, per_minute)
    times = acquire_all(limit, fake, tasks=20, each=50)
    assert len(times) == 1000
    assert fake.sleeps == []
    assert set(times) == {START}


def test_a_limiter_survives_several_event_loops() -> None:
    fake = FakeTime()
    limit = limiter(fake, 120)
    first = acquire_all(limit, fake, tasks=50, each=2)
    second = acquire_all(limit, fake, tasks=50, each=2)
    assert len(first) == len(second) == 100
    assert busiest_window(first + second, 60.0) == 120


def test_cancelled_waiter_does_not_take_a_slot() -> None:
    fake = FakeTime()
    limit = limiter(fake, 2)

    async def main() -> list[float]:
        await limit.acquire()
        await limit.acquire()
        stuck = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        times = []
        for _ in range(2):
            await limit.acquire()
            times.append(fake.now)
        return times

    assert asyncio.run(main()) == pytest.approx([START + 60.25] * 2)


@pytest.mark.parametrize("options", [{"window_s": 0}, {"window_s": -1}, {"margin_s": -0.1}])
def test_impossible_windows_are_refused(options) -> None:
    with pytest.raises(UsageError, match="window_s"):
        RateLimiter(60, **options)


def test_backoff_stays_within_bounds_and_grows() -> None:
    rng = random.Random(7)
    means = []
    for attempt in range(12):
        ceiling = min(10.0, 0.2 * 2**attempt)
        waits = [backoff(attempt, base=0.2, cap=10.0, rng=rng) for _ in range(2000)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.9 * ceiling  # full jitter reaches the top of its range
        means.append(sum(waits) / len(waits))
    growing = means[:6]
    assert growing == sorted(growing)
    assert means[-1] == pytest.approx(5.0, rel=0.1)  # capped: uniform(0, 10) averages 5


def test_backoff_handles_huge_and_negative_attempts() -> None:
    rng = random.Random(1)
    assert 0 <= backoff(10_000, cap=3.0, rng=rng) <= 3.0
    assert 0 <= backoff(-5, base=0.5, rng=rng) <= 0.5
    assert 0 <= backoff(3) <= 1.6
