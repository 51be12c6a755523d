"""``lake report``: one self-contained HTML page with the coverage map, gaps, recent jobs and
their per-symbol errors. The picture is inlined as a base64 PNG and the style sheet is inline, so
the file can be mailed or opened offline; without matplotlib the page says how to get the map.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barlake.errors import UsageError
from barlake.views.coverage import Coverage
from barlake.views.files import write_output

#: Rows shown per table; the page says how many more there were.
MAX_ROWS = 200
JOB_COLUMNS = (
    "job_id",
    "status",
    "created_at",
    "finished_at",
    "provider",
    "requests_made",
    "bars_written",
    "symbols_done",
    "symbols_failed",
)
ERROR_COLUMNS = ("job_id", "symbol", "interval", "stage", "timestamp", "error")
GAP_COLUMNS = ("symbol", "interval", "first", "last", "sessions")
SUMMARY_COLUMNS = ("symbol", "expected", "stored", "provisional", "empty", "missing", "covered")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
th { background: #f4f4f4; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #666; }
"""


@dataclass(frozen=True)
class Report:
    """What the page shows; ``render`` turns it into HTML."""

    title: str
    coverage: Coverage
    png: bytes | None
    gaps: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        """The whole page as one HTML string."""
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_esc(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{_esc(self.title)}</h1>",
            "<h2>Coverage</h2>",
        ]
        if self.png is not None:
            data = base64.b64encode(self.png).decode("ascii")
            parts.append(f'<img alt="coverage map" src="data:image/png;base64,{data}">')
        else:
            parts.append(
                '<p class="note">The coverage map needs matplotlib: '
                "<code>pip install 'barlake[plot]'</code>.</p>"
            )
        summary = self.coverage.summary().sort("covered", "symbol").to_dicts()
        for row in summary:
            row["covered"] = f"{row['covered']:.1%}"
        parts += [
            _table(summary, SUMMARY_COLUMNS),
            f"<h2>Gaps ({sum(g['sessions'] for g in self.gaps):,} sessions)</h2>",
            _table(self.gaps, GAP_COLUMNS, empty="no gaps"),
            "<h2>Recent jobs</h2>",
            _table(self.jobs, JOB_COLUMNS, empty="no jobs yet"),
            "<h2>Errors of recent jobs</h2>",
            _table(self.errors, ERROR_COLUMNS, empty="no errors"),
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"


def picture(coverage: Coverage) -> bytes | None:
    """The coverage map as PNG bytes, or None without matplotlib (the page then says so)."""
    try:
        from barlake.views.plot import coverage_png

        return coverage_png(coverage)
    except UsageError:
        return None


def write(path: str | Path, page: Report) -> Path:
    """Write ``page`` to ``path``; returns the path."""
    return write_output(path, page.render().encode("utf-8"), "report")


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "none") -> str:
    if not rows:
        return f'<p class="note">{_esc(empty)}</p>'
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(_cell(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows[:MAX_ROWS]
    )
    more = len(rows) - MAX_ROWS
    tail = f'<p class="note">and {more:,} more</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)
