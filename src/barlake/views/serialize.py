"""The one JSON rendering of the front ends: what ``--json`` prints and what the API answers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl


def dumps(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON: times as ISO 8601 in UTC (``2024-06-03T13:30:00+00:00``; a time
    without a zone is UTC), dates as ISO dates, decimals as numbers, anything else (uuids,
    paths) as its ``str``."""
    return json.dumps(data, indent=indent, default=plain)


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it (``json.dumps``'s ``default``)."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def follower_rows(reports: list[Any]) -> list[dict[str, Any]]:
    """``Lake.followers`` as ``lake status --json`` and the service print them."""
    return [r.to_dict() for r in reports]


def event_rows(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows of ``Lake.events`` with their payloads decoded (as ``lake events --json`` prints)."""
    return decoded(frame.to_dicts(), "payload")


def job_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``Lake.jobs`` (or ``Lake.status``) with the parameters the job recorded
    decoded: JSON all the way down, as ``lake jobs --json`` prints them."""
    return decoded(rows, "parameters")


def decoded(rows: list[dict[str, Any]], *columns: str) -> list[dict[str, Any]]:
    """``rows`` with the JSON text of ``columns`` decoded in place (None stays None)."""
    for row in rows:
        for name in columns:
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows
