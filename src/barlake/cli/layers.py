"""``lake layers``, ``lake events`` and ``lake prune``: layers, their events, retention.

Layers decide each symbol's retention; every change is an event that ``lake fill --events``
serves; pruning removes what fell out.
"""

from __future__ import annotations

from pathlib import Path

import click

from barlake.cli.exits import handles_errors
from barlake.cli.options import selected, symbol_list
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


def _say_layers(state: State, counts: dict[str, int]) -> None:
    state.say(
        f"{counts['symbols']} symbol(s) updated: {counts['promoted']} promoted, "
        f"{counts['demoted']} demoted, {counts['qualified']} newly qualified"
    )


@click.group()
def layers() -> None:
    """Set scanner layers (0-3) that decide each symbol's retention."""


@layers.command("set")
@click.argument("names", nargs=-1, required=True)
@click.option("--layer", type=click.IntRange(0, 3), required=True, help="The layer, 0-3.")
@click.option("--liquidity-score", type=float, help="Liquidity score to record.")
@click.pass_obj
@handles_errors
def layers_set(
    state: State, /, names: tuple[str, ...], layer: int, liquidity_score: float | None
) -> None:
    """Put symbols at a layer: lake layers set AAPL,MSFT --layer 3."""
    counts = state.lake().set_layers(list(names), layer, liquidity_score=liquidity_score)
    _say_layers(state, counts)


@layers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_obj
@handles_errors
def layers_import(state: State, /, file: Path) -> None:
    """Layers from a scanner's CSV, Parquet or JSON: symbol and layer (or layerN_qualified)."""
    _say_layers(state, state.lake().import_layers(file))


@layers.command("compute")
@click.option("--policy", help="Policy with the liquidity thresholds (default: lake.yaml's).")
@click.pass_obj
@handles_errors
def layers_compute(state: State, /, policy: str | None) -> None:
    """Score liquidity from the lake's daily bars and qualify layer 1 by the policy."""
    _say_layers(state, state.lake().compute_layers(policy))


@click.command()
@click.option("--pending", is_flag=True, help="Only events not yet served.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def events(state: State, /, pending: bool, as_json: bool) -> None:
    """List events (layer changes, detected gaps) and the jobs that served them."""
    from barlake.views.serialize import event_rows

    rows = event_rows(state.lake().events(pending=pending))
    if as_json:
        emit_json(rows)
    else:
        columns = ["id", "type", "payload", "created_at", "processed_at", "job_id", "request_id"]
        empty = "no pending events" if pending else "no events yet"
        emit_table(state, rows, columns, empty=empty)


@click.command()
@click.option("--policy", help="Retention policy (default: lake.yaml's default_policy).")
@click.option("--symbols", callback=symbol_list, help="Only these symbols.")
@click.option("--dry-run", is_flag=True, help="Report what would go; remove nothing.")
@click.option(
    "--interval", "intervals", help="Only these datasets: a comma list of intervals and trades."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def prune(
    state: State,
    /,
    policy: str | None,
    symbols: list[str] | None,
    dry_run: bool,
    intervals: str | None,
    as_json: bool,
) -> None:
    """Remove bars older than each symbol's retention, file by file, atomically."""
    chosen = selected(intervals, {})["interval"]
    lake = state.lake()
    report = lake.prune(policy, dry_run=dry_run, symbols=symbols, interval=chosen).to_dict()
    if as_json:
        emit_json(report)
        return
    emit_table(state, report["removed"], ["symbol", "interval", "bars"], empty=None)
    verb = "would remove" if dry_run else "removed"
    state.say(
        f"{verb} {report['bars_removed']:,} bars: {report['files_rewritten']} file(s) rewritten, "
        f"{report['files_deleted']} deleted"
        + (f"; {report['trades_removed']:,} trades" if report["trades_removed"] else "")
    )
