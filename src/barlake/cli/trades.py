"""``lake resample``: bars of any length built from the stored trades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from barlake.cli.exits import handles_errors
from barlake.cli.options import SELECTION, iso_date, symbol_list
from barlake.cli.output import emit_json, emit_table
from barlake.cli.state import State


def _flags(_: Any, __: Any, value: str | None) -> frozenset[str] | None:
    return None if value is None else frozenset(v for v in value.replace(" ", ",").split(",") if v)


@click.command()
@click.argument("names", nargs=-1, metavar="[SYMBOLS]...")
@click.option("--symbols", callback=symbol_list, help="Comma list, e.g. AAPL,MSFT.")
@click.option(
    "--every", default="1s", show_default=True, help="Bar length: 1s, 10s, 30s, 1min, 5min, 1h."
)
@SELECTION["days"]
@click.option("--start", callback=iso_date, help="First session, inclusive (YYYY-MM-DD).")
@click.option("--end", callback=iso_date, help="Last session, inclusive (default: today).")
@click.option(
    "--exclude-ohlc",
    callback=_flags,
    help="Conditions whose prints set no price, comma list (default: the vendors' usual: "
    "odd lots, average price, out of sequence, ...; '' keeps every print).",
)
@click.option(
    "--exclude-volume",
    callback=_flags,
    help="Conditions whose prints are not volume (default: official open/close reports).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the bars to this Parquet file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def resample(
    state: State,
    /,
    names: tuple[str, ...],
    symbols: list[str] | None,
    every: str,
    exclude_ohlc: frozenset[str] | None,
    exclude_volume: frozenset[str] | None,
    out: Path | None,
    as_json: bool,
    **dates: Any,
) -> None:
    """Build bars of any length (1s, 10s, ...) from the stored trades, with condition filters."""
    from barlake.domain.tradebars import Conditions

    default = Conditions()
    rules = Conditions(
        default.ohlc_exclude if exclude_ohlc is None else exclude_ohlc,
        default.volume_exclude if exclude_volume is None else exclude_volume,
    )
    chosen = [*names, *(symbols or [])] or None
    frame = state.lake().trade_bars(chosen, every=every, conditions=rules, **dates)
    if out is not None:
        frame.write_parquet(out)
        state.say(f"{frame.height:,} bars of {every} written to {out}")
        return
    rows = frame.with_columns(frame["ts"].dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")).to_dicts()
    if as_json:
        emit_json(rows)
        return
    emit_table(state, rows, frame.columns, empty="no trades stored for that selection")
