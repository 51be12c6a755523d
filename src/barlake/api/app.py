"""The app factory: one ``Lake``, its token, and the workers that serve its queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from barlake.api import problems
from barlake.api.coalesce import Coalescer
from barlake.api.limits import BodyLimits
from barlake.api.pool import workers_for
from barlake.api.responses import LakeJSON
from barlake.api.routes import admin, backfills, data, health, jobs, symbols
from barlake.api.schemas import Problem
from barlake.api.security import Guard

if TYPE_CHECKING:
    from barlake.jobs.worker import Log
    from barlake.lake import Lake


def create_app(
    lake: Lake,
    *,
    token: str | None,
    workers: int,
    public_reads: bool = True,
    log: Log | None = None,
) -> FastAPI:
    """The ASGI app of ``lake serve`` over ``lake``.

    Changes need ``Authorization: Bearer <token>`` (none are allowed when ``token`` is None);
    reads need it too unless ``public_reads``. ``workers`` queue workers run while the app
    runs (0: the API only): background threads telling ``log`` what they do on the embedded
    catalog, ``lake worker`` processes on a PostgreSQL one.

    >>> app = create_app(Lake.open("lake"), token="s3cret", workers=1)  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)                   # doctest: +SKIP
    """
    lake.services  # noqa: B018  # built once here, not raced for by the first requests
    pool = workers_for(lake, workers, log)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        pool.start()
        try:
            yield
        finally:
            pool.stop()

    app = FastAPI(
        title="barlake",
        summary="A market-data lake: backfill requests, jobs, symbols, gaps and coverage.",
        version="0.1.0",
        default_response_class=LakeJSON,
        docs_url=None,  # the interactive docs load scripts from a CDN; /openapi.json is enough
        redoc_url=None,
        lifespan=lifespan,
        responses={code: {**spec, "model": Problem} for code, spec in problems.PROBLEMS.items()},
    )
    app.state.lake = lake
    app.state.guard = Guard(token, public_reads, lake.config.api.token_env)
    app.state.pool = pool
    app.state.reads = Coalescer()
    problems.install(app)
    for module in (backfills, jobs, symbols, data, health, admin):
        app.include_router(module.router)
    app.add_middleware(BodyLimits)
    return app
