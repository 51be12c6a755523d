"""``lake gaps``, ``lake plan`` and ``lake fill``: find what is missing, plan it, fetch it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from barlake.cli.exits import EXIT_INCOMPLETE, EXIT_OK, fail, handles_errors
from barlake.cli.options import selected, selection
from barlake.cli.output import cell, emit_json, emit_table, short
from barlake.cli.state import State

#: What gaps and plan say when nothing is missing.
UP_TO_DATE = "up to date: nothing missing"


@click.command()
@selection
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also draw the coverage map (symbols x sessions, one interval) to this PNG file.",
)
@click.pass_obj
@handles_errors
def gaps(
    state: State, /, as_json: bool, plot: Path | None, intervals: str | None, **sel: Any
) -> None:
    """List missing sessions per symbol and interval; exit 1 when any."""
    if plot is not None:
        from barlake.cli.research import draw_coverage

        draw_coverage(state, plot, intervals, dict(sel))
    found = state.lake().gaps(sel.pop("symbols"), **selected(intervals, sel))
    rows = [g.to_dict() for g in found]
    if as_json:
        emit_json(rows)
    else:
        columns = ["symbol", "interval", "first", "last", "sessions"]
        emit_table(state, rows, columns, empty=UP_TO_DATE)
    sys.exit(EXIT_INCOMPLETE if rows else EXIT_OK)


@click.command()
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option("--explain", is_flag=True, help="Say per symbol where its range came from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def plan(state: State, /, as_json: bool, explain: bool, intervals: str | None, **sel: Any) -> None:
    """Show the requests a fill would make, with estimates; nothing is fetched."""
    result = state.lake().plan(sel.pop("symbols"), **selected(intervals, sel))
    data = result.to_dict(explain=explain)
    if as_json:
        emit_json(data)
        return
    if explain:
        emit_table(
            state,
            data["explain"],
            [
                "symbol",
                "interval",
                "first",
                "last",
                "source",
                "expected_sessions",
                "covered_sessions",
                "missing_sessions",
                "note",
            ],
            empty="nothing selected: no symbol has a range to explain",
        )
        click.echo()
    # Requests, sessions resampled from stored bars, skipped intervals: up to date without any.
    planned = data["requests"] or data["resampled"] or data["skipped"]
    emit_table(
        state,
        [{**r, "symbols": short(r["symbols"])} for r in data["requests"]],
        [
            "provider",
            "interval",
            "start",
            "end",
            "sessions",
            "estimated_bars",
            "estimated_pages",
            "symbols",
        ],
        empty=None if planned else UP_TO_DATE,
    )
    for s in data["skipped"]:
        click.echo(f"skipped {s['interval']} for {short(s['symbols'])}: {s['reason']}")
    local: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in data["resampled"]:
        local.setdefault((r["interval"], r["source"]), []).append(r)
    for (interval, source), steps in local.items():
        names = sorted({r["symbol"] for r in steps})
        click.echo(
            f"resampled {interval} from stored {source} bars (no request): "
            f"{sum(r['sessions'] for r in steps)} session(s) of {short(names)}"
        )
    if not planned:
        return
    state.say(
        f"{data['total_requests']} request(s), {data['total_pages']} call(s) with pages "
        f"(lower bound {data['lower_bound']}), ~{data['estimated_bars']:,} bars, "
        f"~{data['estimated_seconds']:.1f}s at {data['rate_limit_per_min']:g}/min"
    )


@click.command()
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option("--parallel", type=click.IntRange(min=1), help="Requests in flight (default 10).")
@click.option("--events", is_flag=True, help="Serve pending events instead of a selection.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Ask again for symbols set aside after the provider refused them as unknown.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Also fetch again the sessions `lake check` flags (bad values, duplicates, partial "
    "sessions, off-grid bars), replacing their stored bars.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the job result as JSON.")
@click.pass_obj
@handles_errors
def fill(
    state: State,
    /,
    as_json: bool,
    events: bool,
    retry_failed: bool,
    repair: bool,
    parallel: int | None,
    intervals: str | None,
    **sel: Any,
) -> None:
    """Fetch what is missing and write it; exit 1 when some symbols failed."""
    from barlake.cli.progress import bar

    lake = state.lake()
    command = " ".join(["lake", *sys.argv[1:]])
    symbols = sel.pop("symbols")
    with bar(enabled=not state.quiet and sys.stderr.isatty()) as on_progress:
        if events:
            chosen = {
                k: v for k, v in sel.items() if v is not None and k not in ("policy", "provider")
            }
            if chosen or symbols or intervals or retry_failed:
                fail("--events serves what the events say; drop the selection options")
            if repair:
                fail("--repair works on a selection; run it without --events")
            result = lake.fill_events(
                policy=sel["policy"],
                provider=sel["provider"],
                parallel=parallel,
                on_progress=on_progress,
                command=command,
            )
        else:
            result = lake.fill(
                symbols,
                parallel=parallel,
                on_progress=on_progress,
                command=command,
                retry_failed=retry_failed,
                repair=repair,
                **selected(intervals, sel),
            )
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        state.say(
            f"job {cell(data['job_id'])}: {data['status']}, {data['requests']} request(s), "
            f"{data['bars_written']:,} bars written in {data['duration_s']:.2f}s, "
            f"{data['symbols_done']} symbol(s) done, {data['symbols_failed']} failed"
        )
        from barlake.fetch.job import error_rows

        for err in error_rows(result.symbol_errors):
            state.say(f"  {err['symbol']} {err['interval']}: [{err['stage']}] {err['error']}")
        for w in error_rows(result.symbol_warnings):
            state.say(f"  {w['symbol']} {w['interval']}: warning: {w['warning']}")
        for s in data["skipped"]:
            state.say(f"  skipped {s['interval']} for {short(s['symbols'])}: {s['reason']}")
    sys.exit(EXIT_OK if result.ok else EXIT_INCOMPLETE)
