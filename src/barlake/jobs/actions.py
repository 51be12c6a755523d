"""Corporate actions: fetch a selection's splits and dividends from a provider and store them
in the catalog beside the raw bars (``lake actions fetch``), and read them back.

The range asked of the provider is the selection's: ``days`` or ``start``/``end`` when given,
else the span of the ranges its retention wants. Requests go through the provider's rate
limiter, the window its bar requests share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from barlake.catalog.repositories import Catalog
from barlake.clock import Clock
from barlake.coverage.finder import span_of
from barlake.domain import actions as actions_
from barlake.domain.ranges import DateRange
from barlake.errors import UsageError
from barlake.fetch import actions as fetching
from barlake.fetch.ratelimit import RateLimiter
from barlake.fetch.runner import run_blocking
from barlake.jobs.backfill import Backfill
from barlake.retention.selection import Selection


@dataclass
class ActionsFetched:
    """What ``lake actions fetch`` did: per provider, the symbols asked, requests made, actions
    received and how many of them were new to the catalog, and per-symbol errors."""

    provider: str
    window: DateRange
    symbols: int
    requests: int
    actions: int
    new: int
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "first": self.window.start.isoformat(),
            "last": self.window.last.isoformat(),
            "symbols": self.symbols,
            "requests": self.requests,
            "actions": self.actions,
            "new": self.new,
            "errors": self.errors,
        }


class Actions:
    """The corporate-actions use cases over a lake's backfill services and catalog."""

    def __init__(self, backfill: Backfill, catalog: Catalog, clock: Clock) -> None:
        self.backfill, self.catalog, self.clock = backfill, catalog, clock

    def window(self, selection: Selection) -> tuple[list[str], DateRange]:
        """The names of ``selection`` (unknown ones are errors) and the range to ask for."""
        wanted = self.backfill.resolve(selection)
        names = sorted(m.name for m in wanted.members)
        asked = selection.window(self.clock().date())
        return names, asked or span_of(t.window for t in wanted.targets)

    def fetch(self, selection: Selection) -> ActionsFetched:
        """Fetch and store the actions of ``selection`` from its provider (or the default)."""
        names, window = self.window(selection)
        name = selection.provider or self.backfill.config.default_provider
        caps = self.backfill.capabilities(name)
        provider = self.backfill.providers.open(name)
        fetching.batches(provider, names)  # a provider without actions is refused now
        limiter = RateLimiter(self.backfill.rate_limit(name, caps))

        async def run() -> fetching.Fetched:
            try:
                return await fetching.fetch(provider, names, window, limiter)
            finally:
                if not self.backfill.providers.owns(name):
                    await provider.aclose()

        got = run_blocking(run) if names and window.days > 0 else fetching.Fetched()
        new = self.catalog.record_actions(actions_.frame(got.actions, self.clock()))
        return ActionsFetched(
            name, window, len(names), got.requests, len(got.actions), new, got.errors
        )

    def rows(
        self,
        names: Sequence[str] | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        types: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Stored actions (of ``names``, ex-dates in [start, end], of ``types``)."""
        for t in types or ():
            if t not in actions_.ACTION_TYPES:
                msg = f"unknown action type {t!r}; use one of {', '.join(actions_.ACTION_TYPES)}"
                raise UsageError(msg)
        return self.catalog.action_rows(names, start=start, end=end, types=types)
