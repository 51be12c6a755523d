"""Fetching corporate actions: symbols in batches of the provider's ``action_symbols``, each
page through the provider's rate limiter (the one window its bar requests use), transient
failures and 429s retried with backoff, a refused batch reported per symbol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

from barlake.domain.actions import Action
from barlake.domain.ranges import DateRange
from barlake.errors import (
    AuthError,
    ProviderError,
    RateLimitError,
    TransientError,
    UsageError,
)
from barlake.fetch.ratelimit import RateLimiter, backoff
from barlake.providers.base import ActionPage, ActionSource, Provider

T = TypeVar("T")


@dataclass
class Fetched:
    """What a fetch of actions brought back: the actions, the requests it made, and the
    symbols whose batch failed (``{symbol: error}``)."""

    actions: list[Action] = field(default_factory=list)
    requests: int = 0
    errors: dict[str, str] = field(default_factory=dict)


def batches(provider: Provider, names: Sequence[str]) -> list[tuple[str, ...]]:
    """``names`` in requests of at most the provider's ``action_symbols``; a usage error when
    the provider serves no actions."""
    size = provider.capabilities.action_symbols
    if size <= 0:
        msg = f"provider {provider.name!r} serves no corporate actions; use another --provider"
        raise UsageError(msg)
    ordered = sorted(set(names))
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


async def fetch(
    provider: Provider,
    names: Sequence[str],
    window: DateRange,
    limiter: RateLimiter,
    *,
    attempts: int = 5,
) -> Fetched:
    """The actions of ``names`` with ex-dates in ``window``, batch after batch."""
    source = cast(ActionSource, provider)
    out = Fetched()
    for batch in batches(provider, names):
        cursor: str | None = None
        got: list[Action] = []
        try:
            while True:
                page = await _page(source, batch, window, cursor, limiter, attempts, out)
                got += page.actions
                cursor = page.next_cursor
                if cursor is None:
                    break
        except AuthError:
            raise
        except ProviderError as exc:
            out.errors.update(dict.fromkeys(batch, str(exc)))
            continue
        out.actions += got
    return out


async def _page(
    source: ActionSource,
    batch: tuple[str, ...],
    window: DateRange,
    cursor: str | None,
    limiter: RateLimiter,
    attempts: int,
    out: Fetched,
) -> ActionPage:
    def counted() -> None:
        out.requests += 1

    return await retried(
        lambda: source.fetch_actions(batch, window, cursor), limiter, attempts, counted
    )


async def retried(
    call: Callable[[], Awaitable[T]],
    limiter: RateLimiter,
    attempts: int,
    sent: Callable[[], None] | None = None,
) -> T:
    """``call()`` through ``limiter``, again after a 429 (its ``Retry-After`` pauses the
    limiter) or a transient failure (jittered backoff), ``attempts`` times at most; ``sent``
    hears of every call made."""
    for attempt in range(attempts):
        await limiter.acquire()
        if sent is not None:
            sent()
        try:
            return await call()
        except RateLimitError as exc:
            if attempt == attempts - 1:
                raise
            wait = exc.retry_after if exc.retry_after is not None else backoff(attempt)
            limiter.pause(wait)
        except TransientError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(backoff(attempt))
    msg = "no attempts left"  # attempts < 1
    raise TransientError(msg)
