"""``lake check``: the data-quality rules over stored bars."""

from __future__ import annotations

import sys
from typing import Any

import click

from barlake.cli.exits import EXIT_INCOMPLETE, EXIT_OK, handles_errors
from barlake.cli.options import selected, selection
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


@click.command()
@selection
@click.option("--webhook", help="POST a JSON summary here when anything is found.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
@handles_errors
def check(
    state: State, /, as_json: bool, webhook: str | None, intervals: str | None, **sel: Any
) -> None:
    """Check stored bars (gaps, OHLC, prices, timestamps, jumps, ...); exit 1 on errors."""
    result = state.lake().check(sel.pop("symbols"), webhook=webhook, **selected(intervals, sel))
    rows = [f.to_dict() for f in result.findings]
    if as_json:
        emit_json(rows)
    else:
        columns = ["severity", "rule", "symbol", "interval", "first", "last", "message"]
        emit_table(state, rows, columns, empty=None)
    summary = result.summary()["by_severity"]
    state.say(
        f"checked {result.checked} series: {summary['error']} error(s), "
        f"{summary['warning']} warning(s), {summary['info']} note(s); "
        f"{result.gap_events} gap event(s) queued for `lake fill --events`"
    )
    if result.alert_error:
        state.say(f"warning: {result.alert_error}")
    sys.exit(EXIT_INCOMPLETE if result.errors else EXIT_OK)
