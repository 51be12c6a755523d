"""``lake status``, ``lake jobs`` and ``lake errors``: what fills did and are doing."""

from __future__ import annotations

import click

from barlake.cli.exits import handles_errors
from barlake.cli.output import cell, emit_fields, emit_json, emit_table
from barlake.cli.state import State


@click.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def status(state: State, /, job: str | None, as_json: bool) -> None:
    """Show a job's live counts (the latest job when JOB is omitted; a prefix is enough)."""
    from barlake.views.serialize import job_rows

    (row,) = job_rows([state.lake().status(job)])
    if as_json:
        emit_json(row)
        return
    fields = [
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
    ]
    progress = ", ".join(f"{k} {cell(v)}" for k, v in row["progress"].items())
    emit_fields({**row, "progress": progress}, [*fields, "progress"])


@click.command()
@click.option("--limit", default=20, show_default=True, help="How many jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def jobs(state: State, /, limit: int, as_json: bool) -> None:
    """List recent jobs, newest first."""
    from barlake.views.serialize import job_rows

    rows = job_rows(state.lake().jobs(limit).to_dicts())
    if as_json:
        emit_json(rows)
    else:
        emit_table(
            state,
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
            empty="no jobs yet: `lake fill` runs one",
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
    else:
        columns = ["symbol", "interval", "stage", "timestamp", "error"]
        emit_table(state, error_rows(found), columns, empty="no errors")
