"""Targets: the range of each interval a symbol should have, and where that range came from.

The user's ``--days``/``--start``/``--end`` always win (``backfill.respect_user_overrides``);
otherwise the retention policy of the symbol's layer decides, else the configured default. Pure
logic: catalog rows and a policy in, targets and explanations out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from barlake.calendars.calendar import Calendar
from barlake.domain.datasets import Dataset
from barlake.domain.ranges import DateRange
from barlake.retention.policy import TRADES, Policy, Retention, priority_rank


@dataclass(frozen=True)
class Target:
    """One symbol's wanted range at one interval, and why."""

    symbol: str
    interval: Dataset
    window: DateRange
    source: str


@dataclass(frozen=True)
class Ask:
    """What the user asked for: intervals (None: the policy's), dates, and a policy."""

    intervals: Sequence[Dataset] | None
    window: DateRange | None
    flag: str
    policy: Policy | None
    default_window: DateRange
    default_source: str
    respect_user: bool = True


class Symbol(Protocol):
    """A symbol as targets need it (``universe.members.Member``)."""

    @property
    def name(self) -> str: ...
    @property
    def layer(self) -> int: ...
    @property
    def calendar(self) -> Calendar: ...


def resolve(
    asked: Ask, symbols: Sequence[Symbol], today: date
) -> tuple[list[Target], list[tuple[str, str, str]], dict[str, int]]:
    """Targets for ``symbols``; what is skipped as (symbol, interval, reason); each symbol's
    priority (policy priority of its layer first, then its layer)."""
    targets: list[Target] = []
    skipped: list[tuple[str, str, str]] = []
    priority: dict[str, int] = {}
    policy = asked.policy
    for sym in symbols:
        priority[sym.name] = sym.layer
        if policy is None:
            window = asked.window or asked.default_window
            source = asked.flag if asked.window else asked.default_source
            for interval in asked.intervals or ("1day",):
                targets.append(Target(sym.name, interval, window, source))
            continue
        layer_policy = policy.for_layer(sym.layer)
        if layer_policy is None:
            for interval in asked.intervals or ("1day",):
                reason = f"policy {policy.name} has no rule for layer {sym.layer}"
                skipped.append((sym.name, interval, reason))
            continue
        priority[sym.name] = priority_rank(layer_policy.priority) * 10 + sym.layer
        wanted: list[Dataset] = (
            list(asked.intervals) if asked.intervals else [*policy.intervals_for(sym.layer)]
        )
        if layer_policy.trades is not None and not asked.intervals:
            wanted.append(TRADES)
        for interval in wanted:
            rule = layer_policy.retention(interval)
            where = f"policy {policy.name}, layer {sym.layer} ({layer_policy.priority})"
            if rule is None and asked.window is None:
                what = "trades" if interval == TRADES else f"{interval} bars"
                skipped.append((sym.name, interval, f"{where} keeps no {what}"))
                continue
            target = _target(asked, sym, interval, rule, where, today)
            if target is not None:
                targets.append(target)
    return targets, skipped, priority


def _target(
    asked: Ask, sym: Symbol, interval: Dataset, rule: Retention | None, where: str, today: date
) -> Target | None:
    own = rule.window(today, sym.calendar) if rule is not None else None
    if asked.window is None:
        assert own is not None
        return Target(sym.name, interval, own, f"{where}: {describe(rule)}")  # type: ignore[arg-type]
    if own is None:
        return Target(sym.name, interval, asked.window, f"{asked.flag} ({where} keeps none)")
    if asked.respect_user:
        note = f"{asked.flag}, overriding {where}: {describe(rule)}"  # type: ignore[arg-type]
        return Target(sym.name, interval, asked.window, note)
    window = asked.window.intersect(own)
    if window is None:
        return None
    return Target(sym.name, interval, window, f"{asked.flag} capped by {where}")


def describe(rule: Retention) -> str:
    """``60 calendar days`` or ``40 sessions``."""
    if rule.sessions is not None:
        return f"{rule.sessions} sessions"
    return f"{rule.days} calendar days"
