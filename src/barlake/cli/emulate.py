"""``lake emulate PROVIDER``: a vendor's HTTP emulator in the foreground."""

from __future__ import annotations

import sys

import click

from barlake.cli.exits import EXIT_OK, handles_errors
from barlake.cli.options import symbol_list


@click.command()
@click.argument("provider")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option("--api-key", default="test-key", show_default=True, help="Key the emulator accepts.")
@click.option("--api-secret", default="test-secret", show_default=True, help="Secret it accepts.")
@click.option("--rate-limit", type=float, help="Requests per minute before 429s.")
@click.option("--faults", help="e.g. 5xx=0.1,slow=0.05,truncated=0.02 (probability per response).")
@click.option("--symbols", callback=symbol_list, help="Symbols with bars (default: any).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the faults.")
@handles_errors
def emulate(
    provider: str,
    port: int,
    api_key: str,
    api_secret: str,
    rate_limit: float | None,
    faults: str | None,
    symbols: list[str] | None,
    seed: int,
) -> None:
    """Serve a provider's HTTP emulator on 127.0.0.1 (its URL on stdout) until Ctrl-C.

    Point barlake at it with LAKE_<PROVIDER>_BASE_URL=URL and the same key.
    """
    from barlake.providers.emulators import serve

    try:
        serve(
            provider,
            port,
            api_key,
            api_secret,
            rate_limit,
            faults,
            symbols=symbols,
            seed=seed,
            on_ready=lambda em: click.echo(em.url),
        )
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)
