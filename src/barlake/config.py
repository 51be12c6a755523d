"""``lake.yaml``: the lake's configuration, validated strictly.

Precedence, highest first: command-line flags, environment variables (``LAKE_PROVIDER``,
``LAKE_PARALLEL_SYMBOLS``, ``LAKE_<PROVIDER>_BASE_URL``, ``LAKE_<PROVIDER>_RATE_LIMIT``), the file,
the defaults below. Unknown keys are errors that name the file, the key and the nearest valid one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from barlake.errors import ConfigError

FILE_NAME = "lake.yaml"

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TierConfig(_Strict):
    min_market_cap: float = Field(default=0, ge=0, description="Smallest market cap (USD).")
    parallel: int = Field(default=1, ge=1, description="Requests of this tier in flight.")


DEFAULT_TIERS = {
    "priority": TierConfig(min_market_cap=200e9, parallel=10),
    "active": TierConfig(min_market_cap=10e9, parallel=5),
    "standard": TierConfig(min_market_cap=2e9, parallel=3),
    "archive": TierConfig(min_market_cap=0, parallel=2),
}


#: What a page of stored bars fetched again costs, in requests (see ``barlake.planning.cost``).
REREAD_WEIGHT = 0.5


class BackfillConfig(_Strict):
    respect_user_overrides: bool = Field(
        default=True, description="--days/--start/--end always win over policies and tiers."
    )
    parallel_symbols: int = Field(default=10, ge=1, le=1000, description="Requests in flight.")
    use_symbol_tiers: bool = Field(
        default=False, description="Market-cap tiers set per-tier concurrency (never dates)."
    )
    tiers: dict[str, TierConfig] = Field(
        default_factory=lambda: dict(DEFAULT_TIERS),
        description="Tier name -> market-cap threshold and concurrency; unknown caps: standard.",
    )
    default_days: int = Field(
        default=30, ge=1, description="Calendar days to cover when no flag or policy says."
    )
    provisional_grace_minutes: float = Field(
        default=30,
        ge=0,
        description="After a session's close, its bars stay provisional this long.",
    )
    max_attempts: int = Field(default=6, ge=1, description="Tries per page for retryable errors.")
    backoff_base_s: float = Field(default=0.2, gt=0, description="First backoff step.")
    backoff_cap_s: float = Field(default=30, gt=0, description="Longest backoff step.")
    flush_rows: int = Field(
        default=2_000_000, ge=1, description="Buffered bars that force a write to Parquet."
    )
    reread_weight: float = Field(
        default=REREAD_WEIGHT,
        ge=0,
        description="What a page of stored bars fetched again costs, in requests: the planner "
        "merges nearby gaps or packs unlike ranges only when it saves more. 0: re-read freely.",
    )
    shared_rate_limit: bool = Field(
        default=True,
        description="Processes on this machine share each provider's rate-limit window "
        "(a file in the cache directory); false: each fill counts only its own requests.",
    )


class ProviderConfig(_Strict):
    rate_limit_per_min: float | None = Field(default=None, gt=0, description="Requests per minute.")
    rate_limit_window_s: float = Field(
        default=60, gt=0, description="Seconds the vendor counts rate_limit_per_min over."
    )
    base_url: str | None = Field(default=None, description="API root, e.g. an emulator's URL.")
    timeout_s: float = Field(default=30, gt=0, description="HTTP timeout per request.")
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings.")


class AlertsConfig(_Strict):
    webhook_url: str | None = Field(
        default=None, description="POST a JSON summary here after a check with findings."
    )


class LakeConfig(_Strict):
    default_provider: str = Field(default="demo", description="Provider when --provider is absent.")
    default_policy: str | None = Field(default=None, description="Retention policy name or path.")
    backfill: BackfillConfig = BackfillConfig()
    alerts: AlertsConfig = AlertsConfig()
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)

    def provider(self, name: str) -> ProviderConfig:
        return self.providers.get(name, ProviderConfig())


def load(root: Path, environ: Mapping[str, str] | None = None) -> LakeConfig:
    """The configuration of the lake at ``root``: file, then environment on top."""
    path = Path(root) / FILE_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            msg = f"{path}: not valid YAML ({str(exc).splitlines()[0]})"
            raise ConfigError(msg) from exc
        if not isinstance(loaded, dict):
            msg = f"{path}: expected a mapping of settings at the top level"
            raise ConfigError(msg)
        data = loaded
    data = _with_environment(data, os.environ if environ is None else environ)
    return parse(LakeConfig, data, path)


def _with_environment(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    data = {**data, "backfill": dict(data.get("backfill") or {})}
    if "LAKE_PROVIDER" in env:
        data["default_provider"] = env["LAKE_PROVIDER"]
    if "LAKE_PARALLEL_SYMBOLS" in env:
        data["backfill"]["parallel_symbols"] = env["LAKE_PARALLEL_SYMBOLS"]
    providers = {k: dict(v or {}) for k, v in (data.get("providers") or {}).items()}
    for key, value in env.items():
        if not key.startswith("LAKE_"):
            continue
        for suffix, field in (("_BASE_URL", "base_url"), ("_RATE_LIMIT", "rate_limit_per_min")):
            if key.endswith(suffix) and len(key) > len("LAKE_") + len(suffix):
                name = key[len("LAKE_") : -len(suffix)].lower()
                providers.setdefault(name, {})[field] = value
    if providers:
        data["providers"] = providers
    return data


def parse(model: type[M], data: Any, source: Path | str) -> M:
    """``data`` validated as ``model``; errors name ``source``, the key and a likely fix."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        # a misspelled key also makes the real one "missing": report the misspelling
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = err["loc"]
        # pydantic reports a bad mapping key (unknown interval, layer) at ``(..., key, "[key]")``
        bad_key = loc[-1:] == ("[key]",)
        if bad_key:
            loc = loc[:-1]
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden" or bad_key:
            choices = _choices(_annotation_at(model, loc[:-1]), key=bad_key)
            hint = _nearest(str(loc[-1]), choices)
            tail = f"; did you mean {hint!r}?" if hint else ""
            if bad_key and not hint and choices:
                tail = f"; use one of: {', '.join(choices)}"
            msg = f"{source}: unknown key {key!r}{tail}"
        elif err["type"] == "literal_error":
            hint = _nearest(str(err["input"]), _choices(_annotation_at(model, loc)))
            tail = f"; did you mean {hint!r}?" if hint else ""
            msg = f"{source}: {key}: {err['msg']}{tail}"
        elif err["type"] == "value_error":
            msg = f"{source}: {key}: {err['ctx']['error']}"
        else:
            msg = f"{source}: {key}: {err['msg']}"
        raise ConfigError(msg) from None


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The type expected at ``loc`` in ``model``, through nested models, dicts and lists."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            annotation = info.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) in (list, tuple, set, frozenset):
            annotation = get_args(annotation)[0]
        else:
            return None
    return _unwrap_optional(annotation)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, UnionType):
        arms = [a for a in get_args(annotation) if a is not type(None)]
        return arms[0] if len(arms) == 1 else annotation
    return annotation


def _choices(annotation: Any, *, key: bool = False) -> list[str]:
    """The valid spellings at a place: a model's fields, a dict's keys or a Literal's values."""
    if key:
        if get_origin(annotation) is not dict:
            return []
        annotation = get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    if get_origin(annotation) is Literal:
        return [str(a) for a in get_args(annotation)]
    return []


def _nearest(word: str, choices: list[str]) -> str | None:
    """The valid spelling closest to ``word``, else the longest one it contains (``layer_3``: 3)."""
    match = difflib.get_close_matches(word, choices, n=1)
    if match:
        return match[0]
    inside = [c for c in choices if c and c in word]
    return max(inside, key=len) if inside else None
