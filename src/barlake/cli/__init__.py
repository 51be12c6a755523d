"""The `lake` command line: a thin layer over the library.

Each command lives in the module of its group and is imported when it runs; ``lake --help``
lists them from ``COMMANDS`` and so loads click and nothing heavy. A command parses its options,
makes one library call, renders the result and maps errors to exit codes (``exits``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from barlake import __version__
from barlake.cli.exits import EXIT_INTERRUPTED, EXIT_USAGE, fail
from barlake.cli.group import LazyGroup
from barlake.cli.state import State

__all__ = ["COMMANDS", "cli", "main"]

#: Every top-level command: where it lives and its short help (its docstring's first paragraph,
#: kept here so that listing commands imports none; a test keeps the two equal).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "barlake.cli.symbols:init",
        "Create the lake directory and its catalog (safe to run again).",
    ),
    "symbols": ("barlake.cli.symbols:symbols", "Manage the symbols the lake tracks."),
    "gaps": (
        "barlake.cli.backfill:gaps",
        "List missing sessions per symbol and interval; exit 1 when any.",
    ),
    "plan": (
        "barlake.cli.backfill:plan",
        "Show the requests a fill would make, with estimates; nothing is fetched.",
    ),
    "fill": (
        "barlake.cli.backfill:fill",
        "Fetch what is missing and write it; exit 1 when some symbols failed.",
    ),
    "status": (
        "barlake.cli.jobs:status",
        "Show a job's live counts (the latest job when JOB is omitted; a prefix is enough).",
    ),
    "jobs": ("barlake.cli.jobs:jobs", "List recent jobs, newest first."),
    "errors": (
        "barlake.cli.jobs:errors",
        "List a job's per-symbol errors with their stage (latest job when JOB is omitted).",
    ),
    "layers": (
        "barlake.cli.layers:layers",
        "Set scanner layers (0-3) that decide each symbol's retention.",
    ),
    "events": (
        "barlake.cli.layers:events",
        "List events (layer changes, detected gaps) and the jobs that served them.",
    ),
    "prune": (
        "barlake.cli.layers:prune",
        "Remove bars older than each symbol's retention, file by file, atomically.",
    ),
    "check": (
        "barlake.cli.quality:check",
        "Check stored bars (gaps, OHLC, prices, timestamps, jumps, ...); exit 1 on errors.",
    ),
    "actions": (
        "barlake.cli.actions:actions",
        "Fetch and list corporate actions (splits, dividends) used by adjusted reads.",
    ),
    "info": (
        "barlake.cli.info:info",
        "Show what the lake holds per symbol and interval, with totals.",
    ),
    "show": (
        "barlake.cli.info:show",
        "Print a symbol's stored bars as a table (the last 20 unless --tail says otherwise).",
    ),
    "export": (
        "barlake.cli.info:export",
        "Write stored bars to a CSV, Parquet or JSON file: the rows `Lake.bars` gives.",
    ),
    "resample": (
        "barlake.cli.trades:resample",
        "Build bars of any length (1s, 10s, ...) from the stored trades, with condition filters.",
    ),
    "report": (
        "barlake.cli.research:report",
        "Write a self-contained HTML page: holdings per interval, coverage maps, gaps, jobs.",
    ),
    "serve": (
        "barlake.cli.serve:serve",
        "Serve the REST API and admin page, with queue workers, until Ctrl-C (its URL on stdout).",
    ),
    "queue": (
        "barlake.cli.service:queue",
        "Queue backfill requests for `lake worker` (or `lake serve`) to run.",
    ),
    "worker": (
        "barlake.cli.service:worker",
        "Serve the work queue: claim, plan and run requests; SIGTERM stops it cleanly.",
    ),
    "follow": (
        "barlake.cli.follow:follow",
        "Follow minute bars live from the provider's stream until today's session is final.",
    ),
    "config": (
        "barlake.cli.config:config",
        "Show the lake's effective configuration and where each value comes from.",
    ),
    "providers": (
        "barlake.cli.providers:providers",
        "List the providers: intervals, request sizes, rate limit, whether credentials are set.",
    ),
    "migrate": (
        "barlake.cli.migrate:migrate",
        "Move the lake's catalog into PostgreSQL, its bars into S3, verified.",
    ),
    "emulate": (
        "barlake.cli.emulate:emulate",
        "Serve a provider's HTTP emulator on 127.0.0.1 (its URL on stdout) until Ctrl-C.",
    ),
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.version_option(
    __version__, "--version", "-V", prog_name="lake", message="%(prog)s %(version)s"
)
@click.option("--verbose", "-v", is_flag=True, help="Tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, root: Path, quiet: bool, verbose: bool) -> None:
    """barlake: a local market-data lake of Parquet bars, with gap-aware backfills."""
    given = ctx.get_parameter_source("root")
    source = "default"
    if given is click.core.ParameterSource.COMMANDLINE:
        source = "flag --lake"
    elif given is click.core.ParameterSource.ENVIRONMENT:
        source = "env LAKE_ROOT"
    ctx.obj = State(root, quiet=quiet, verbose=verbose, root_source=source)


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
