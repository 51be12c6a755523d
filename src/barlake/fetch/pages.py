"""Pages: one page of a request, inside the provider's rate limit, retried as its error says."""

from __future__ import annotations

import asyncio
import random

from barlake.config import BackfillConfig
from barlake.errors import LakeError
from barlake.fetch.ratelimit import RateLimiter, backoff
from barlake.providers.base import Page, Provider, Request


class Pager:
    """Fetches pages for one job and counts its calls and retries."""

    def __init__(
        self,
        provider: Provider,
        limiter: RateLimiter,
        config: BackfillConfig,
        rng: random.Random,
    ) -> None:
        self.provider, self.limiter, self.config, self.rng = provider, limiter, config, rng
        self.calls = self.retries = 0

    async def fetch(self, request: Request, cursor: str | None) -> Page:
        """One page of ``request``, retried while the provider's failures are ``retryable``.

        Each retry waits the failure's ``retry_after``, else a backoff step. A failure that
        ``throttles`` makes every worker wait (the provider's limiter pauses) and may recur more
        often, since it is not this request's fault; any other holds back this request alone.
        """
        attempts = throttled = 0
        while True:
            await self.limiter.acquire()
            self.calls += 1
            try:
                return await self.provider.fetch_page(request, cursor)
            except LakeError as exc:
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
                    await asyncio.sleep(self.wait(exc, attempts))

    def wait(self, exc: LakeError, attempt: int) -> float:
        """Seconds before retry ``attempt``: what the provider asked for, else a backoff step."""
        if exc.retry_after is not None:
            return exc.retry_after
        return backoff(
            attempt, base=self.config.backoff_base_s, cap=self.config.backoff_cap_s, rng=self.rng
        )
