"""``lake gaps``, ``lake plan`` and ``lake fill``: find what is missing, plan it, fetch it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from barlake.cli.exits import EXIT_INCOMPLETE, EXIT_OK, fail, handles_errors
from barlake.cli.options import selected, selection
from barlake.cli.output import cell, emit_json, emit_table, short
from barlake.cli.state import State

#: What gaps and plan say when nothing is missing.
UP_TO_DATE = "up to date: nothing missing"

if TYPE_CHECKING:
    from barlake.planning.plan import Plan
    from barlake.universe.members import Member


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
    """Show the requests a fill would make, with estimates; nothing is fetched.

    A request is one provider call (one page), as `lake fill` counts them; the table lists the
    ranges asked for, each taking one request or more.

    A symbol the lake does not track is an error: `lake fill SYMBOL --dry-run` shows the plan
    of a fill that would track it.
    """
    result = state.lake().plan(sel.pop("symbols"), **selected(intervals, sel))
    show_plan(state, result, as_json=as_json, explain=explain)


def show_plan(state: State, result: Plan, *, as_json: bool, explain: bool) -> None:
    """A plan as ``lake plan`` prints it: JSON, or the tables and a summary line."""
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
    planned = (
        data["ranges"]
        or data["resampled"]
        or data["skipped"]
        or data["action_requests"]
        or data["trade_requests"]
    )
    emit_table(
        state,
        [{**r, "symbols": short(r["symbols"])} for r in data["ranges"]],
        [
            "provider",
            "interval",
            "start",
            "end",
            "sessions",
            "estimated_bars",
            "estimated_requests",
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
    for a in data["action_requests"]:
        click.echo(
            f"corporate actions {a['start']}..{a['end']} of {short(a['symbols'])} "
            "(after the bars, at the same rate limit)"
        )
    for t in data["trade_requests"]:
        click.echo(
            f"trades {t['start']}..{t['end']} of {short(t['symbols'])}: {t['sessions']} "
            f"session(s), ~{t['estimated_requests']} request(s) (before the bars)"
        )
    if not planned:
        return
    pace = data["estimate"]
    state.say(
        f"{data['total_requests']} request(s) (provider calls, one per page; lower bound "
        f"{data['lower_bound']}) over {data['total_ranges']} range(s), "
        f"~{data['estimated_bars']:,} bars, ~{data['estimated_seconds']:.1f}s at "
        f"{data['rate_limit_per_min']:g}/min, {pace['latency_s'] * 1000:.0f} ms a request "
        f"({pace['latency_source']}), {pace['parallel']} in flight"
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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan (as `lake plan` does, new symbols included) and stop: nothing is "
    "fetched or written.",
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
    dry_run: bool,
    parallel: int | None,
    intervals: str | None,
    **sel: Any,
) -> None:
    """Fetch what is missing and write it; exit 1 when some symbols failed.

    A symbol the lake does not track yet (`lake fill AAPL --days 30`) is tracked first, as
    `lake symbols add` would add it, and said so on stderr.
    """
    from barlake.cli.progress import bar

    lake = state.lake()
    command = " ".join(["lake", *sys.argv[1:]])
    symbols = sel.pop("symbols")
    if events:
        chosen = {k: v for k, v in sel.items() if v is not None and k not in ("policy", "provider")}
        if chosen or symbols or intervals or retry_failed:
            fail("--events serves what the events say; drop the selection options")
        if repair:
            fail("--repair works on a selection; run it without --events")
    if dry_run:
        if repair:
            fail("--dry-run cannot show a repair's plan; `lake check` lists what --repair fetches")
        if events:
            found = lake.plan_events(policy=sel["policy"], provider=sel["provider"])
        else:
            found = lake.plan(
                symbols, track=True, retry_failed=retry_failed, **selected(intervals, sel)
            )
            new = lake.untracked(symbols) if symbols else []
            if new:
                state.say(f"would track new symbol(s): {short(new)} (dry run: nothing written)")
        show_plan(state, found, as_json=as_json, explain=False)
        return

    def tracked(found: Sequence[Member]) -> None:
        shown = ", ".join(f"{m.name} ({m.calendar.name})" for m in found)
        state.say(f"tracking new symbol(s): {shown}")

    with bar(enabled=not state.quiet and sys.stderr.isatty()) as on_progress:
        if events:
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
                on_track=tracked,
                **selected(intervals, sel),
            )
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        state.say(
            f"job {cell(data['job_id'])}: {data['status']}, {data['requests']} request(s) "
            f"(provider calls, of {data['requests_planned']} planned), "
            f"{data['bars_written']:,} bars written in {data['duration_s']:.2f}s, "
            f"{data['symbols_done']} symbol(s) done, {data['symbols_failed']} failed"
        )
        if data["trade_requests"]:
            state.say(
                f"  trades: {data['trades_written']:,} written in {data['trade_requests']} "
                "request(s)"
            )
        from barlake.fetch.job import error_rows

        for err in error_rows(result.symbol_errors):
            state.say(f"  {err['symbol']} {err['interval']}: [{err['stage']}] {err['error']}")
        for w in error_rows(result.symbol_warnings):
            state.say(f"  {w['symbol']} {w['interval']}: warning: {w['warning']}")
        for s in data["skipped"]:
            state.say(f"  skipped {s['interval']} for {short(s['symbols'])}: {s['reason']}")
    sys.exit(EXIT_OK if result.ok else EXIT_INCOMPLETE)
