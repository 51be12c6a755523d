"""Pages: one page of a request, inside the provider's rate limit, retried as its error says."""

from __future__ import annotations

import random
from collections.abc import Callable

from barlake.config import BackfillConfig
from barlake.errors import LakeError
from barlake.fetch.progress import BACKOFF
from barlake.fetch.ratelimit import WALL, OnWait, RateLimiter, Timing, backoff
from barlake.providers.base import Page, Provider, Request


class Pager:
    """Fetches pages for one job and counts its calls, retries, the bars answered and the
    seconds its successful calls took (the provider's latency, waits for the rate limit
    apart). ``on_wait`` hears of every wait, ``on_send`` of every call as it goes out and
    ``on_call`` of every call once it is over (answered or failed)."""

    def __init__(
        self,
        provider: Provider,
        limiter: RateLimiter,
        config: BackfillConfig,
        rng: random.Random,
        *,
        timing: Timing = WALL,
        on_wait: OnWait | None = None,
        on_send: Callable[[], None] | None = None,
        on_call: Callable[[], None] | None = None,
    ) -> None:
        self.provider, self.limiter, self.config, self.rng = provider, limiter, config, rng
        self.timing, self.on_wait, self.on_call = timing, on_wait, on_call
        self.on_send = on_send
        self.calls = self.retries = self.answered = self.bars = 0
        self.answer_s = 0.0

    @property
    def latency_s(self) -> float | None:
        """Mean seconds from sending a call to its answer, over the answered calls."""
        return self.answer_s / self.answered if self.answered else None

    async def fetch(
        self, request: Request, cursor: str | None, sent: Callable[[], None] | None = None
    ) -> Page:
        """One page of ``request``, retried while the provider's failures are ``retryable``;
        ``sent`` is called when its first call goes out (the job counts what is still to come).

        Each retry waits the failure's ``retry_after``, else a backoff step. A failure that
        ``throttles`` makes every worker wait (the provider's limiter pauses) and may recur more
        often, since it is not this request's fault; any other holds back this request alone.
        """
        attempts = throttled = 0
        while True:
            await self.limiter.acquire(self.on_wait)
            self.calls += 1
            if self.on_send is not None:
                self.on_send()
            if sent is not None:
                sent()
                sent = None  # retries are calls beyond the page's
            started = self.timing.clock()
            try:
                page = await self.provider.fetch_page(request, cursor)
            except LakeError as exc:
                self._over()
                if not exc.retryable:
                    raise
                self.retries += 1
                if exc.throttles:
                    throttled += 1
                    if throttled > 4 * self.config.max_attempts:
                        raise
                    self.limiter.pause(self.wait(exc, throttled))
                else:
                    attempts += 1
                    if attempts >= self.config.max_attempts:
                        raise
                    pause = self.wait(exc, attempts)
                    self._waiting(BACKOFF, pause)
                    await self.timing.sleep(pause)
                continue
            except BaseException:
                self._over()
                raise
            self.answered += 1
            self.bars += page.bars.height
            self.answer_s += max(0.0, self.timing.clock() - started)
            self._over()
            return page

    def _waiting(self, reason: str, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait(reason, seconds)

    def _over(self) -> None:
        if self.on_call is not None:
            self.on_call()

    def wait(self, exc: LakeError, attempt: int) -> float:
        """Seconds before retry ``attempt``: what the provider asked for, else a backoff step."""
        if exc.retry_after is not None:
            return exc.retry_after
        return backoff(
            attempt, base=self.config.backoff_base_s, cap=self.config.backoff_cap_s, rng=self.rng
        )
