"""The ``lake`` command: parse, make one library call, render, map errors to exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from barlake.domain.intervals import INTERVALS
from barlake.errors import LakeError
from barlake.lake import Lake

#: Exit codes (DESIGN.md "CLI").
EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE, EXIT_PROVIDER, EXIT_STORAGE, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)

F = TypeVar("F", bound=Callable[..., Any])


class State:
    def __init__(self, root: Path, *, quiet: bool, verbose: bool) -> None:
        self.root, self.quiet, self.verbose = root, quiet, verbose

    def lake(self) -> Lake:
        return Lake.open(self.root)

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(func: F) -> F:
    """Turn ``LakeError`` into one line on stderr and its exit code (traceback with --verbose)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LakeError as exc:
            state = click.get_current_context().find_object(State)
            if state is not None and state.verbose:
                raise
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Aligned columns on stdout, for people."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def iso_date(_ctx: Any, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        msg = f"{value!r} is not an ISO date (YYYY-MM-DD)"
        raise click.BadParameter(msg, param=param) from None


def symbol_list(_ctx: Any, _param: click.Parameter, value: str | None) -> list[str] | None:
    return None if value is None else [s for s in value.replace(" ", ",").split(",") if s]


def selection(func: F) -> F:
    """The options plan, fill and gaps share."""
    options: Iterable[Callable[[F], F]] = (
        click.option(
            "--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT (default: all)."
        ),
        click.option("--layer", type=click.IntRange(0, 3), help="Only symbols of this layer."),
        click.option(
            "--interval",
            "intervals",
            help=f"Comma list of: {' '.join(INTERVALS)} (default: the policy's, else 1day).",
        ),
        click.option(
            "--policy",
            help="Retention policy: a name (lake's policies/ folder, then built-in) or a path.",
        ),
        click.option("--days", type=click.IntRange(min=1), help="The N calendar days to today."),
        click.option("--start", callback=iso_date, help="First date, inclusive (YYYY-MM-DD)."),
        click.option("--end", callback=iso_date, help="Last date, inclusive (default: today)."),
    )
    for option in reversed(list(options)):
        func = option(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--lake",
    "root",
    envvar="LAKE_ROOT",
    default="lake",
    show_default=True,
    type=click.Path(path_type=Path),
    help="The lake directory (env LAKE_ROOT).",
)
@click.option("--quiet", "-q", is_flag=True, help="Only data and errors.")
@click.option("--verbose", "-v", is_flag=True, help="Tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, root: Path, quiet: bool, verbose: bool) -> None:
    """barlake: a local market-data lake of Parquet bars, with gap-aware backfills."""
    ctx.obj = State(root, quiet=quiet, verbose=verbose)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``lake`` console script: usage errors are one line and exit 2."""
    try:
        cli.main(args=argv, prog_name="lake", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        fail(f"{exc.format_message()}{hint}", EXIT_USAGE)
    except click.ClickException as exc:
        fail(exc.format_message(), EXIT_USAGE)
    except (click.Abort, KeyboardInterrupt):
        fail("interrupted", EXIT_INTERRUPTED)


@cli.command()
@click.pass_obj
@handles_errors
def init(state: State) -> None:
    """Create the lake directory and its catalog (safe to run again)."""
    lake = Lake.init(state.root)
    state.say(f"lake ready at {lake.root}")


# -- symbols ---------------------------------------------------------------------------------


@cli.group()
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
    """Add symbols, space- or comma-separated: lake symbols add AAPL,MSFT BRK/B."""
    given = {k: v for k, v in attributes.items() if v is not None}
    count = state.lake().add_symbols(list(names), **given)
    state.say(f"{count} symbol(s) added or updated")


@symbols.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_obj
@handles_errors
def symbols_import(state: State, file: Path) -> None:
    """Add or update symbols from a CSV or Parquet file with a `symbol` column."""
    count = state.lake().import_symbols(file)
    state.say(f"{count} symbol(s) imported from {file}")


@symbols.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def symbols_list(state: State, as_json: bool) -> None:
    """List the symbols."""
    rows = state.lake().symbols().to_dicts()
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, ["symbol", "layer", "calendar", "listed_on", "delisted_on", "active"])


@symbols.command("remove")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
@handles_errors
def symbols_remove(state: State, names: tuple[str, ...]) -> None:
    """Remove symbols from the catalog (their bars stay until pruned)."""
    count = state.lake().remove_symbols(list(names))
    state.say(f"{count} symbol(s) removed")


# -- gaps ------------------------------------------------------------------------------------


@cli.command()
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
        _draw_coverage(state, plot, intervals, dict(sel))
    found = state.lake().gaps(sel.pop("symbols"), **_selection(intervals, sel))
    rows = [g.to_dict() for g in found]
    if as_json:
        emit_json(rows)
    elif rows:
        emit_table(rows, ["symbol", "interval", "first", "last", "sessions"])
    else:
        state.say("no gaps")
    sys.exit(EXIT_INCOMPLETE if rows else EXIT_OK)


# -- plan and fill ---------------------------------------------------------------------------


def _selection(intervals: str | None, sel: dict[str, Any]) -> dict[str, Any]:
    from barlake.domain.intervals import parse_intervals

    return {**sel, "interval": parse_intervals(intervals) if intervals else None}


@cli.command()
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option("--explain", is_flag=True, help="Say per symbol where its range came from.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def plan(state: State, /, as_json: bool, explain: bool, intervals: str | None, **sel: Any) -> None:
    """Show the requests a fill would make, with estimates; nothing is fetched."""
    result = state.lake().plan(sel.pop("symbols"), **_selection(intervals, sel))
    data = result.to_dict(explain=explain)
    if as_json:
        emit_json(data)
        return
    if explain:
        emit_table(
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
        )
        click.echo()
    emit_table(
        [{**r, "symbols": _short(r["symbols"])} for r in data["requests"]],
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
    )
    for s in data["skipped"]:
        click.echo(f"skipped {s['interval']} for {_short(s['symbols'])}: {s['reason']}")
    state.say(
        f"{data['total_requests']} request(s), {data['total_pages']} call(s) with pages "
        f"(lower bound {data['lower_bound']}), ~{data['estimated_bars']:,} bars, "
        f"~{data['estimated_seconds']:.1f}s at {data['rate_limit_per_min']:g}/min"
    )


def _short(symbols: Sequence[str], shown: int = 4) -> str:
    head = ",".join(symbols[:shown])
    return head + (f",+{len(symbols) - shown}" if len(symbols) > shown else "")


@cli.command()
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option("--parallel", type=click.IntRange(min=1), help="Requests in flight (default 10).")
@click.option("--events", is_flag=True, help="Serve pending events instead of a selection.")
@click.option("--json", "as_json", is_flag=True, help="Print the job result as JSON.")
@click.pass_obj
@handles_errors
def fill(
    state: State,
    /,
    as_json: bool,
    events: bool,
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
            if chosen or symbols or intervals:
                fail("--events serves what the events say; drop the selection options")
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
                **_selection(intervals, sel),
            )
    data = result.to_dict()
    if as_json:
        emit_json(data)
    else:
        state.say(
            f"job {data['job_id']}: {data['status']}, {data['requests']} request(s), "
            f"{data['bars_written']:,} bars written in {data['duration_s']:.2f}s, "
            f"{data['symbols_done']} symbol(s) done, {data['symbols_failed']} failed"
        )
        for sym, err in data["symbol_errors"].items():
            state.say(f"  {sym}: [{err['stage']}] {err['error']}")
        for s in data["skipped"]:
            state.say(f"  skipped {s['interval']} for {_short(s['symbols'])}: {s['reason']}")
    sys.exit(EXIT_OK if result.ok else EXIT_INCOMPLETE)


@cli.command()
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


@cli.command()
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


@cli.command()
@click.argument("job", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def errors(state: State, /, job: str | None, as_json: bool) -> None:
    """List a job's per-symbol errors with their stage (latest job when JOB is omitted)."""
    found = state.lake().errors(job)
    if as_json:
        emit_json(found)
    elif found:
        emit_table(
            [{"symbol": s, **e} for s, e in found.items()],
            ["symbol", "interval", "stage", "timestamp", "error"],
        )
    else:
        state.say("no errors")


# -- layers, events, retention ---------------------------------------------------------------


def _say_layers(state: State, counts: dict[str, int]) -> None:
    state.say(
        f"{counts['symbols']} symbol(s) updated: {counts['promoted']} promoted, "
        f"{counts['demoted']} demoted, {counts['qualified']} newly qualified"
    )


@cli.group()
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


@cli.command()
@click.option("--pending", is_flag=True, help="Only events not yet served.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def events(state: State, /, pending: bool, as_json: bool) -> None:
    """List events (layer changes, detected gaps) and the jobs that served them."""
    rows = state.lake().events(pending=pending).to_dicts()
    for row in rows:
        row["payload"] = json.loads(row["payload"] or "null")
    if as_json:
        emit_json(rows)
    else:
        emit_table(
            [{**r, "payload": json.dumps(r["payload"])} for r in rows],
            ["id", "type", "payload", "created_at", "processed_at", "job_id"],
        )


@cli.command()
@click.option("--policy", help="Retention policy (default: lake.yaml's default_policy).")
@click.option("--symbols", callback=symbol_list, help="Only these symbols.")
@click.option("--dry-run", is_flag=True, help="Report what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def prune(
    state: State, /, policy: str | None, symbols: list[str] | None, dry_run: bool, as_json: bool
) -> None:
    """Remove bars older than each symbol's retention, file by file, atomically."""
    report = state.lake().prune(policy, dry_run=dry_run, symbols=symbols).to_dict()
    if as_json:
        emit_json(report)
        return
    if report["removed"]:
        emit_table(report["removed"], ["symbol", "interval", "bars"])
    verb = "would remove" if dry_run else "removed"
    state.say(
        f"{verb} {report['bars_removed']:,} bars: {report['files_rewritten']} file(s) rewritten, "
        f"{report['files_deleted']} deleted"
    )


# -- quality ---------------------------------------------------------------------------------


@cli.command()
@selection
@click.option("--webhook", help="POST a JSON summary here when anything is found.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
@handles_errors
def check(
    state: State, /, as_json: bool, webhook: str | None, intervals: str | None, **sel: Any
) -> None:
    """Check stored bars (gaps, OHLC, prices, timestamps, jumps, ...); exit 1 on errors."""
    result = state.lake().check(sel.pop("symbols"), webhook=webhook, **_selection(intervals, sel))
    rows = [f.to_dict() for f in result.findings]
    if as_json:
        emit_json(rows)
    elif rows:
        emit_table(rows, ["severity", "rule", "symbol", "interval", "first", "last", "message"])
    summary = result.summary()["by_severity"]
    state.say(
        f"checked {result.checked} series: {summary['error']} error(s), "
        f"{summary['warning']} warning(s), {summary['info']} note(s); "
        f"{result.gap_events} gap event(s) queued for `lake fill --events`"
    )
    if result.alert_error:
        state.say(f"warning: {result.alert_error}")
    sys.exit(EXIT_INCOMPLETE if result.errors else EXIT_OK)


# -- pictures and pages ----------------------------------------------------------------------


def _draw_coverage(state: State, path: Path, intervals: str | None, sel: dict[str, Any]) -> None:
    from barlake.domain.intervals import parse_intervals

    chosen = parse_intervals(intervals or "1day")
    if len(chosen) != 1:
        fail("--plot draws one interval; pass a single --interval")
    coverage = state.lake().coverage(sel.pop("symbols"), interval=chosen[0], **sel)
    coverage.plot(path)
    state.say(f"coverage map of {len(coverage.symbols)} symbol(s) written to {path}")


@cli.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT (default: all).")
@click.option(
    "--interval", default="1day", show_default=True, type=click.Choice(INTERVALS), help="Interval."
)
@click.option("--days", type=click.IntRange(min=1), help="The N calendar days to today.")
@click.option("--start", callback=iso_date, help="First date, inclusive (YYYY-MM-DD).")
@click.option("--end", callback=iso_date, help="Last date, inclusive (default: today).")
@click.option("--jobs", default=10, show_default=True, help="How many recent jobs to show.")
@click.pass_obj
@handles_errors
def report(state: State, /, file: Path, symbols: list[str] | None, **selection: Any) -> None:
    """Write a self-contained HTML page: coverage map, gaps, recent jobs and their errors."""
    path = state.lake().report(file, symbols, **selection)
    state.say(f"report written to {path}")


# -- emulators -------------------------------------------------------------------------------


@cli.command()
@click.argument("provider")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option("--api-key", default="test-key", show_default=True, help="Key the emulator accepts.")
@click.option("--api-secret", default="test-secret", show_default=True, help="Secret it accepts.")
@click.option("--rate-limit", type=float, help="Requests per minute before 429s.")
@click.option("--faults", help="e.g. 5xx=0.1,slow=0.05,truncated=0.02 (probability per response).")
@click.option("--symbols", callback=symbol_list, help="Symbols with bars (default: any).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the faults.")
@handles_errors
def emulate(
    provider: str,
    port: int,
    api_key: str,
    api_secret: str,
    rate_limit: float | None,
    faults: str | None,
    symbols: list[str] | None,
    seed: int,
) -> None:
    """Serve a provider's HTTP emulator on 127.0.0.1 (its URL on stdout) until Ctrl-C.

    Point barlake at it with LAKE_<PROVIDER>_BASE_URL=URL and the same key.
    """
    from barlake.providers.emulators import serve

    try:
        serve(
            provider,
            port,
            api_key,
            api_secret,
            rate_limit,
            faults,
            symbols=symbols,
            seed=seed,
            on_ready=lambda em: click.echo(em.url),
        )
    except KeyboardInterrupt:
        sys.exit(EXIT_OK)
