"""What commands print on stdout: JSON for programs, aligned tables for people."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from barlake.views.serialize import dumps


def emit_json(data: Any) -> None:
    """``data`` as indented JSON (the API's rendering too: ``views.serialize``)."""
    click.echo(dumps(data))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Aligned columns on stdout, for people."""
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def short(symbols: Sequence[str], shown: int = 4) -> str:
    """The first few symbols and how many more: ``AAPL,MSFT,NVDA,SPY,+12``."""
    head = ",".join(symbols[:shown])
    return head + (f",+{len(symbols) - shown}" if len(symbols) > shown else "")
