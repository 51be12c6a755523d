"""The backfill_requests table of the DuckDB catalog: the durable work queue, and the
schedule_runs table that remembers when each scheduled entry last queued work.

A request is ``queued``, then ``claimed`` by one worker (its host and pid, and a heartbeat that
the lease counts from), then ``done``, ``failed`` or ``cancelled``. A claim is one UPDATE that
only matches a queued row, so two workers never claim the same request; a claim whose owner is
gone goes back to the queue (``requeue_abandoned``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from barlake.catalog.jobs import HELD, Connected, end_claim
from barlake.catalog.repositories import Bell, Ending
from barlake.errors import NotFoundError
from barlake.liveness import abandoned

#: States a request can be in; the first two are open (a worker will still act on them).
STATES = ("queued", "claimed", "done", "failed", "cancelled")
OPEN = ("queued", "claimed")

_COLUMNS = (
    "request_id, created_at, kind, CAST(selection AS VARCHAR) AS selection, provider, priority, "
    "source, selection_key, idempotency_key, state, not_before, worker, host, pid, claimed_at, "
    "heartbeat_at, attempts, job_id, finished_at, error, CAST(summary AS VARCHAR) AS summary"
)


class Claims(Connected, Protocol):
    """A catalog that claims requests: its connections, and how its claim locks a row."""

    skip_locked: str
    ring: str


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in row.items()}
    for key in ("selection", "summary"):
        if key in out:
            out[key] = json.loads(out[key]) if out[key] else None
    return out


class QueueTable:
    """Backfill requests over the catalog's connections (mixed into ``Catalog``)."""

    #: How the claim's subquery locks the row it picks (PostgreSQL: skip those other
    #: workers are claiming; DuckDB writes one transaction at a time).
    skip_locked = ""
    #: A statement that tells idle workers elsewhere, when its transaction commits, that a
    #: request became claimable (PostgreSQL: a NOTIFY, ``postgres.bell``); "" when only
    #: polling finds it.
    ring = ""

    def bell(self) -> Bell | None:
        """None: a worker of another process finds new requests when it polls."""
        return None

    def enqueue(self: Claims, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert ``request`` unless one like it is waiting: the same ``idempotency_key`` in any
        state, or the same ``selection_key`` still queued. Returns the row and whether it is
        new."""
        with self.connect() as con:
            if request.get("idempotency_key"):
                same = con.execute(
                    f"SELECT {_COLUMNS} FROM backfill_requests WHERE idempotency_key = ?",
                    [request["idempotency_key"]],
                )
            else:
                same = con.execute(
                    f"SELECT {_COLUMNS} FROM backfill_requests "
                    "WHERE selection_key = ? AND state = 'queued' ORDER BY created_at LIMIT 1",
                    [request["selection_key"]],
                )
            found = _fetch(same)
            if found:
                return found[0], False
            request_id = str(uuid.uuid4())
            fields = {**request, "selection": json.dumps(request["selection"], default=str)}
            cols = ["request_id", "state", *fields]
            marks = ", ".join("?" for _ in cols)
            con.execute(
                f"INSERT INTO backfill_requests ({', '.join(cols)}) VALUES ({marks})",
                [request_id, "queued", *fields.values()],
            )
            if self.ring:
                con.execute(self.ring)
            row = _fetch(
                con.execute(
                    f"SELECT {_COLUMNS} FROM backfill_requests WHERE request_id = ?", [request_id]
                )
            )
            return row[0], True

    def requests(
        self: Connected, *, state: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Requests, newest first (only those in ``state`` when given)."""
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        found = self.rows(
            f"SELECT {_COLUMNS} FROM backfill_requests {where} "
            "ORDER BY created_at DESC, request_id LIMIT ?",
            [*params, int(limit)],
        )
        return [_row(r) for r in found]

    def request(self: Connected, prefix: str) -> dict[str, Any]:
        """The request whose id starts with ``prefix``."""
        found = self.rows(
            f"SELECT {_COLUMNS} FROM backfill_requests "
            "WHERE CAST(request_id AS VARCHAR) LIKE ? LIMIT 2",
            [prefix.strip().lower() + "%"],
        )
        if len(found) != 1 or not prefix.strip():
            msg = f"no single backfill request matches {prefix!r}; list them with `lake queue list`"
            raise NotFoundError(msg)
        return _row(found[0])

    def queue_depth(self: Connected) -> dict[str, int]:
        """How many requests are in each state (every state listed)."""
        found = self.rows("SELECT state, count(*) AS n FROM backfill_requests GROUP BY state")
        counts = {s: 0 for s in STATES}
        counts.update({r["state"]: int(r["n"]) for r in found})
        return counts

    def claim(
        self: Claims, worker: str, host: str, pid: int, *, provider: str | None = None
    ) -> dict[str, Any] | None:
        """Claim the queued request of highest priority (oldest first) for ``worker``."""
        where = "state = 'queued' AND (not_before IS NULL OR not_before <= now())"
        params: list[Any] = [worker, host, pid]
        if provider is not None:
            where += " AND provider = ?"
        with self.connect() as con:
            claimed = _fetch(
                con.execute(
                    "UPDATE backfill_requests SET state = 'claimed', worker = ?, host = ?, "
                    "pid = ?, claimed_at = now(), heartbeat_at = now(), attempts = attempts + 1, "
                    "error = NULL WHERE request_id = (SELECT request_id FROM backfill_requests "
                    f"WHERE {where} ORDER BY priority DESC, created_at, request_id LIMIT 1"
                    f"{self.skip_locked}) "
                    "RETURNING request_id",
                    [*params, *([provider] if provider is not None else [])],
                )
            )
            if not claimed:
                return None
            row = con.execute(
                f"SELECT {_COLUMNS} FROM backfill_requests WHERE request_id = ?",
                [claimed[0]["request_id"]],
            )
            return _fetch(row)[0]

    def heartbeat(
        self: Connected, request_id: str, worker: str, *, attempt: int | None = None
    ) -> bool:
        """Extend ``worker``'s lease on a request (its claim number ``attempt``, when given);
        False when the request is no longer its claim (cancelled, or taken over after the
        lease ran out)."""
        with self.connect() as con:
            beat = con.execute(
                f"UPDATE backfill_requests SET heartbeat_at = now() WHERE {HELD} "
                "RETURNING request_id",
                [request_id, worker, attempt, attempt],
            ).fetchall()
        return bool(beat)

    def attach_job(self: Connected, request_id: str, job_id: str) -> None:
        """Record the job a claimed request runs as (events it serves get the job too)."""
        with self.connect() as con:
            con.execute(
                "UPDATE backfill_requests SET job_id = ? WHERE request_id = ?",
                [job_id, request_id],
            )
            con.execute("UPDATE events SET job_id = ? WHERE request_id = ?", [job_id, request_id])

    def finish(
        self: Claims,
        request_id: str,
        worker: str,
        state: str,
        *,
        error: str | None = None,
        summary: dict[str, Any] | None = None,
        retry_in: timedelta | None = None,
        attempt: int | None = None,
    ) -> bool:
        """End ``worker``'s claim (number ``attempt``, when given): ``done``, ``failed`` or
        ``queued`` again (released, to be claimed after ``retry_in`` when given). False when
        the claim was no longer its own."""
        with self.connect() as con:
            return end_claim(
                con,
                request_id,
                worker,
                attempt,
                Ending(state, error, summary, retry_in),
                ring=self.ring,
            )

    def cancel_request(self: Connected, request_id: str) -> bool:
        """Cancel an open request (a claimed one's worker stops at its next heartbeat);
        False when it had already ended."""
        with self.connect() as con:
            done = con.execute(
                "UPDATE backfill_requests SET state = 'cancelled', finished_at = now() "
                "WHERE request_id = ? AND state IN ('queued', 'claimed') RETURNING request_id",
                [request_id],
            ).fetchall()
        return bool(done)

    def requeue_abandoned(self: Claims, lease: timedelta) -> list[str]:
        """Put back in the queue every claim whose worker is gone (its pid is dead on its
        host, or it sent no heartbeat for ``lease``); returns their ids."""
        with self.connect() as con:
            claimed = con.execute(
                "SELECT request_id, host, pid, coalesce(heartbeat_at, claimed_at) "
                "FROM backfill_requests WHERE state = 'claimed'"
            ).fetchall()
            gone = abandoned(claimed, lease)
            if gone:
                con.execute(
                    "UPDATE backfill_requests SET state = 'queued', worker = NULL, "
                    "error = 'its worker stopped; queued again' "
                    "WHERE state = 'claimed' AND request_id IN (SELECT unnest(?::UUID[]))",
                    [gone],
                )
                if self.ring:
                    con.execute(self.ring)
        return gone

    def serve_events(self: Connected, served: Sequence[tuple[int, str | None]]) -> None:
        """Mark events processed, each with the request it queued (None: nothing to do)."""
        with self.connect() as con:
            for event_id, request_id in served:
                con.execute(
                    "UPDATE events SET processed_at = now(), request_id = ? "
                    "WHERE id = ? AND processed_at IS NULL",
                    [request_id, event_id],
                )

    # -- workers -----------------------------------------------------------------------------

    def register_worker(
        self: Connected, name: str, host: str, pid: int, provider: str | None
    ) -> None:
        """Record that worker ``name`` (on ``host``, process ``pid``) runs from now."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO workers (name, host, pid, provider, started_at, heartbeat_at) "
                "VALUES (?, ?, ?, ?, now(), now()) ON CONFLICT (name) DO UPDATE SET "
                "host = excluded.host, pid = excluded.pid, provider = excluded.provider, "
                "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
                "stopped_at = NULL",
                [name, host, pid, provider],
            )

    def beat_worker(self: Connected, name: str, *, stopped: bool = False) -> None:
        """Worker ``name`` is still there (``stopped``: it has ended)."""
        with self.connect() as con:
            con.execute(
                "UPDATE workers SET heartbeat_at = now(), "
                "stopped_at = CASE WHEN ? THEN now() ELSE NULL END WHERE name = ?",
                [stopped, name],
            )

    def workers(self: Connected, lease: timedelta) -> list[dict[str, Any]]:
        """Every worker not known to have stopped, each with ``alive``: False when its process
        is gone from its host, or it sent no heartbeat for ``lease``."""
        found = self.rows(
            "SELECT name, host, pid, provider, started_at, heartbeat_at FROM workers "
            "WHERE stopped_at IS NULL ORDER BY started_at, name"
        )
        gone = set(
            abandoned([(r["name"], r["host"], r["pid"], r["heartbeat_at"]) for r in found], lease)
        )
        return [{**r, "alive": r["name"] not in gone} for r in found]

    # -- schedules ---------------------------------------------------------------------------

    def schedule_runs(self: Connected) -> dict[str, tuple[datetime, str | None]]:
        """When each schedule entry last queued work, and the key of what it queued."""
        found = self.rows("SELECT entry, last_run_at, last_key FROM schedule_runs")
        return {r["entry"]: (r["last_run_at"], r["last_key"]) for r in found}

    def record_schedule_run(self: Connected, entry: str, at: datetime, key: str | None) -> None:
        with self.connect() as con:
            con.execute(
                "INSERT INTO schedule_runs (entry, last_run_at, last_key) VALUES (?, ?, ?) "
                "ON CONFLICT (entry) DO UPDATE SET last_run_at = excluded.last_run_at, "
                "last_key = excluded.last_key",
                [entry, at, key],
            )


def _fetch(result: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in result.description]
    return [_row(dict(zip(names, r, strict=True))) for r in result.fetchall()]
