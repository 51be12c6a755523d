"""The shared token bucket and the retry backoff, driven by a fake clock on a real event loop."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from barlake.ratelimit import RateLimiter, backoff


class FakeTime:
    """A clock that only moves when someone sleeps; sleeping still yields to other tasks."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


def limiter(fake: FakeTime, per_minute: float, burst: int | None = None) -> RateLimiter:
    return RateLimiter(per_minute, burst=burst, clock=fake.clock, sleep=fake.sleep)


def acquire_all(limit: RateLimiter, fake: FakeTime, tasks: int, each: int) -> list[float]:
    """Times at which ``tasks`` concurrent tasks got each of their ``each`` tokens."""
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
    ordered = sorted(times)
    j = 0
    best = 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def test_capacity_is_about_one_second_of_tokens() -> None:
    assert RateLimiter(120).capacity == 2
    assert RateLimiter(60).capacity == 1
    assert RateLimiter(5).capacity == 1
    assert RateLimiter(0.5).capacity == 1
    assert RateLimiter(6000).capacity == 100
    assert RateLimiter(120, burst=7).capacity == 7


def test_many_tasks_never_exceed_the_rate() -> None:
    fake = FakeTime()
    limit = limiter(fake, 120)
    start = fake.now
    times = acquire_all(limit, fake, tasks=50, each=10)

    assert len(times) == 500
    for window in (1.0, 10.0, 60.0):
        assert busiest_window(times, window) <= limit.capacity + limit.rate * window
    assert busiest_window(times, 60.0) <= 120 + limit.capacity
    theoretical = (500 - limit.capacity) / 2
    assert fake.now - start == pytest.approx(theoretical, abs=1.0)


def test_waiters_are_served_in_arrival_order() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60)
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


def test_burst_passes_without_sleeping_then_the_rate_applies() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60, burst=5)
    times = acquire_all(limit, fake, tasks=1, each=8)
    assert times[:5] == [1000.0] * 5
    assert times[5:] == pytest.approx([1001.0, 1002.0, 1003.0])


def test_pause_delays_every_waiter() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60000)
    limit.pause(5)
    times = acquire_all(limit, fake, tasks=10, each=1)
    assert len(times) == 10
    assert min(times) >= 1005.0


def test_pause_during_waiting_holds_back_queued_tasks() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60)  # one token a second, burst 1
    times: list[float] = []

    async def worker() -> None:
        await limit.acquire()
        times.append(fake.now)

    async def main() -> None:
        await limit.acquire()  # the bucket is now empty
        limit.pause(30)
        await asyncio.gather(*(worker() for _ in range(3)))

    asyncio.run(main())
    assert min(times) >= 1030.0
    assert busiest_window(times, 1.0) <= limit.capacity + limit.rate


def test_pause_never_shortens_an_earlier_pause() -> None:
    fake = FakeTime()
    limit = limiter(fake, 0)
    limit.pause(10)
    limit.pause(2)
    times = acquire_all(limit, fake, tasks=1, each=1)
    assert times == [1010.0]


@pytest.mark.parametrize("per_minute", [0, -1, math.inf])
def test_unlimited_never_sleeps(per_minute: float) -> None:
    fake = FakeTime()
    limit = limiter(fake, per_minute)
    times = acquire_all(limit, fake, tasks=20, each=50)
    assert len(times) == 1000
    assert fake.sleeps == []
    assert set(times) == {1000.0}


def test_a_limiter_survives_several_event_loops() -> None:
    fake = FakeTime()
    limit = limiter(fake, 120)
    first = acquire_all(limit, fake, tasks=5, each=2)
    second = acquire_all(limit, fake, tasks=5, each=2)
    assert len(first) == len(second) == 10
    assert busiest_window(first + second, 60.0) <= 120 + limit.capacity


def test_cancelled_waiter_does_not_block_the_queue() -> None:
    fake = FakeTime()
    limit = limiter(fake, 60)

    async def main() -> float:
        await limit.acquire()
        stuck = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        await limit.acquire()
        return fake.now

    assert asyncio.run(main()) <= 1002.0


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
