"""``/backfills``: requests of the work queue, previewed by their plan when queued."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request

from barlake.api.deps import CHANGE, READ, LakeDep, SelectionDep, shared
from barlake.api.responses import LakeJSON
from barlake.api.schemas import BackfillAccepted, BackfillBody, BackfillRequest, PlanPreview

router = APIRouter(tags=["backfills"])

StateFilter = Literal["queued", "claimed", "done", "failed", "cancelled"]


@router.post("/backfills", status_code=202, response_model=BackfillAccepted, dependencies=CHANGE)
def queue_backfill(
    lake: LakeDep,
    body: BackfillBody,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> LakeJSON:
    """Queue a backfill (``lake queue add``); answers with the request and its plan now.

    The plan is checked first, so a bad symbol, interval, date or policy queues nothing; the
    same selection while the first is still queued answers the existing request.
    """
    chosen = body.model_dump(exclude={"provider", "priority"})
    symbols = chosen.pop("symbols")
    plan = lake.plan(symbols, provider=body.provider, **chosen)
    request, created = lake.queue.add(
        symbols,
        provider=body.provider,
        priority=body.priority,
        source="api",
        key=idempotency_key,
        **chosen,
    )
    answer = {**request.to_dict(), "created": created, "plan": plan.to_dict()}
    return LakeJSON(answer, status_code=202)


@router.get("/plan", response_model=PlanPreview, dependencies=READ)
def preview(
    lake: LakeDep, sel: SelectionDep, provider: Annotated[str | None, Query(max_length=64)] = None
) -> LakeJSON:
    """What a backfill of this selection would fetch now (``lake plan --json``)."""
    symbols = sel.pop("symbols")
    return LakeJSON(lake.plan(symbols, provider=provider, **sel).to_dict())


@router.get("/backfills", response_model=list[BackfillRequest], dependencies=READ)
async def list_backfills(
    lake: LakeDep,
    request: Request,
    state: StateFilter | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LakeJSON:
    """Requests of the queue, newest first (``lake queue list --json``)."""
    found = await shared(request, lambda: [r.to_dict() for r in lake.queue.list(state, limit)])
    return LakeJSON(found)


@router.get("/backfills/{request_id}", response_model=BackfillRequest, dependencies=READ)
async def get_backfill(lake: LakeDep, request: Request, request_id: str) -> LakeJSON:
    """One request (a prefix of its id is enough)."""
    return LakeJSON(await shared(request, lambda: lake.queue.get(request_id).to_dict()))


@router.delete("/backfills/{request_id}", response_model=BackfillRequest, dependencies=CHANGE)
def cancel_backfill(lake: LakeDep, request_id: str) -> LakeJSON:
    """Cancel a queued request (``lake queue cancel``)."""
    return LakeJSON(lake.queue.cancel(request_id).to_dict())
