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
    from barlake.views.serialize import follower_rows, job_rows

    lake = state.lake()
    (row,) = job_rows([lake.status(job)])
    followers = follower_rows(lake.followers()) if job is None else []
    if as_json:
        emit_json({**row, "followers": followers} if job is None else row)
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
    if followers:
        shown = [
            {
                **f,
                "symbols": f"{len(f['symbols'])}: {','.join(f['symbols'][:3])}"
                + (",..." if len(f["symbols"]) > 3 else ""),
                "id": f["id"][:8],
            }
            for f in followers
        ]
        columns = ["id", "provider", "state", "symbols", "last_bar", "lag_s", "reconnects"]
        emit_table(state, shown, columns, empty=None)


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
