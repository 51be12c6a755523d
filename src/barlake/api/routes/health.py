"""``/health`` and ``/metrics``: whether the service can work, and its figures."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from fastapi import APIRouter, Request
from starlette.responses import Response

from barlake.api.deps import READ, LakeDep, shared
from barlake.api.responses import LakeJSON
from barlake.api.schemas import Health
from barlake.errors import LakeError
from barlake.fetch.ratelimit import WAITS
from barlake.jobs.followers import STATES as FOLLOWER_STATES
from barlake.jobs.followers import FollowerReport
from barlake.views.metrics import CONTENT_TYPE, Metric, render

router = APIRouter(tags=["health"])
log = logging.getLogger("barlake.api")

STATES = ("queued", "claimed", "done", "failed", "cancelled")
BOTH = (True, False)


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(lake: LakeDep, request: Request) -> LakeJSON:
    """Catalog reachable, workers alive (this service's, and every process's that registered in
    the catalog), queue depth; 503 when the catalog is not reachable or a worker of this
    service died."""
    pool = request.app.state.pool
    try:
        depth = {s: 0 for s in STATES} | await shared(request, lake.queue.depth)
        registered = await shared(request, lake.queue.workers)
        reachable = True
    except LakeError as exc:
        log.warning("health: the catalog is not reachable: %s", exc)
        depth, registered, reachable = {}, [], False
    ok = reachable and pool.alive == pool.size
    followers = await shared(request, lake.followers)
    counts = {s: sum(f.state == s for f in followers) for s in FOLLOWER_STATES}
    well = ok and not any(f.unwell for f in followers)
    answer = {
        "status": "ok" if well else "degraded",
        "catalog": reachable,
        "workers": {
            "configured": pool.size,
            "alive": pool.alive,
            # Every process's and machine's workers of this lake, this service's included.
            "registered": len(registered),
            "registered_alive": sum(w["alive"] for w in registered),
        },
        "queue": depth,
        "followers": counts,
    }
    return LakeJSON(answer, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
    dependencies=READ,
)
def metrics(lake: LakeDep, request: Request) -> Response:
    """Queue depth by state, requests and bars by provider, errors by stage, rate-limit waits
    (Prometheus text format)."""
    depth = {s: 0 for s in STATES} | lake.queue.depth()
    totals = lake.totals()
    workers = lake.queue.workers()
    pool = request.app.state.pool
    families = [
        Metric(
            "barlake_queue_requests",
            "gauge",
            "Backfill requests in the queue, by state.",
            [({"state": s}, n) for s, n in sorted(depth.items())],
        ),
        Metric(
            "barlake_provider_requests_total",
            "counter",
            "Requests made to providers by every job, by provider.",
            [({"provider": r["provider"]}, r["requests"] or 0) for r in totals["providers"]],
        ),
        Metric(
            "barlake_bars_written_total",
            "counter",
            "Bars written by every job, by provider.",
            [({"provider": r["provider"]}, r["bars"] or 0) for r in totals["providers"]],
        ),
        Metric(
            "barlake_errors_total",
            "counter",
            "Symbols that failed in a job, by the stage they failed at.",
            [({"stage": r["stage"]}, r["errors"]) for r in totals["errors"]],
        ),
        Metric(
            "barlake_rate_limit_waits_total",
            "counter",
            "Times a request of this process waited for its provider's rate limit.",
            [({}, WAITS.count)],
        ),
        Metric(
            "barlake_rate_limit_wait_seconds_total",
            "counter",
            "Seconds requests of this process waited for their provider's rate limit.",
            [({}, WAITS.seconds)],
        ),
        Metric(
            "barlake_workers_alive",
            "gauge",
            "Queue workers of this service running.",
            [({}, pool.alive)],
        ),
        Metric(
            "barlake_workers_registered",
            "gauge",
            "Queue workers of this lake in every process, by whether they are alive.",
            [({"alive": str(a).lower()}, sum(w["alive"] is a for w in workers)) for a in BOTH],
        ),
        *follower_metrics(lake.followers()),
    ]
    return Response(render(families), media_type=CONTENT_TYPE)


def follower_metrics(followers: list[FollowerReport]) -> list[Metric]:
    """The followers' families: how many by state, and each one's lag, reconnects and
    staleness (labelled by follower id and provider)."""
    alive = [f for f in followers if f.state != "finished"]

    def each(value: Callable[[FollowerReport], float]) -> list[tuple[Mapping[str, str], float]]:
        return [({"follower": f.id, "provider": f.provider}, value(f)) for f in alive]

    return [
        Metric(
            "barlake_followers",
            "gauge",
            "Followers of the lake, by state (running, stale, dead, finished).",
            [({"state": s}, sum(f.state == s for f in followers)) for s in FOLLOWER_STATES],
        ),
        Metric(
            "barlake_follower_lag_seconds",
            "gauge",
            "The lake's now minus the start of the follower's last bar (none before one).",
            [(labels, v) for labels, v in each(lambda f: f.lag_s or -1.0) if v >= 0],
        ),
        Metric(
            "barlake_follower_reconnects_total",
            "counter",
            "Times the follower reopened its stream.",
            each(lambda f: f.reconnects),
        ),
        Metric(
            "barlake_follower_stale",
            "gauge",
            "1 when the follower is stale or dead (nothing heard, or no heartbeat), else 0.",
            each(lambda f: int(f.unwell)),
        ),
    ]
