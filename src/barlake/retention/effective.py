"""The lake's effective retention: the policy used when none is named, and what lake.yaml says.

When a command names no policy (``--policy``), the lake's own is used, the first of:

1. lake.yaml's roadmap sections, ``data_retention.layer_based`` and/or
   ``data_management.scanner_layers`` (merged where both are given; ``config.LakeConfig``);
2. lake.yaml's ``default_policy`` (a name or a path, as ``--policy`` takes);
3. ``scanner_layers`` (the lake's ``policies/scanner_layers.yaml``, else the built-in one) when
   ``backfill.use_scanner_layers`` is true;
4. none: every symbol gets ``backfill.default_days``.

lake.yaml refuses the sections together with ``default_policy``, and either of them with
``backfill.use_scanner_layers: false``. :func:`effective` reports all of it, each value with
its source, for ``lake config show``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from barlake.calendars.calendar import cache_dir_source
from barlake.config import FILE_NAME, LakeConfig, LayerRetention, mask, read
from barlake.errors import UsageError
from barlake.providers import PROVIDERS
from barlake.retention.policy import (
    LAYERS,
    TRADES,
    LayerPolicy,
    Policy,
    Retention,
    builtin_policies,
    policy_path,
    read_policy,
)
from barlake.retention.targets import describe

#: The policy ``backfill.use_scanner_layers: true`` names when lake.yaml names none.
SCANNER_LAYERS = "scanner_layers"


def configured_policy(config: LakeConfig) -> Policy | None:
    """lake.yaml's roadmap sections as a policy, or None without them."""
    layers = config.layer_retention()
    if layers is None:
        return None
    sections = " + ".join(config.retention_sections)
    return Policy(
        name=f"{FILE_NAME} {sections}",
        description=f"The retention of {FILE_NAME}'s {sections}.",
        layers={n: _layer_policy(rule) for n, rule in layers.items()},  # type: ignore[misc]
    )


def _layer_policy(rule: LayerRetention) -> LayerPolicy:
    intervals = {i: Retention(days=s.days) for i, s in rule.intervals.items()}
    trades = Retention(days=rule.trades.days) if rule.trades else None
    return LayerPolicy(priority=rule.priority, intervals=intervals, trades=trades)


def lake_policy(config: LakeConfig) -> tuple[str | Policy | None, str]:
    """The policy the lake uses when none is named, and where that choice comes from."""
    configured = configured_policy(config)
    if configured is not None:
        return configured, f"{FILE_NAME} {' and '.join(config.retention_sections)}"
    if config.default_policy is not None:
        return config.default_policy, f"{FILE_NAME} default_policy"
    if config.backfill.use_scanner_layers:
        return SCANNER_LAYERS, f"{FILE_NAME} backfill.use_scanner_layers: true"
    days = config.backfill.default_days
    why = (
        "backfill.use_scanner_layers: false"
        if config.backfill.use_scanner_layers is False
        else "no policy configured"
    )
    return None, f"none ({why}): every symbol gets backfill.default_days ({days})"


@dataclass(frozen=True)
class Setting:
    """One setting's effective value and where it came from."""

    key: str
    value: Any
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source}


@dataclass(frozen=True)
class Rule:
    """One value of the effective policy: a layer's priority, or one interval's (or trades')
    retention, or the liquidity filter's (``layer`` None)."""

    layer: int | None
    what: str
    value: str
    source: str
    days: int | None = None
    sessions: int | None = None
    keep_days: int | None = None
    keep_sessions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "what": self.what,
            "value": self.value,
            "days": self.days,
            "sessions": self.sessions,
            "keep_days": self.keep_days,
            "keep_sessions": self.keep_sessions,
            "source": self.source,
        }


@dataclass(frozen=True)
class Effective:
    """What ``lake config show`` prints: the settings and the policy, each value's source."""

    file: Path
    file_exists: bool
    settings: tuple[Setting, ...]
    policy: str | None
    policy_source: str
    rules: tuple[Rule, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": str(self.file),
            "file_exists": self.file_exists,
            "settings": [s.to_dict() for s in self.settings],
            "policy": {
                "name": self.policy,
                "source": self.policy_source,
                "rules": [r.to_dict() for r in self.rules],
            },
        }


def effective(
    root: Path,
    *,
    policy: str | None = None,
    environ: Mapping[str, str] | None = None,
    root_source: str = "argument",
    provider: str | None = None,
    parallel: int | None = None,
) -> Effective:
    """The lake at ``root``'s settings and the policy a command would use with ``--policy``
    ``policy`` (None: the lake's own), each value with its source; secrets masked.

    Besides lake.yaml's settings: ``lake`` (the folder, from ``root_source``: ``--lake``,
    ``env LAKE_ROOT`` or the default), ``cache_dir`` (calendar and rate-limit files) and
    ``api.token`` (``***`` when its variable is set: the API then takes changes). ``provider``
    and ``parallel`` are ``--provider`` and ``--parallel`` as a fill would take them.

    >>> effective(Path("lake")).policy_source  # doctest: +SKIP
    'lake.yaml data_retention'
    """
    root = Path(root)
    if not root.is_dir():
        msg = f"no lake at {root}; run `lake init` there or pass --lake PATH"
        raise UsageError(msg)
    env = os.environ if environ is None else environ
    if provider is not None and provider not in PROVIDERS:
        msg = f"unknown provider {provider!r}; use one of: {', '.join(PROVIDERS)}"
        raise UsageError(msg)
    loaded = read(root, env).with_flags(provider=provider, parallel=parallel)
    config = loaded.config
    cache, cache_source = cache_dir_source(env)
    settings = [
        Setting("lake", str(root), root_source),
        Setting("cache_dir", str(cache), cache_source),
    ]
    for key, value, source in loaded.settings():
        settings.append(Setting(key, value, source))
        if key == "api.token_env":
            token = env.get(config.api.token_env)
            shown = mask("api.token", token) if token else None
            settings.append(Setting("api.token", shown, f"env {value}" if token else "default"))
    chosen, source = lake_policy(config)
    if policy is not None:
        chosen, source = policy, f"--policy {policy}"
    rules: list[Rule] = []
    name = None
    if isinstance(chosen, Policy):
        layers = config.layer_retention() or {}
        rules = _rules(chosen, lambda n, what: _section_source(layers, n, what))
        name = chosen.name
    elif chosen is not None:
        path = policy_path(chosen, root)
        where = _where(path, root)
        from_file = read_policy(path)
        rules = _rules(from_file, lambda n, what: _file_source(from_file, where, n, what))
        name = from_file.name
    return Effective(loaded.path, loaded.path.exists(), tuple(settings), name, source, tuple(rules))


#: Where a value comes from, given the layer that defines it (None: the policy's liquidity
#: filter) and what it is (``priority``, an interval, ``trades``, ``liquidity.KEY``).
SourceOf = Callable[[int | None, str], str]


def _file_source(policy: Policy, where: str, n: int | None, what: str) -> str:
    if n is None:
        given = "liquidity" in policy.model_fields_set
        key = what.removeprefix("liquidity.")
        if not given or key not in policy.liquidity.model_fields_set:
            return "default"
        return f"{where}: {what}"
    return f"{where}: layers.{n}.{what if what in ('priority', TRADES) else f'intervals.{what}'}"


def _section_source(layers: Mapping[int, LayerRetention], n: int | None, what: str) -> str:
    if n is None:
        return "default"  # the roadmap's sections have no liquidity filter
    rule = layers[n]
    if what == "priority" and rule.priority_source is None:
        return f"default for layer {n} (as in policies/scanner_layers.yaml)"
    if what == "priority":
        return f"{FILE_NAME} {rule.priority_source}"
    found = rule.trades if what == TRADES else rule.intervals.get(what)  # type: ignore[call-overload]
    assert found is not None  # the policy was built from these
    return f"{FILE_NAME} {found.source}"


def _where(path: Path, root: Path) -> str:
    """A policy file as people know it: the lake's ``policies/NAME.yaml``, a built-in one, or
    its path."""
    resolved = path.resolve()
    if resolved.is_relative_to(root.resolve()):
        return str(resolved.relative_to(root.resolve()))
    if resolved in builtin_policies().values():
        return f"built-in policies/{path.name}"
    return str(path)


def _rules(policy: Policy, source: SourceOf) -> list[Rule]:
    """Each value of ``policy`` per layer 0-3; ``source(defined_layer, what)`` says where it
    was written. A layer the policy leaves out shows the layer below it that it uses."""
    out: list[Rule] = []
    for n in LAYERS:
        layer = policy.for_layer(n)
        if layer is None:
            out.append(Rule(n, "-", "no rule: its symbols are skipped", f"policy {policy.name}"))
            continue
        defined = max(d for d in policy.layers if d <= n)
        note = "" if defined == n else f" (layer {n} not defined: layer {defined}'s)"
        out.append(Rule(n, "priority", layer.priority, source(defined, "priority") + note))
        for interval in policy.intervals_for(n):
            rule = layer.intervals[interval]
            out.append(_retention_rule(n, interval, rule, source(defined, interval) + note))
        if layer.trades is not None:
            out.append(_retention_rule(n, TRADES, layer.trades, source(defined, TRADES) + note))
    for key, value in policy.liquidity.model_dump().items():
        what = f"liquidity.{key}"
        shown = f"{value:,.0f}" if float(value).is_integer() else str(value)
        out.append(Rule(None, what, shown, source(None, what)))
    return out


def _retention_rule(layer: int, what: str, rule: Retention, source: str) -> Rule:
    value = describe(rule)
    if rule.keep_days is not None:
        value += f", keep {rule.keep_days} calendar days"
    if rule.keep_sessions is not None:
        value += f", keep {rule.keep_sessions} sessions"
    if what == TRADES:
        value += " (no provider serves trades yet)"
    return Rule(
        layer, what, value, source, rule.days, rule.sessions, rule.keep_days, rule.keep_sessions
    )
