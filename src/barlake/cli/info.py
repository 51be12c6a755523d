"""``lake info``, ``lake show`` and ``lake export``: what the lake holds, and its bars."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click

from barlake.cli.exits import fail, handles_errors
from barlake.cli.options import ONE_INTERVAL, SELECTION, bar_selection, selected, selection
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State

#: Intervals whose bars are stamped with a session date (00:00 UTC): shown as that date.
DATED = ("1day", "1week", "1month")

#: The columns of ``lake info``'s table (``--json`` has every field).
INFO_COLUMNS = [
    "symbol",
    "interval",
    "first_bar",
    "last_bar",
    "bars",
    "window",
    "expected",
    "stored",
    "missing",
    "provisional",
    "empty",
    "files",
    "bytes",
    "last_fill",
    "provider",
]


@click.command()
@selection
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def info(state: State, /, as_json: bool, intervals: str | None, **sel: Any) -> None:
    """Show what the lake holds per symbol and interval, with totals."""
    found = state.lake().info(sel.pop("symbols"), **selected(intervals, sel))
    if as_json:
        emit_json(found.to_dict())
        return
    rows = [_row(s.to_dict(), s.interval) for s in found.series]
    if rows:
        totals = [{**found.totals(i), "symbol": "total"} for i in found.intervals]
        rows += [_row(t, t["interval"]) for t in totals]
        if len(totals) > 1:
            rows.append(_row({**found.totals(), "symbol": "total", "interval": "all"}, "all"))
    emit_table(state, rows, INFO_COLUMNS, empty="no symbols selected: nothing to show")


def _row(data: dict[str, Any], interval: str) -> dict[str, Any]:
    """A series or a total as a table row: daily bars by their date, the expected window."""
    row = dict(data)
    if interval == "1day":
        for key in ("first_bar", "last_bar"):
            row[key] = row[key] and row[key][:10]
    first, last = row.get("window_first"), row.get("window_last")
    row["window"] = f"{first}..{last}" if first else None
    return row


@click.command()
@click.argument("symbol")
@ONE_INTERVAL
@SELECTION["start"]
@SELECTION["end"]
@click.option(
    "--tail",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Only the last N bars (0: every bar).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def show(
    state: State,
    /,
    symbol: str,
    interval: str,
    start: date | None,
    end: date | None,
    tail: int,
    as_json: bool,
) -> None:
    """Print a symbol's stored bars as a table (the last 20 unless --tail says otherwise).

    ``--interval 1week`` or ``1month`` shows bars built from the stored daily ones.
    """
    from barlake.retention.selection import symbols_of

    names = symbols_of(symbol) or []
    if len(names) != 1:
        fail(f"lake show prints one symbol, got {len(names)}; use `lake export` for several")
    lake = state.lake()
    (name,) = [m.name for m in lake.services.registry.members(names)]
    frame = lake.bars(name, interval=interval, start=start, end=end).collect()  # type: ignore[arg-type]
    if tail:
        frame = frame.tail(tail)
    rows = frame.to_dicts()
    if as_json:
        click.echo(frame.write_json())
        return
    if interval in DATED:
        rows = [{**r, "ts": r["ts"].date()} for r in rows]
    span = f" from {start or 'the first'} to {end or 'today'}" if start or end else ""
    emit_table(state, rows, frame.columns, empty=f"no {interval} bars of {name} stored{span}")


@click.command()
@bar_selection
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default="parquet",
    show_default=True,
    help="File format.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="The file to write (its folder must exist).",
)
@click.pass_obj
@handles_errors
def export(state: State, /, fmt: str, out: Path, **sel: Any) -> None:
    """Write stored bars to a CSV, Parquet or JSON file: the rows `Lake.bars` gives."""
    written = state.lake().export(out, sel.pop("symbols"), format=fmt, **sel)
    state.say(f"{written:,} bars written to {out}")
