"""``lake serve`` under load: while its worker fills a backfill of 100 symbols, 50 concurrent
clients ask for ``GET /jobs/{id}`` (25 of them) and ``GET /gaps?symbols=...`` (20 symbols, the
other 25), in two phases of ``--seconds`` each. The app runs in a process of its own
(``_service_process.py``), with one worker in it as ``lake serve`` runs by default.

    python benchmarks/service.py [--runs 3] [--seconds 10] [--clients 50] [--period 0.5]
                                 [--catalog duckdb|postgres|both] --json

- ``duckdb``: the lake's embedded catalog; the worker is a thread of the API's process.
- ``postgres``: the catalog on a throwaway PostgreSQL server started for the benchmark (as the
  ``postgres`` user; ``initdb`` and ``pg_ctl`` on PATH); the worker is a process of its own, as
  ``lake serve`` runs it there. ``both`` alternates the two, run by run.

- ``polling``: each client asks, waits for the answer, and asks again ``--period`` seconds after
  it asked (the admin page refreshes every second; 0.5 s is twice that); a late answer makes the
  next question at once. This is the latency a client sees.
- ``saturated``: each client asks again as soon as it has its answer, so the server is never
  idle; this measures requests per second. Its latencies are the clients' count divided by the
  throughput (Little's law), whatever the server does, so they show how deep the queue was.

Prints per phase and endpoint p50/p99 latency (ms) and requests per second (medians over the
runs), the time from ``POST /backfills`` to the provider's first request, and the fill's status
and provider requests when each phase ended (it must still be running for the phase to count as
"while a worker fills"). Targets: p99 under 50 ms for /jobs/{id}, under 250 ms for /gaps
(polling), and under 1 s from POST to the first provider request. A request that gets no
answer (its connection failed or was closed) is counted per endpoint (``connection_errors``,
per run; ``targets_met.no_connection_errors``) and the client asks again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TOKEN = "benchmark-token"
SYMBOLS = [f"B{i:03d}" for i in range(100)]
BACKFILL = {"symbols": SYMBOLS, "interval": ["1day", "1hour", "5min", "1min"], "days": 720}
LATENCY_MS = 300  # a vendor page of 10,000 bars takes about this long


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _load(
    url: str, job: str, seconds: float, clients: int, period: float | None
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """``clients`` loops, half on the job and half on gaps, for ``seconds``; each asks again
    ``period`` s after it last asked (None: at once). Latencies in ms, and the connection
    errors met (a request that got no answer: its connection failed or was closed)."""
    paths = {
        "jobs": f"/jobs/{job}",
        "gaps": "/gaps?symbols=" + ",".join(SYMBOLS[:20]) + "&interval=1day&days=30",
    }
    found: dict[str, list[float]] = {name: [] for name in paths}
    errors: dict[str, list[str]] = {name: [] for name in paths}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        stop = time.perf_counter() + seconds

        async def loop(name: str, offset: float) -> None:
            await asyncio.sleep(offset)  # pollers spread over the period, as pages opened apart
            while (started := time.perf_counter()) < stop:
                try:
                    answer = await client.get(paths[name])
                except httpx.TransportError as exc:  # counted, not fatal: the next ask retries
                    errors[name].append(type(exc).__name__)
                else:
                    answer.raise_for_status()
                    found[name].append((time.perf_counter() - started) * 1000)
                if period is not None:
                    await asyncio.sleep(max(0.0, started + period - time.perf_counter()))

        await asyncio.gather(
            *(
                loop("jobs" if n % 2 == 0 else "gaps", (period or 0) * n / clients)
                for n in range(clients)
            )
        )
    return found, errors


def _figures(values: list[float], errors: list[str], seconds: float) -> dict[str, Any]:
    return {
        "requests": len(values),
        "connection_errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "rps": round(len(values) / seconds, 1),
        "p50_ms": round(_percentile(values, 0.50), 2),
        "p99_ms": round(_percentile(values, 0.99), 2),
    }


def one_run(seconds: float, clients: int, period: float, catalog_url: str | None) -> dict[str, Any]:
    from barlake import Lake
    from barlake.catalog import URL_ENV

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        env = {**os.environ, "LAKE_API_TOKEN": TOKEN}
        if catalog_url is not None:
            env[URL_ENV] = os.environ[URL_ENV] = catalog_url
        try:
            Lake.init(root).add_symbols(SYMBOLS)
        finally:
            os.environ.pop(URL_ENV, None)
        script = Path(__file__).with_name("_service_process.py")
        mode = "threads" if catalog_url is None else "processes"
        server = subprocess.Popen(
            [sys.executable, str(script), str(root), str(LATENCY_MS), mode],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,  # the service and its worker process: one group to stop
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            auth = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=url, timeout=60) as client:
                while client.get("/health").status_code != 200:
                    time.sleep(0.05)
                client.get("/gaps", params={"symbols": "B000", "days": 5})  # warm the imports
                posted = time.time()
                queued = client.post("/backfills", json=BACKFILL, headers=auth).json()
                answered = time.time()
                while (job := client.get(f"/backfills/{queued['id']}").json()["job_id"]) is None:
                    time.sleep(0.02)
                while not (root / "first_request").exists():
                    time.sleep(0.02)
                first = float((root / "first_request").read_text())
                phases: dict[str, dict[str, Any]] = {}
                for phase, pace in (("polling", period), ("saturated", None)):
                    latencies, errors = asyncio.run(_load(url, job, seconds, clients, pace))
                    status = client.get(f"/jobs/{job}").json()
                    phases[phase] = {
                        n: _figures(v, errors[n], seconds) for n, v in latencies.items()
                    }
                    phases[phase]["fill_at_end"] = {
                        "status": status["status"],
                        "requests_made": status["requests_made"],
                    }
        finally:
            _stop_group(server)
    return {
        "post_to_first_request_s": round(first - posted, 3),
        "post_answer_s": round(answered - posted, 3),
        "plan_requests": queued["plan"]["total_requests"],
        **phases,
    }


def _stop_group(server: subprocess.Popen[str]) -> None:
    """SIGTERM the service's process group and wait until every process of it has gone (its
    worker process outlives it otherwise: uvicorn ends its process by the signal it caught)."""
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.killpg(server.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--period", type=float, default=0.5, help="Seconds between a poll's asks.")
    parser.add_argument("--catalog", choices=("duckdb", "postgres", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    catalogs = ("duckdb", "postgres") if args.catalog == "both" else (args.catalog,)
    with contextlib.ExitStack() as stack:
        server = None
        if "postgres" in catalogs:
            from barlake.catalog.postgres.cluster import cluster, database

            server = stack.enter_context(cluster())
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in catalogs}
        for _ in range(args.runs):
            for name in catalogs:  # alternated, so that both see the same machine
                with contextlib.ExitStack() as per_run:
                    url = None
                    if name == "postgres":
                        assert server is not None
                        url = per_run.enter_context(database(server))
                    found[name].append(one_run(args.seconds, args.clients, args.period, url))
    report = {
        "benchmark": "lake serve under load",
        "backfill": f"{len(SYMBOLS)} symbols x {BACKFILL['interval']} x {BACKFILL['days']} days, "
        f"demo at {LATENCY_MS} ms a page",
        "clients": args.clients,
        "seconds": args.seconds,
        "runs": args.runs,
        "period_s": args.period,
        **{name: summary(runs) for name, runs in found.items()},
    }
    print(json.dumps(report, indent=2))


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over ``runs`` of one catalog, and whether they meet the targets."""

    def median(path: tuple[str, ...]) -> float:
        values = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value[key]
            values.append(value)
        return round(statistics.median(values), 3)

    report: dict[str, Any] = {
        "post_to_first_request_s": median(("post_to_first_request_s",)),
        "post_answer_s": median(("post_answer_s",)),
        "plan_requests": median(("plan_requests",)),
    }
    for phase in ("polling", "saturated"):
        report[phase] = {
            name: {
                **{k: median((phase, name, k)) for k in ("p50_ms", "p99_ms", "rps", "requests")},
                "connection_errors": [r[phase][name]["connection_errors"] for r in runs],
            }
            for name in ("jobs", "gaps")
        }
        report[phase]["fill_at_end"] = [r[phase]["fill_at_end"] for r in runs]
    polled = report["polling"]
    report["targets_met"] = {
        "jobs_p99_under_50_ms": polled["jobs"]["p99_ms"] < 50,
        "gaps_p99_under_250_ms": polled["gaps"]["p99_ms"] < 250,
        "first_request_under_1_s": report["post_to_first_request_s"] < 1,
        "no_connection_errors": not any(
            n
            for phase in ("polling", "saturated")
            for name in ("jobs", "gaps")
            for n in report[phase][name]["connection_errors"]
        ),
    }
    return report


if __name__ == "__main__":
    main()
