"""Local HTTP emulators of the vendors' wire formats, serving the demo provider's bars.

Tests and benchmarks start one in a thread and point a provider at it::

    with AlpacaEmulator(api_key="k", api_secret="s", faults="5xx=0.1", seed=1) as emulator:
        ...  # providers: {alpaca: {base_url: emulator.url, options: {api_key: k, ...}}}

``serve`` runs one in the foreground, for ``lake emulate PROVIDER``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from barlake.errors import UsageError
from barlake.providers.emulators.alpaca import AlpacaEmulator
from barlake.providers.emulators.base import Emulator, RateLimit
from barlake.providers.emulators.binance import BinanceEmulator
from barlake.providers.emulators.faults import FAULTS, Faults, parse_faults
from barlake.providers.emulators.polygon import PolygonEmulator
from barlake.providers.emulators.yahoo import YahooEmulator

__all__ = [
    "EMULATORS",
    "FAULTS",
    "AlpacaEmulator",
    "BinanceEmulator",
    "Emulator",
    "Faults",
    "PolygonEmulator",
    "RateLimit",
    "YahooEmulator",
    "open_emulator",
    "parse_faults",
    "serve",
]

EMULATORS: dict[str, type[Emulator]] = {
    "alpaca": AlpacaEmulator,
    "polygon": PolygonEmulator,
    "massive": PolygonEmulator,
    "yahoo": YahooEmulator,
    "binance": BinanceEmulator,
}


def open_emulator(provider: str, **settings: Any) -> Emulator:
    """An emulator of ``provider`` (not started); ``settings`` as ``Emulator`` takes them."""
    try:
        kind = EMULATORS[provider]
    except KeyError:
        msg = f"no emulator for provider {provider!r}; use one of: {', '.join(EMULATORS)}"
        raise UsageError(msg) from None
    return kind(**settings)


def serve(
    provider: str,
    port: int = 0,
    api_key: str = "test-key",
    api_secret: str | None = "test-secret",
    rate_limit: float | None = None,
    faults: str | None = None,
    *,
    symbols: Sequence[str] | None = None,
    seed: int = 0,
    on_ready: Callable[[Emulator], None] | None = None,
) -> None:
    """Serve ``provider``'s emulator on 127.0.0.1:``port`` (0: a free one) until interrupted.

    ``rate_limit`` is requests per minute before 429s; ``faults`` a spec such as
    ``"5xx=0.1,slow=0.05"``; ``symbols`` the symbols with bars (and the grouped-daily market).
    Yahoo and Binance need no key: ``api_key`` and ``api_secret`` are ignored there.
    ``on_ready`` is called once listening (default: one line on stderr with the URL).
    """
    emulator = open_emulator(
        provider,
        api_key=api_key,
        api_secret=api_secret,
        rate_limit=rate_limit,
        faults=faults,
        seed=seed,
        symbols=symbols,
        port=port,
    )
    emulator.start()
    try:
        if on_ready is not None:
            on_ready(emulator)
        else:
            print(f"{provider} emulator on {emulator.url} (Ctrl-C stops it)", file=sys.stderr)
        emulator.wait()
    finally:
        emulator.stop()
