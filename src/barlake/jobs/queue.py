"""The work queue: backfill requests that a worker claims, plans and runs.

A request is a selection (symbols or a layer, intervals, days or start/end, a policy), a
provider, a priority and who asked. It is planned when a worker claims it, not when it is
queued, so a request queued yesterday fetches what is missing now. The same selection queued
twice while the first still waits is one request; a request given an idempotency key is queued
once whatever became of it.

>>> request, new = lake.queue.add("AAPL,MSFT", interval="1day", days=30)  # doctest: +SKIP
>>> lake.queue.get(request.id).state                                     # doctest: +SKIP
'queued'
"""

from __future__ import annotations

import builtins
import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from barlake.catalog.repositories import Catalog
from barlake.config import LakeConfig
from barlake.domain.datasets import dataset
from barlake.domain.events import EventType
from barlake.domain.intervals import Interval
from barlake.errors import UsageError
from barlake.jobs.backfill import Backfill
from barlake.retention.policy import Policy
from barlake.retention.selection import Selection

Kind = Literal["fill", "prune", "check"]
Source = Literal["cli", "api", "event", "schedule"]
KINDS: tuple[Kind, ...] = ("fill", "prune", "check")
SOURCES: tuple[Source, ...] = ("cli", "api", "event", "schedule")

#: The built-in policy that sizes event work when the lake names none: events are about layers.
EVENT_POLICY = "scanner_layers"


class Doorbell:
    """Rung when this process queues a request, so that its idle workers (``lake serve``'s)
    look at the queue at once instead of at their next poll; workers of other processes poll."""

    def __init__(self) -> None:
        self._rung = threading.Condition()
        self._rings = 0

    def ring(self) -> None:
        with self._rung:
            self._rings += 1
            self._rung.notify_all()

    def rings(self) -> int:
        """How many times it has rung; pass it to ``wait`` to miss none rung since."""
        with self._rung:
            return self._rings

    def wait(self, seen: int, timeout: float, stop: threading.Event) -> None:
        """Until it rings after ``seen`` rings, ``stop`` is set (``wake`` tells the waiters
        to look at it) or ``timeout`` seconds pass."""
        with self._rung:
            self._rung.wait_for(lambda: self._rings != seen or stop.is_set(), timeout)

    def wake(self) -> None:
        with self._rung:
            self._rung.notify_all()


#: This process's doorbell.
DOORBELL = Doorbell()


@dataclass(frozen=True)
class Request:
    """One backfill request of the queue, as ``lake queue list --json`` prints it."""

    id: str
    kind: str
    state: str
    selection: dict[str, Any]
    provider: str | None
    priority: int
    source: str
    idempotency_key: str | None
    job_id: str | None
    worker: str | None
    attempts: int
    error: str | None
    summary: dict[str, Any] | None
    created_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Request:
        return cls(
            id=str(row["request_id"]),
            kind=row["kind"],
            state=row["state"],
            selection=dict(row["selection"] or {}),
            provider=row["provider"],
            priority=int(row["priority"]),
            source=row["source"],
            idempotency_key=row["idempotency_key"],
            job_id=str(row["job_id"]) if row["job_id"] else None,
            worker=row["worker"],
            attempts=int(row["attempts"]),
            error=row["error"],
            summary=row.get("summary"),
            created_at=row["created_at"],
            claimed_at=row["claimed_at"],
            finished_at=row["finished_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("created_at", "claimed_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    def to_selection(self) -> Selection:
        """The selection the worker plans when it claims this request."""
        s = self.selection
        return Selection(
            symbols=tuple(s["symbols"]) if s.get("symbols") is not None else None,
            intervals=tuple(s["intervals"]) if s.get("intervals") else None,
            days=s.get("days"),
            start=date.fromisoformat(s["start"]) if s.get("start") else None,
            end=date.fromisoformat(s["end"]) if s.get("end") else None,
            layer=s.get("layer"),
            policy=s.get("policy"),
            provider=self.provider,
        )


class Queue:
    """Adds, lists and cancels backfill requests, and turns pending events into requests."""

    def __init__(self, catalog: Catalog, backfill: Backfill, config: LakeConfig) -> None:
        self.catalog, self.backfill, self.config = catalog, backfill, config

    def add(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval | Sequence[Interval] | None = None,
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        layer: int | None = None,
        policy: str | Policy | None = None,
        provider: str | None = None,
        priority: int = 0,
        source: Source = "cli",
        key: str | None = None,
        kind: Kind = "fill",
    ) -> tuple[Request, bool]:
        """Queue a request (checked as ``lake plan`` checks its options); returns it and
        whether it is new (False: the same selection was already waiting, or ``key`` was
        used before)."""
        if kind not in KINDS:
            msg = f"unknown request kind {kind!r}; choose one of {', '.join(KINDS)}"
            raise UsageError(msg)
        if source not in SOURCES:
            msg = f"unknown request source {source!r}; choose one of {', '.join(SOURCES)}"
            raise UsageError(msg)
        if not -1000 <= priority <= 1000:
            msg = f"priority must be between -1000 and 1000, got {priority}"
            raise UsageError(msg)
        if key is not None and not (0 < len(key.strip()) <= 200):
            msg = "an idempotency key is 1 to 200 characters"
            raise UsageError(msg)
        selection = Selection.of(
            symbols, interval=interval, days=days, start=start, end=end, layer=layer, policy=policy
        )
        name = provider or self.config.default_provider
        chosen = self._check(selection, kind, name)
        return self.enqueue(
            kind,
            selection.parameters(chosen),
            provider=name if kind == "fill" else None,
            priority=priority,
            source=source,
            key=key,
        )

    def enqueue(
        self,
        kind: Kind,
        selection: dict[str, Any],
        *,
        provider: str | None,
        priority: int,
        source: Source,
        key: str | None = None,
    ) -> tuple[Request, bool]:
        """Queue an already checked selection (as ``Selection.parameters`` spells it)."""
        digest = json.dumps([kind, selection, provider], sort_keys=True, default=str)
        row, new = self.catalog.enqueue(
            {
                "kind": kind,
                "selection": selection,
                "provider": provider,
                "priority": priority,
                "source": source,
                "selection_key": hashlib.sha256(digest.encode()).hexdigest(),
                "idempotency_key": key,
            }
        )
        if new:
            DOORBELL.ring()
        return Request.from_row(row), new

    def list(self, state: str | None = None, limit: int = 100) -> list[Request]:
        """Requests, newest first (only those in ``state`` when given)."""
        from barlake.catalog.queue import STATES

        if state is not None and state not in STATES:
            msg = f"unknown request state {state!r}; choose one of {', '.join(STATES)}"
            raise UsageError(msg)
        if not 1 <= limit <= 10_000:
            msg = f"limit must be between 1 and 10000, got {limit}"
            raise UsageError(msg)
        return [Request.from_row(r) for r in self.catalog.requests(state=state, limit=limit)]

    def get(self, request: str) -> Request:
        """The request whose id starts with ``request``."""
        return Request.from_row(self.catalog.request(request))

    def cancel(self, request: str) -> Request:
        """Cancel a queued or claimed request (its worker stops the job at its next
        heartbeat, keeping what was fetched)."""
        found = self.get(request)
        if not self.catalog.cancel_request(found.id):
            msg = f"request {found.id[:8]} is already {self.get(found.id).state}; nothing to cancel"
            raise UsageError(msg)
        return self.get(found.id)

    def depth(self) -> dict[str, int]:
        """How many requests are in each state."""
        return self.catalog.queue_depth()

    def workers(self) -> builtins.list[dict[str, Any]]:
        """The workers of this lake's queue in any process or on any machine that have not
        stopped: name, host, pid, provider, started and last heard of, and ``alive`` (False:
        its process is gone, or it sent no heartbeat for ``worker.lease_s``)."""
        return self.catalog.workers(timedelta(seconds=self.config.worker.lease_s))

    # -- events ------------------------------------------------------------------------------

    def from_events(self) -> builtins.list[tuple[int, Request | None]]:
        """Queue the work pending events ask for and mark each served with its request: the
        symbols qualified or promoted together get one fill by their new retention (planned
        at claim, so only what it adds is fetched, packed as ``lake plan`` would pack it),
        those demoted one prune, and each detected gap a fill of its range. An event about a
        symbol no longer in the catalog is served by nothing."""
        pending = self.catalog.events(pending=True)
        if pending.is_empty():
            return []
        policy = self._event_policy()
        names = set(self.catalog.symbols(None)["symbol"].to_list())
        grouped: dict[str, list[tuple[int, str, int]]] = {"fill": [], "prune": []}
        served: builtins.list[tuple[int, Request | None]] = []
        for event_id, kind, payload in pending.select("id", "type", "payload").iter_rows():
            data = json.loads(payload or "{}")
            symbol = str(data.get("symbol", ""))
            layer = int(data.get("to", data.get("layer", 0)) or 0)
            if symbol not in names:
                served.append((int(event_id), None))
            elif kind in (EventType.SYMBOL_QUALIFIED, EventType.LAYER_PROMOTED):
                grouped["fill"].append((int(event_id), symbol, layer))
            elif kind == EventType.LAYER_DEMOTED:
                grouped["prune"].append((int(event_id), symbol, layer))
            elif kind == EventType.GAP_DETECTED:
                served.append((int(event_id), self._gap_request(symbol, data)))
            else:
                served.append((int(event_id), None))
        for kind, events in grouped.items():
            if events:
                symbols = tuple(sorted({s for _, s, _ in events}))
                request, _ = self.enqueue(
                    "fill" if kind == "fill" else "prune",
                    Selection(symbols=symbols, policy=policy).parameters(policy),
                    provider=self.config.default_provider if kind == "fill" else None,
                    priority=max(layer for _, _, layer in events),
                    source="event",
                )
                served += [(i, request) for i, _, _ in events]
        self.catalog.serve_events([(i, r.id if r else None) for i, r in served])
        return sorted(served, key=lambda x: x[0])

    def _gap_request(self, symbol: str, data: dict[str, Any]) -> Request:
        gap = Selection(
            symbols=(symbol,),
            intervals=(dataset(str(data["interval"])),),
            start=date.fromisoformat(data["first"]),
            end=date.fromisoformat(data["last"]),
        ).parameters(None)
        return self.enqueue(
            "fill", gap, provider=self.config.default_provider, priority=0, source="event"
        )[0]

    def _event_policy(self) -> str | None:
        """The policy event work is sized by: the lake's own (None: planning loads it), else
        the built-in scanner_layers."""
        return None if self.backfill.policies.chosen(None) is not None else EVENT_POLICY

    def _check(self, selection: Selection, kind: Kind, provider: str) -> str | None:
        """Refuse what the worker could not run (unknown symbols, policy, provider, bad dates)
        now, with the message ``lake plan`` would give; returns the policy's name."""
        policy = selection.policy
        if kind == "fill":
            self.backfill.resolve(selection)
            self.backfill.capabilities(provider)
        elif kind == "prune":
            self.backfill.policies.required(policy)
        else:
            self.backfill.resolve(selection)
        if isinstance(policy, Policy):
            return policy.name
        return policy
