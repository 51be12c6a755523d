"""``lake report`` and the coverage map of ``lake gaps --plot``: pictures and pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from barlake.cli.exits import fail, handles_errors
from barlake.cli.options import iso_date, symbol_list
from barlake.cli.state import State
from barlake.domain.intervals import INTERVALS, parse_intervals


def draw_coverage(state: State, path: Path, intervals: str | None, sel: dict[str, Any]) -> None:
    """Draw the coverage map of one interval (``--interval``, default 1day) to ``path``."""
    chosen = parse_intervals("1day" if intervals is None else intervals)
    if len(chosen) != 1:
        fail("--plot draws one interval; pass a single --interval")
    coverage = state.lake().coverage(sel.pop("symbols"), interval=chosen[0], **sel)
    coverage.plot(path)
    state.say(f"coverage map of {len(coverage.symbols)} symbol(s) written to {path}")


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT (default: all).")
@click.option(
    "--interval",
    help=f"Comma list of {', '.join(INTERVALS)} (default: every interval the lake holds).",
)
@click.option("--days", type=click.IntRange(min=1), help="The N calendar days to today.")
@click.option("--start", callback=iso_date, help="First date, inclusive (YYYY-MM-DD).")
@click.option("--end", callback=iso_date, help="Last date, inclusive (default: today).")
@click.option("--jobs", default=10, show_default=True, help="How many recent jobs to show.")
@click.pass_obj
@handles_errors
def report(
    state: State, /, file: Path, symbols: list[str] | None, interval: str | None, **selection: Any
) -> None:
    """Write a self-contained HTML page: holdings per interval, coverage maps, gaps, jobs.

    Holdings are each interval's bars, symbols, first and last bar, files and bytes on disk;
    jobs are the recent ones with their errors."""
    chosen = None if interval is None else parse_intervals(interval)
    path = state.lake().report(file, symbols, interval=chosen, **selection)
    state.say(f"report written to {path}")
