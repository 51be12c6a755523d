"""``lake follow``: keep a selection's minute bars current through the session."""

from __future__ import annotations

import signal
import sys
import threading

import click

from barlake.cli.exits import EXIT_INTERRUPTED, EXIT_OK, handles_errors
from barlake.cli.options import symbol_list
from barlake.cli.output import emit_json
from barlake.cli.state import State


@click.command()
@click.argument("names", nargs=-1, metavar="[SYMBOLS]...")
@click.option("--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT.")
@click.option("--provider", help="Provider name (default: lake.yaml's follow or default_provider).")
@click.option("--json", "as_json", is_flag=True, help="Print the session's summary as JSON.")
@click.pass_obj
@handles_errors
def follow(
    state: State,
    /,
    names: tuple[str, ...],
    symbols: list[str] | None,
    provider: str | None,
    as_json: bool,
) -> None:
    """Follow minute bars live from the provider's stream until today's session is final.

    Starts by filling from the last stored minute to now; live bars are visible to
    ``Lake.bars`` within seconds; a lost connection is reopened and the minutes it missed
    fetched; after the close the session is fetched again as final. SIGTERM stops it.
    """
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        chosen = [*names, *(symbols or [])] or None
        result = state.lake().follow(chosen, provider=provider, stop=stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        state.say(
            f"{len(data['symbols'])} symbol(s) from {data['provider']}: "
            f"{data['bars']} live bar(s), "
            f"{data['corrections']} correction(s), {data['backfilled']} backfilled after "
            f"{data['reconnects']} reconnect(s); session {data['session']} final with "
            f"{data['final_bars']} bar(s), {data['differences']} minute(s) differing from live"
        )
    sys.exit(EXIT_INTERRUPTED if stop.is_set() else EXIT_OK)
