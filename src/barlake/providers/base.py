"""The interface every provider implements, and the request and page values that cross it.

A provider declares what it can do (``Capabilities``) and serves one page of one request at a
time. Rate limiting, retries, batching and writing belong to the scheduler, so a provider module
only speaks its vendor's wire format and maps the vendor's failures onto ``barlake.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from barlake.domain.actions import Action
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange


@dataclass(frozen=True)
class Capabilities:
    """What a provider can serve, and how much per request."""

    intervals: tuple[Interval, ...]
    symbols_per_request: int
    bars_per_page: int
    rate_limit_per_min: float
    grouped_daily: bool = False
    #: Environment variables that hold the API key, any one of them (Polygon's two names).
    auth_env: tuple[str, ...] = ()
    #: Those that hold the secret that goes with the key, any one of them (Alpaca's); empty
    #: when the key alone is enough.
    auth_secret_env: tuple[str, ...] = ()
    #: Longest range (calendar days) one request may span, per interval; absent means no limit.
    max_days: dict[Interval, int] = field(default_factory=dict)
    #: Longest comma-joined, percent-encoded symbol list one request may carry (URL limits),
    #: as ``barlake.providers.urls.url_chars`` counts it.
    symbols_chars: int | None = None
    #: Whether the provider refuses a symbol it does not know with an error (never with an
    #: empty answer), so that an answer without bars is evidence the symbol did not trade then.
    #: Vendors that omit unknown symbols, or answer nothing for a wrong feed or a missing
    #: entitlement, leave it False: their empty answer covers nothing until they have shown
    #: bars of the symbol.
    refuses_unknown: bool = False
    #: Seconds a request typically takes to be answered, for ``lake plan``'s time estimate
    #: until a job has measured the provider's latency (the catalog keeps each job's).
    latency_s: float = 0.3
    #: Symbols one corporate-actions request may name; 0 when the provider serves none
    #: (``ActionSource``).
    action_symbols: int = 0
    #: Symbols one trades request may name, and trades one page may carry (a total across the
    #: symbols where the vendor counts it so); 0 when the provider serves no trades
    #: (``TradeSource``).
    trade_symbols: int = 0
    trades_per_page: int = 0


@dataclass(frozen=True)
class Request:
    """Bars of ``symbols`` at ``interval`` for the sessions in ``range`` (session dates)."""

    provider: str
    symbols: tuple[str, ...]
    interval: Interval
    range: DateRange

    def describe(self) -> str:
        who = self.symbols[0] if len(self.symbols) == 1 else f"{len(self.symbols)} symbols"
        return f"{self.provider} {self.interval} {who} {self.range}"


@dataclass(frozen=True)
class Page:
    """One provider response: bars in the lake's schema, and the cursor of the next page."""

    bars: pl.DataFrame
    next_cursor: str | None = None


@dataclass(frozen=True)
class ActionPage:
    """One corporate-actions response: the actions, and the cursor of the next page."""

    actions: list[Action]
    next_cursor: str | None = None


@dataclass(frozen=True)
class TradePage:
    """One trades response: prints in the lake's trades schema (``barlake.domain.trades``),
    and the cursor of the next page."""

    trades: pl.DataFrame
    next_cursor: str | None = None


class Provider(Protocol):
    """A source of bars. Implementations live in ``barlake.providers.<name>``."""

    name: str
    capabilities: Capabilities

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        """One page of ``request``; raise a ``barlake.errors.ProviderError`` on failure.

        Daily bars are keyed by session date at 00:00 UTC; intraday bars by their UTC start.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class ActionSource(Protocol):
    """A provider that also serves corporate actions (``Capabilities.action_symbols`` > 0)."""

    async def fetch_actions(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> ActionPage:
        """One page of the splits and dividends of ``symbols`` whose ex-dates are in
        ``window``; raise a ``barlake.errors.ProviderError`` on failure."""
        ...


class TradeSource(Protocol):
    """A provider that also serves trades (``Capabilities.trades_per_page`` > 0)."""

    async def fetch_trades(
        self, symbols: tuple[str, ...], window: DateRange, cursor: str | None = None
    ) -> TradePage:
        """One page of the trades of ``symbols`` in the sessions of ``window`` (session dates,
        half-open), oldest first; raise a ``barlake.errors.ProviderError`` on failure."""
        ...
