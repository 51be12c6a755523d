"""``lake status``, ``lake jobs`` and ``lake errors``: what fills did and are doing."""

from __future__ import annotations

import click

from barlake.cli.exits import handles_errors
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


@click.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def status(state: State, /, job: str | None, as_json: bool) -> None:
    """Show a job's live counts (the latest job when JOB is omitted; a prefix is enough)."""
    row = state.lake().status(job)
    if as_json:
        emit_json(row)
        return
    for key in (
        "job_id",
        "status",
        "created_at",
        "finished_at",
        "provider",
        "command",
        "requests_planned",
        "requests_made",
        "bars_written",
        "symbols_total",
        "symbols_done",
        "symbols_failed",
        "records_loaded",
    ):
        click.echo(f"{key:17} {'' if row.get(key) is None else row[key]}")
    click.echo(f"{'progress':17} " + ", ".join(f"{k} {v}" for k, v in row["progress"].items()))


@click.command()
@click.option("--limit", default=20, show_default=True, help="How many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def jobs(state: State, /, limit: int, as_json: bool) -> None:
    """List recent jobs, newest first."""
    rows = state.lake().jobs(limit).to_dicts()
    if as_json:
        emit_json(rows)
    else:
        emit_table(
            rows,
            [
                "job_id",
                "status",
                "created_at",
                "provider",
                "requests_made",
                "bars_written",
                "symbols_done",
                "symbols_failed",
            ],
        )


@click.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def errors(state: State, /, job: str | None, as_json: bool) -> None:
    """List a job's per-symbol errors with their stage (latest job when JOB is omitted)."""
    from barlake.fetch.job import error_rows

    found = state.lake().errors(job)
    if as_json:
        emit_json(found)
    elif found:
        emit_table(error_rows(found), ["symbol", "interval", "stage", "timestamp", "error"])
    else:
        state.say("no errors")
