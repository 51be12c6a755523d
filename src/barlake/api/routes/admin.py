"""The admin page at ``/``: server-rendered sections (Jinja2) that a few lines of JavaScript
refresh from ``/admin/{section}`` and whose buttons call the JSON API with the token."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from markupsafe import Markup
from starlette.responses import HTMLResponse

from barlake.api.deps import READ, LakeDep, shared
from barlake.domain.intervals import INTERVALS
from barlake.errors import AuthError
from barlake.views import pages

if TYPE_CHECKING:
    from barlake.lake import Lake

router = APIRouter(include_in_schema=False)

_pages = pages.environment("barlake.api")

Section = Literal["queue", "jobs", "errors", "symbols", "findings"]


def _queue(lake: Lake) -> dict[str, Any]:
    return {"requests": [r.to_dict() for r in lake.queue.list(limit=30)]}


def _jobs(lake: Lake) -> dict[str, Any]:
    rows = lake.jobs(10).to_dicts()
    for row in rows:
        total = row.get("symbols_total") or 0
        finished = (row.get("symbols_done") or 0) + (row.get("symbols_failed") or 0)
        row["percent"] = (
            100 if row["status"] == "done" else (100 * finished // total if total else 0)
        )
    return {"jobs": rows}


def _errors(lake: Lake) -> dict[str, Any]:
    """Errors of the recent jobs, one row per symbol and stage (the latest message shown)."""
    grouped: dict[tuple[str, str], dict[str, Any]] = {}
    for job in lake.jobs(10).to_dicts():
        if not job.get("symbols_failed"):
            continue
        for symbol, found in lake.errors(str(job["job_id"])).items():
            for err in found:
                key = (symbol, str(err["stage"]))
                row = grouped.setdefault(key, {"symbol": symbol, "stage": err["stage"], "count": 0})
                row["count"] += 1
                row.setdefault("error", err["error"])
    return {"errors": sorted(grouped.values(), key=lambda r: (r["symbol"], str(r["stage"])))}


def _symbols(lake: Lake) -> dict[str, Any]:
    return {"symbols": lake.symbol_rows()}


def _findings(lake: Lake) -> dict[str, Any]:
    return {"findings": lake.findings().head(50).to_dicts()}


SECTIONS: dict[str, Callable[[Lake], dict[str, Any]]] = {
    "queue": _queue,
    "jobs": _jobs,
    "errors": _errors,
    "symbols": _symbols,
    "findings": _findings,
}


def _render(name: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(_pages.get_template(name).render(**context))


def _fragment(name: str, lake: Lake) -> str:
    return _pages.get_template(f"_{name}.html").render(**SECTIONS[name](lake))


@router.get("/")
def page(lake: LakeDep, request: Request) -> HTMLResponse:
    """The whole page; its sections are filled here when reading needs no token."""
    try:
        request.app.state.guard.allow_read(request.headers.get("authorization"))
        filled = {name: Markup(_fragment(name, lake)) for name in SECTIONS}
    except AuthError:  # the script fetches the sections with the token once it is given
        filled = {}
    return _render(
        "admin.html", sections=SECTIONS, filled=filled, intervals=INTERVALS, root=str(lake.root)
    )


@router.get("/admin/{section}", dependencies=READ)
async def section(lake: LakeDep, request: Request, section: Section) -> HTMLResponse:
    """One section of the page, for the script's refresh (every open page polls them)."""
    return HTMLResponse(await shared(request, lambda: _fragment(section, lake)))
