"""The one JSON rendering of the front ends: what ``--json`` prints and what the API answers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON; dates, times, uuids and decimals print as their ``str``."""
    return json.dumps(data, indent=indent, default=str)


def event_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``Lake.events`` with their payloads decoded (as ``lake events --json`` prints)."""
    rows = frame.to_dicts()
    for row in rows:
        row["payload"] = json.loads(row["payload"] or "null")
    return rows
