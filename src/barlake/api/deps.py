"""What routes receive: the lake, the token checks, a selection from query parameters, and
``shared`` for reads that identical requests arriving together answer once.

The dependencies are coroutines: they do no I/O, and a plain function would cost each request a
trip through the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPBearer

from barlake.api.schemas import POLICY_NAME
from barlake.domain.intervals import parse_intervals

if TYPE_CHECKING:
    from barlake.lake import Lake

# Declares the scheme in the OpenAPI document; the header is checked by ``Guard`` so that each
# way it can be wrong gets its own message.
_bearer = HTTPBearer(auto_error=False, description="The token in LAKE_API_TOKEN.")


async def _lake(request: Request) -> Lake:
    lake: Lake = request.app.state.lake
    return lake


_Scheme = Annotated[Any, Security(_bearer)]


async def _may_read(request: Request) -> None:
    # Not declared in the document: reads are open on loopback, where the page runs.
    request.app.state.guard.allow_read(request.headers.get("authorization"))


async def _may_change(request: Request, _scheme: _Scheme) -> None:
    request.app.state.guard.allow_change(request.headers.get("authorization"))


LakeDep = Annotated["Lake", Depends(_lake)]
READ = [Depends(_may_read)]
CHANGE = [Depends(_may_change)]


async def selection(
    symbols: Annotated[str | None, Query(max_length=4000, description="Comma list.")] = None,
    interval: Annotated[str | None, Query(max_length=64, description="Comma list.")] = None,
    days: Annotated[int | None, Query(ge=1, le=36600)] = None,
    start: date | None = None,
    end: date | None = None,
    layer: Annotated[int | None, Query(ge=0, le=3)] = None,
    policy: Annotated[str | None, Query(pattern=POLICY_NAME)] = None,
) -> dict[str, Any]:
    """The keyword arguments of ``Lake.gaps`` and friends, from ``?symbols=A,B&interval=1day``."""
    return {
        "symbols": symbols,
        "interval": parse_intervals(interval) if interval else None,
        "days": days,
        "start": start,
        "end": end,
        "layer": layer,
        "policy": policy,
    }


SelectionDep = Annotated[dict[str, Any], Depends(selection)]


async def shared(request: Request, compute: Callable[[], Any]) -> Any:
    """``compute()`` run in the thread pool, once for all the identical reads (same path and
    query) that arrive before it starts (``api.coalesce``)."""
    key = (request.url.path, tuple(sorted(request.query_params.multi_items())))
    return await request.app.state.reads.run(key, compute)
