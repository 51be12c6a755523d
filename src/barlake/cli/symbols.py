"""``lake init`` and ``lake symbols``: the lake and the symbols it tracks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from barlake.cli.exits import handles_errors
from barlake.cli.options import iso_date
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


@click.command()
@click.pass_obj
@handles_errors
def init(state: State) -> None:
    """Create the lake directory and its catalog (safe to run again)."""
    from barlake.lake import Lake

    lake = Lake.init(state.root)
    state.say(f"lake ready at {lake.root}")


@click.group()
def symbols() -> None:
    """Manage the symbols the lake tracks."""


@symbols.command("add")
@click.argument("names", nargs=-1, required=True)
@click.option("--calendar", help="Exchange calendar, e.g. XNYS, XLON, 24/7.")
@click.option("--asset-class", help="e.g. equity, crypto.")
@click.option("--listed-on", callback=iso_date, help="First session the symbol traded.")
@click.option("--delisted-on", callback=iso_date, help="Last session the symbol traded.")
@click.pass_obj
@handles_errors
def symbols_add(state: State, /, names: tuple[str, ...], **attributes: Any) -> None:
    """Add symbols, space- or comma-separated: lake symbols add AAPL,MSFT BRK/B.

    Tickers are upper-cased (aapl is AAPL). A new crypto pair (BTCUSDT, ETH-USD, BTC/USDT) is
    tracked as asset class crypto on the 24/7 calendar; one put on an exchange calendar is
    warned about.
    """
    given = {k: v for k, v in attributes.items() if v is not None}
    lake = state.lake()
    count = lake.add_symbols(list(names), **given)
    state.say(f"{count} symbol(s) added or updated")
    for line in lake.calendar_warnings(list(names)):
        state.say(f"warning: {line}")


@symbols.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_obj
@handles_errors
def symbols_import(state: State, file: Path) -> None:
    """Add or update symbols from a CSV, Parquet or JSON file with a `symbol` column, or a
    .txt list.

    A .txt file lists one symbol a line; `#` starts a comment and blank lines are skipped.
    """
    lake = state.lake()
    count = lake.import_symbols(file)
    state.say(f"{count} symbol(s) imported from {file}")
    warnings = lake.calendar_warnings([str(r["symbol"]) for r in lake.symbol_rows()])
    for line in warnings[:5]:
        state.say(f"warning: {line}")
    if len(warnings) > 5:
        state.say(f"warning: {len(warnings) - 5} more crypto pair(s) on exchange calendars")


@symbols.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def symbols_list(state: State, as_json: bool) -> None:
    """List the symbols; set_aside names the providers that refused one as unknown."""
    rows = state.lake().symbol_rows()
    if as_json:
        emit_json(rows)
    else:
        columns = ["symbol", "layer", "calendar", "listed_on", "delisted_on", "active"]
        empty = "no symbols yet: add some with `lake symbols add`"
        emit_table(state, rows, [*columns, "set_aside"], empty=empty)


@symbols.command("remove")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
@handles_errors
def symbols_remove(state: State, names: tuple[str, ...]) -> None:
    """Remove symbols from the catalog (their bars stay until pruned)."""
    count = state.lake().remove_symbols(list(names))
    state.say(f"{count} symbol(s) removed")
