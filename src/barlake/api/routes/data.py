"""What the lake holds and what is wrong with it: info, gaps, coverage, events, findings,
checks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from barlake.api.deps import CHANGE, READ, LakeDep, SelectionDep, shared
from barlake.api.responses import LakeJSON
from barlake.api.schemas import (
    CheckSummary,
    CoverageMap,
    Event,
    Finding,
    Gap,
    LakeInfo,
    Selected,
)
from barlake.errors import UsageError
from barlake.views.serialize import event_rows

router = APIRouter(tags=["data"])


@router.get("/gaps", response_model=list[Gap], dependencies=READ)
async def gaps(lake: LakeDep, request: Request, sel: SelectionDep) -> LakeJSON:
    """Missing sessions per symbol and interval (``lake gaps --json``)."""
    symbols = sel.pop("symbols")
    return LakeJSON(await shared(request, lambda: [g.to_dict() for g in lake.gaps(symbols, **sel)]))


@router.get("/info", response_model=LakeInfo, dependencies=READ)
async def info(lake: LakeDep, request: Request, sel: SelectionDep) -> LakeJSON:
    """What the lake holds per symbol and interval, with totals (``lake info --json``)."""
    symbols = sel.pop("symbols")
    return LakeJSON(await shared(request, lambda: lake.info(symbols, **sel).to_dict()))


@router.get(
    "/coverage",
    response_model=CoverageMap,
    dependencies=READ,
    responses={200: {"content": {"image/png": {}}, "description": "JSON, or the map as PNG"}},
)
def coverage(lake: LakeDep, sel: SelectionDep, format: Literal["json", "png"] = "json") -> Response:
    """The coverage map of one interval (default 1day): state codes, or ``?format=png``."""
    intervals = sel.pop("interval") or ["1day"]
    if len(intervals) != 1:
        msg = "coverage shows one interval; pass a single interval"
        raise UsageError(msg)
    found = lake.coverage(sel.pop("symbols"), interval=intervals[0], **sel)
    if format == "json":
        return LakeJSON(found.to_dict())
    from barlake.views.plot import coverage_png

    return Response(coverage_png(found), media_type="image/png")


@router.get("/events", response_model=list[Event], dependencies=READ)
def events(
    lake: LakeDep,
    *,
    pending: bool = False,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> LakeJSON:
    """Events (layer changes, detected gaps) with the jobs that served them, the latest
    ``limit`` (``lake events --json``)."""
    return LakeJSON(event_rows(lake.events(pending=pending))[-limit:])


@router.get("/findings", response_model=list[Finding], dependencies=READ)
def findings(lake: LakeDep) -> LakeJSON:
    """The findings of the latest checks, worst first."""
    return LakeJSON(lake.findings().to_dicts())


@router.post("/checks", response_model=CheckSummary, dependencies=CHANGE)
def check(lake: LakeDep, body: Selected) -> LakeJSON:
    """Run ``lake check`` on a selection: stores its findings and queues its gaps as events."""
    chosen = body.model_dump()
    result = lake.check(chosen.pop("symbols"), **chosen)
    return LakeJSON(result.summary())
