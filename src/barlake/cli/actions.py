"""``lake actions``: the corporate actions (splits, dividends) stored beside the raw bars."""

from __future__ import annotations

import sys
from typing import Any

import click

from barlake.cli.exits import EXIT_INCOMPLETE, EXIT_OK, handles_errors
from barlake.cli.options import iso_date, selected, selection, symbol_list
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State

#: What ``lake actions list`` shows on a terminal.
COLUMNS = ["symbol", "type", "ex_date", "ratio", "amount", "currency", "source"]


@click.group()
def actions() -> None:
    """Fetch and list corporate actions (splits, dividends) used by adjusted reads."""


@actions.command("fetch")
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def actions_fetch(state: State, /, as_json: bool, intervals: str | None, **sel: Any) -> None:
    """Fetch the selection's splits and dividends and store them; exit 1 when some failed."""
    result = state.lake().fetch_actions(sel.pop("symbols"), **selected(intervals, sel))
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        state.say(
            f"{data['actions']} action(s) of {data['symbols']} symbol(s) from "
            f"{data['provider']} ({data['first']}..{data['last']}) in {data['requests']} "
            f"request(s), {data['new']} new"
        )
        for symbol, error in sorted(data["errors"].items()):
            state.say(f"{symbol}: {error}")
    sys.exit(EXIT_INCOMPLETE if data["errors"] else EXIT_OK)


@actions.command("list")
@click.option("--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT (default: all).")
@click.option("--type", "types", callback=symbol_list, help="Comma list of action types.")
@click.option("--start", callback=iso_date, help="First ex-date, inclusive (YYYY-MM-DD).")
@click.option("--end", callback=iso_date, help="Last ex-date, inclusive (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def actions_list(state: State, /, as_json: bool, **options: Any) -> None:
    """List stored actions, by symbol and ex-date."""
    lake = state.lake()
    rows = lake.actions(options.pop("symbols"), **options)
    if as_json:
        emit_json(rows)
    else:
        emit_table(state, rows, COLUMNS, empty="no actions on record")
