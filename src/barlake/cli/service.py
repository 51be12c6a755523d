"""``lake queue`` and ``lake worker``: the durable work queue, and the process that serves it."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import click

from barlake.cli.exits import EXIT_INTERRUPTED, EXIT_OK, handles_errors
from barlake.cli.options import selected, selection
from barlake.cli.output import emit_fields, emit_json, emit_table, short
from barlake.cli.state import State
from barlake.views.serialize import dumps

_COLUMNS = ["id", "state", "kind", "priority", "source", "provider", "what", "job_id", "created"]


def _line(request: dict[str, Any]) -> dict[str, Any]:
    s = request["selection"]
    if s.get("symbols"):
        what = [short(s["symbols"])]
    else:
        what = ["all symbols" if s.get("layer") is None else f"layer {s['layer']}"]
    if s.get("intervals"):
        what.append(",".join(s["intervals"]))
    if s.get("days"):
        what.append(f"{s['days']}d")
    elif s.get("start"):
        what.append(f"{s['start']}..{s.get('end') or 'today'}")
    if s.get("policy"):
        what.append(f"policy {s['policy']}")
    return {
        **request,
        "id": request["id"][:8],
        "job_id": (request["job_id"] or "")[:8],
        "what": " ".join(what),
        "created": request["created_at"][:19].replace("T", " "),
    }


@click.group()
def queue() -> None:
    """Queue backfill requests for `lake worker` (or `lake serve`) to run."""


@queue.command("add")
@selection
@click.option("--provider", help="Provider name (default: lake.yaml's default_provider).")
@click.option(
    "--priority",
    type=click.IntRange(-1000, 1000),
    default=0,
    show_default=True,
    help="Higher runs first.",
)
@click.option("--key", help="Idempotency key: a request with this key is only ever queued once.")
@click.option(
    "--kind",
    type=click.Choice(["fill", "prune", "check"]),
    default="fill",
    show_default=True,
    help="What the worker does with the selection.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@click.pass_obj
@handles_errors
def add(state: State, /, as_json: bool, intervals: str | None, key: str | None, **sel: Any) -> None:
    """Queue a request; the same selection while one still waits is that one."""
    request, new = state.lake().queue.add(
        sel.pop("symbols"), key=key, source="cli", **selected(intervals, sel)
    )
    data = {**request.to_dict(), "new": new}
    if as_json:
        emit_json(data)
        return
    click.echo(request.id)
    verb = "queued" if new else f"already {request.state} as"
    state.say(f"{verb} request {request.id[:8]} ({_line(data)['what']})")


@queue.command("list")
@click.option(
    "--state",
    "only",
    type=click.Choice(["queued", "claimed", "done", "failed", "cancelled"]),
    help="Only requests in this state.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="How many requests.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def list_(state: State, /, only: str | None, limit: int, as_json: bool) -> None:
    """List requests, newest first."""
    rows = [r.to_dict() for r in state.lake().queue.list(only, limit)]
    if as_json:
        emit_json(rows)
    else:
        empty = f"no {only} requests" if only else "the queue is empty"
        emit_table(state, [_line(r) for r in rows], _COLUMNS, empty=empty)


@queue.command("show")
@click.argument("request")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
@handles_errors
def show(state: State, /, request: str, as_json: bool) -> None:
    """Show one request (an id prefix is enough)."""
    data = state.lake().queue.get(request).to_dict()
    if as_json:
        emit_json(data)
        return
    emit_fields(data)


@queue.command("cancel")
@click.argument("request")
@click.option("--json", "as_json", is_flag=True, help="Print the request as JSON.")
@click.pass_obj
@handles_errors
def cancel(state: State, /, request: str, as_json: bool) -> None:
    """Cancel a queued or running request (what it fetched is kept)."""
    found = state.lake().queue.cancel(request)
    if as_json:
        emit_json(found.to_dict())
    else:
        state.say(f"cancelled request {found.id[:8]}")


@click.command()
@click.option("--once", is_flag=True, help="Serve what is queued, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    help="Requests in flight per job (default: backfill.parallel_symbols).",
)
@click.option("--provider", help="Only claim requests for this provider.")
@click.option("--name", help="The worker's name in the queue (default: host:pid:n).")
@click.option("--json-logs", is_flag=True, help="One JSON object per log line.")
@click.pass_obj
@handles_errors
def worker(
    state: State,
    /,
    once: bool,
    concurrency: int | None,
    provider: str | None,
    name: str | None,
    json_logs: bool,
) -> None:
    """Serve the work queue: claim, plan and run requests; SIGTERM stops it cleanly."""
    running = state.lake().worker(
        name=name, concurrency=concurrency, provider=provider, log=log_lines(json_logs=json_logs)
    )
    received: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        running.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        running.run(once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(EXIT_INTERRUPTED if signal.SIGINT in received else EXIT_OK)


def log_lines(*, json_logs: bool) -> Any:
    """A worker log that writes one line per event on stderr (JSON objects with ``json_logs``)."""

    def log(event: str, fields: dict[str, Any]) -> None:
        ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if json_logs:
            line = dumps({"ts": ts, "event": event, **fields}, indent=None)
        else:
            shown = " ".join(f"{k}={_short_id(k, v)}" for k, v in fields.items() if v is not None)
            line = f"{ts[:19]}Z {event} {shown}".rstrip()
        click.echo(line, err=True)

    return log


def _short_id(key: str, value: Any) -> Any:
    if key in ("request", "job_id") and isinstance(value, str):
        return value[:8]
    if isinstance(value, str) and (" " in value or not value):
        return json.dumps(value)
    return value
