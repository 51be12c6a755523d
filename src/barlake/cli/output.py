"""What commands print on stdout: JSON for programs, tables for people.

Every command's table goes through ``emit_table``: rich renders it, numbers right-aligned with
thousands separators, job and request ids cut to their first 8 characters (``lake status`` takes
a prefix), times in the local time zone with the zone shown. An empty result prints no header:
the command's sentence for it goes to stderr like every message. JSON (``emit_json``) is the
API's rendering (``views.serialize``): times there stay ISO 8601 in UTC.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import click

from barlake.cli.state import State
from barlake.views.serialize import dumps

#: A uuid as the catalog writes job and request ids.
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: An ISO 8601 time with its offset, as ``to_dict`` methods write them.
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")
#: The width tables are laid out in: wide enough never to cut or wrap a cell (a table wider
#: than the terminal wraps as text does, and ``less -S`` shows it whole).
_UNWRAPPED = 10_000


def emit_json(data: Any) -> None:
    """``data`` as indented JSON (the API's rendering too: ``views.serialize``)."""
    click.echo(dumps(data))


def emit_table(
    state: State,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    empty: str | None,
) -> None:
    """``rows`` as a table of ``columns`` on stdout; with no rows, the sentence ``empty`` on
    stderr instead (as every message: not with ``--quiet``; None: when the command's summary
    line says it)."""
    if not rows:
        if empty is not None:
            state.say(empty)
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    terminal = click.get_text_stream("stdout").isatty()
    # On a terminal a rule under the header; in a file or a pipe none, so that each line is a
    # header or a row that ``split()`` takes apart.
    table = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        pad_edge=False,
        show_edge=False,
        header_style="bold",
    )
    places = {c: decimals(r.get(c) for r in rows) for c in columns}
    for name in columns:
        shown = [r.get(name) for r in rows if r.get(name) is not None]
        numeric = bool(shown) and all(_is_number(v) for v in shown)
        table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
    for r in rows:
        table.add_row(*(cell(r.get(c), places[c]) for c in columns))
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=_UNWRAPPED,
        color_system="standard" if terminal else None,
        force_terminal=terminal,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(table)
    for line in buffer.getvalue().splitlines():
        if line.strip():
            click.echo(line.rstrip())


def emit_fields(data: Mapping[str, Any], keys: Sequence[str] | None = None) -> None:
    """One ``key  value`` line per field (``keys`` of ``data``, all when None), values as
    table cells show them."""
    chosen = list(data) if keys is None else list(keys)
    width = max((len(k) for k in chosen), default=0) + 1
    for key in chosen:
        click.echo(f"{key:{width}} {cell(data.get(key))}".rstrip())


def decimals(values: Iterable[Any], most: int = 6) -> int:
    """The decimal places a column of numbers needs to show each (at most ``most``), so that a
    column's numbers line up on their decimal point."""
    need = 0
    for v in values:
        if isinstance(v, float | Decimal) and math.isfinite(v):
            digits = f"{v:.{most}f}".rstrip("0").partition(".")[2]
            need = max(need, len(digits))
    return need


def cell(value: Any, places: int | None = None) -> str:
    """``value`` as a table shows it (a float with ``places`` decimals, else as many as it
    needs)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{decimals([value]) if places is None else places}f}"
    if isinstance(value, datetime):
        return local_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        if _UUID.match(value):
            return value[:8]
        if _ISO_TIME.match(value):
            return local_time(datetime.fromisoformat(value))
        return value
    if isinstance(value, list | tuple):
        return short([str(v) for v in value])
    if isinstance(value, dict):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def local_time(value: datetime) -> str:
    """``value`` (naive: UTC) in the local time zone, to the second, with the zone's name."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def short(symbols: Sequence[str], shown: int = 4) -> str:
    """The first few symbols and how many more: ``AAPL,MSFT,NVDA,SPY,+12``."""
    head = ",".join(symbols[:shown])
    return head + (f",+{len(symbols) - shown}" if len(symbols) > shown else "")
