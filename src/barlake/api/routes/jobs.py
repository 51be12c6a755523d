"""``/jobs``: what fills did and are doing (``lake jobs``, ``lake status``, ``lake errors``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from barlake.api.deps import READ, LakeDep, shared
from barlake.api.responses import LakeJSON
from barlake.api.schemas import Job, JobStatus, SymbolError
from barlake.views.serialize import job_rows

router = APIRouter(tags=["jobs"], dependencies=READ)


@router.get("/jobs", response_model=list[Job])
async def list_jobs(
    lake: LakeDep, request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 20
) -> LakeJSON:
    """Recent jobs, newest first (``lake jobs --json``)."""
    return LakeJSON(await shared(request, lambda: job_rows(lake.jobs(limit).to_dicts())))


@router.get("/jobs/{job_id}", response_model=JobStatus)
async def job_status(lake: LakeDep, request: Request, job_id: str) -> LakeJSON:
    """A job's row and live progress counts (``lake status JOB --json``; a prefix is enough)."""
    kept = lake.kept_status(job_id)  # no catalog read: answered here, not in the thread pool
    found = kept if kept is not None else await shared(request, lambda: lake.status(job_id))
    return LakeJSON(job_rows([found])[0])


@router.get("/jobs/{job_id}/errors", response_model=dict[str, list[SymbolError]])
async def job_errors(lake: LakeDep, request: Request, job_id: str) -> LakeJSON:
    """A job's errors by symbol, one per failed interval and stage (``lake errors JOB --json``)."""
    return LakeJSON(await shared(request, lambda: lake.errors(job_id)))
