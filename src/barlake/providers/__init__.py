"""Providers of bars, by name. Each lives in its own module behind ``base.Provider``."""

from __future__ import annotations

from barlake.clock import Clock
from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.errors import UsageError
from barlake.providers.base import Capabilities, Page, Provider, Request
from barlake.providers.stream import LiveSource

__all__ = ["PROVIDERS", "Capabilities", "Page", "Provider", "Request", "open_provider"]

PROVIDERS: tuple[str, ...] = ("demo", "alpaca", "polygon", "massive", "yahoo", "binance")


def open_provider(
    name: str, config: ProviderConfig | None = None, *, clock: Clock | None = None
) -> Provider:
    """A ready provider called ``name``, configured by ``config`` (lake.yaml's entry);
    ``clock`` is "now" for the providers whose answers depend on it (demo, yahoo)."""
    config = config or ProviderConfig()
    if name == "demo":
        from barlake.providers.demo import DemoConfig, DemoProvider

        options = dict(config.options)
        if config.rate_limit_per_min is not None:
            options.setdefault("rate_limit_per_min", config.rate_limit_per_min)
        return DemoProvider(
            parse_config(DemoConfig, options, "providers.demo.options"), clock=clock
        )
    if name == "alpaca":
        from barlake.providers.alpaca import AlpacaProvider

        return AlpacaProvider(config)
    if name in ("polygon", "massive"):
        from barlake.providers.polygon import PolygonProvider

        return PolygonProvider(config, name=name)
    if name == "yahoo":
        from barlake.providers.yahoo import YahooProvider

        return YahooProvider(config, clock=clock)
    if name == "binance":
        from barlake.providers.binance import BinanceProvider

        return BinanceProvider(config)
    msg = f"unknown provider {name!r}; use one of: {', '.join(PROVIDERS)}"
    raise UsageError(msg)


#: Providers with a real-time bar stream (``providers.stream.LiveSource``); the others are
#: followed by polling their REST endpoint once a minute.
STREAMS: tuple[str, ...] = ("demo", "alpaca", "polygon", "massive")


def open_stream(
    name: str, config: ProviderConfig | None = None, *, clock: Clock | None = None
) -> LiveSource:
    """The real-time stream of provider ``name``, configured by lake.yaml's entry for it;
    ``clock`` is "now" for the demo's, which publishes each minute as it closes."""
    if name == "demo":
        from barlake.providers.demo.stream import DemoStream

        return DemoStream(clock=clock)
    if name == "alpaca":
        from barlake.providers.alpaca_stream import AlpacaStream

        return AlpacaStream(config)
    if name in ("polygon", "massive"):
        from barlake.providers.polygon_stream import PolygonStream

        return PolygonStream(config, name=name)
    msg = f"provider {name!r} has no stream; it is followed by polling"
    raise UsageError(msg)
