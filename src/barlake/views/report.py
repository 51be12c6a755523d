"""``lake report``: one self-contained HTML page with what the lake holds at every interval
(bars, symbols, first and last bar, files and bytes on disk), each interval's coverage map,
coverage table and gaps, the recent jobs and their per-symbol errors.

The page is rendered from the ``templates/report.html`` Jinja2 template, every value escaped.
The pictures are inlined as base64 PNGs and the style sheet is inline, so the file can be mailed
or opened offline; without matplotlib the page says how to get the maps.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barlake.errors import UsageError
from barlake.storage.store import Holding
from barlake.views import pages
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

_templates = pages.environment("barlake.views")


@dataclass(frozen=True)
class Section:
    """One interval of the page: what the lake holds of it (None: no file), its coverage,
    the coverage map as PNG bytes (None without matplotlib) and its gaps."""

    coverage: Coverage
    png: bytes | None
    gaps: list[dict[str, Any]]
    holding: Holding | None = None

    @property
    def interval(self) -> str:
        return self.coverage.interval

    @property
    def gap_sessions(self) -> int:
        return sum(int(g["sessions"]) for g in self.gaps)

    @property
    def image(self) -> str | None:
        """The map as a ``data:`` URL."""
        if self.png is None:
            return None
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    def summary(self) -> list[dict[str, Any]]:
        """The coverage table's rows, the least covered first."""
        return self.coverage.summary().sort("covered", "symbol").to_dicts()


@dataclass(frozen=True)
class Report:
    """What the page shows; ``render`` turns it into HTML."""

    title: str
    sections: list[Section]
    jobs: list[dict[str, Any]]
    errors: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        """The whole page as one HTML string."""
        page = _templates.get_template("report.html").render(
            title=self.title,
            sections=self.sections,
            holdings=[s.holding for s in self.sections if s.holding is not None],
            jobs=self.jobs,
            errors=self.errors,
            tabulate=_table,
            columns={
                "jobs": JOB_COLUMNS,
                "errors": ERROR_COLUMNS,
                "gaps": GAP_COLUMNS,
                "summary": SUMMARY_COLUMNS,
            },
        )
        return page.rstrip("\n") + "\n"


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


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, Any]:
    """A table for the template: its columns, its first ``MAX_ROWS`` rows as cells (text and
    whether it is a number, to align it right), and how many rows were left out."""
    shown = [[_cell(c, r.get(c)) for c in columns] for r in rows[:MAX_ROWS]]
    return {"columns": columns, "rows": shown, "more": max(len(rows) - MAX_ROWS, 0)}


def _cell(column: str, value: Any) -> tuple[str, bool]:
    if value is None:
        return "", False
    if column == "covered":
        return pages.percent(value), True
    if isinstance(value, int | float) and not isinstance(value, bool):
        return pages.count(value) if isinstance(value, int) else str(value), True
    return str(value), False
