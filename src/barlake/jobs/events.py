"""Serving events: promotions and qualifications get what their new retention adds, detected
gaps get their gap; each event records the job that served it."""

from __future__ import annotations

import json
from datetime import date

import polars as pl

from barlake.domain.datasets import dataset
from barlake.domain.events import EventType
from barlake.domain.ranges import DateRange
from barlake.fetch.job import JobResult
from barlake.jobs.backfill import Backfill, RunOptions
from barlake.planning.plan import Plan
from barlake.retention.policy import Policy
from barlake.retention.selection import Selection
from barlake.retention.targets import Target, resolve

#: Events whose symbol gets the ranges its layer's retention implies.
BY_POLICY = (EventType.SYMBOL_QUALIFIED, EventType.LAYER_PROMOTED)


def serve(
    backfill: Backfill,
    options: RunOptions,
    *,
    policy: str | Policy | None = None,
    provider: str | None = None,
) -> JobResult:
    """Serve every pending event in one job; events whose symbols failed stay pending."""
    catalog = backfill.catalog
    with backfill.fill_lock():
        catalog.interrupt_stale()
        pending = catalog.events(pending=True)
        plan, served = plan_events(backfill, pending, policy, provider)
        scheduler = backfill.start(plan, options)
        result = backfill.execute(scheduler)
    done = [i for i, symbol in served if symbol not in result.symbol_errors]
    catalog.mark_events(done, result.job_id)
    return result


def plan_events(
    backfill: Backfill, pending: pl.DataFrame, policy: str | Policy | None, provider: str | None
) -> tuple[Plan, list[tuple[int, str]]]:
    """The plan that serves ``pending`` events, and (event id, symbol) for each."""
    served: list[tuple[int, str]] = []
    by_policy: set[str] = set()
    explicit: list[Target] = []
    for event_id, kind, payload in pending.select("id", "type", "payload").iter_rows():
        data = json.loads(payload or "{}")
        symbol = str(data.get("symbol", ""))
        served.append((int(event_id), symbol))
        if kind in BY_POLICY:
            by_policy.add(symbol)
        elif kind == EventType.GAP_DETECTED:
            first, last = date.fromisoformat(data["first"]), date.fromisoformat(data["last"])
            window = DateRange.inclusive(first, last)
            explicit.append(
                Target(symbol, dataset(data["interval"]), window, f"event {event_id}: gap detected")
            )
    wanted = sorted(by_policy | {t.symbol for t in explicit})
    with backfill.catalog.session(read_only=True):
        known = backfill.registry.members(backfill.registry.rows(wanted)["symbol"].to_list())
    names = {m.name for m in known}
    chosen: Policy | None
    if by_policy:
        chosen = backfill.policies.required(policy)
    else:
        chosen = backfill.policies.chosen(policy) if policy is not None else None
    asked = backfill.ask(Selection(), chosen)
    targets, skipped, priority = resolve(
        asked, [m for m in known if m.name in by_policy], backfill.clock().date()
    )
    targets += [t for t in explicit if t.symbol in names]
    parameters = {"events": len(served), "policy": chosen.name if chosen else None}
    plan = backfill.plan_targets(
        known, targets, provider=provider, skipped=skipped, priority=priority, parameters=parameters
    )
    return plan, served
