"""``lake.yaml``: the lake's configuration, validated strictly.

Precedence, highest first: command-line flags, environment variables (``LAKE_PROVIDER``,
``LAKE_PARALLEL_SYMBOLS``, ``LAKE_<PROVIDER>_BASE_URL``, ``LAKE_<PROVIDER>_RATE_LIMIT``), the file,
the defaults below. Unknown keys are errors that name the file, the key and the nearest valid one.

The backfill roadmap's own spellings are accepted as written: ``backfill.orchestration`` (two
backfill settings under other names), ``backfill.use_scanner_layers``, and the retention sections
``data_retention.layer_based`` and ``data_management.scanner_layers``, which
:meth:`LakeConfig.layer_retention` turns into one retention per layer (see
``barlake.retention.effective``). Where two spellings say different things, the error names both.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import pydantic
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    model_validator,
)

from barlake.errors import ConfigError, UsageError

FILE_NAME = "lake.yaml"

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KeyedError(ValueError):
    """A validation error whose message names its keys in full: ``parse`` prints it as is."""


class Conflict(KeyedError):
    """Two settings that say different things; the message names both keys."""


#: The bar intervals and the priorities lake.yaml's retention sections can name. This module sits
#: below ``barlake.domain`` and ``barlake.retention``, so it repeats their spellings
#: (``domain.intervals.INTERVALS``, ``retention.policy.PRIORITIES``); a test keeps them equal.
IntervalName = Literal["1min", "5min", "15min", "30min", "1hour", "1day"]
#: Other spellings of the intervals (``domain.intervals.ALIASES``, repeated for the same reason).
INTERVAL_ALIASES: dict[str, IntervalName] = {
    name.replace("min", "m").replace("hour", "h").replace("day", "d"): name
    for name in get_args(IntervalName)
}


def _interval_name(value: Any) -> Any:
    return INTERVAL_ALIASES.get(value, value) if isinstance(value, str) else value


#: An interval as lake.yaml may spell it: a name or an alias, validated as the name.
IntervalField = Annotated[IntervalName, BeforeValidator(_interval_name)]
PriorityName = Literal["low", "medium", "high", "critical"]
#: Which interval's bars each one can be resampled from (``domain.resample.sources``).
RESAMPLE_SOURCES: dict[IntervalName, tuple[IntervalName, ...]] = {
    "1min": (),
    "5min": ("1min",),
    "15min": ("1min", "5min"),
    "30min": ("1min", "5min", "15min"),
    "1hour": ("1min", "5min", "15min", "30min"),
    "1day": (),
}
LAYER_PRIORITY: dict[int, PriorityName] = {0: "low", 1: "medium", 2: "high", 3: "critical"}


def _yaml_value(value: Any) -> str:
    """``value`` as lake.yaml spells it (``true``, ``null``), for messages."""
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


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
#: Seconds each request occupies a rate-limit window beyond the window itself (a clock
#: difference or a slow first answer must not earn a 429 at the window's edge); the limiter
#: uses it and the plan's time estimate counts it.
RATE_MARGIN_S = 1.0


class OrchestrationConfig(_Strict):
    """The roadmap's ``backfill.orchestration``: two backfill settings under other names."""

    use_symbol_tiers: bool | None = Field(
        default=None, strict=True, description="The same as backfill.use_symbol_tiers."
    )
    always_respect_user_days: bool | None = Field(
        default=None, strict=True, description="The same as backfill.respect_user_overrides."
    )


#: ``backfill.orchestration`` key -> the backfill setting it spells.
ORCHESTRATION_KEYS = {
    "use_symbol_tiers": "use_symbol_tiers",
    "always_respect_user_days": "respect_user_overrides",
}


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
    fetch_actions: bool = Field(
        default=True,
        description="A fill also fetches its symbols' splits and dividends where the provider "
        "serves them (planned, rate-limited and in the ledger like bars).",
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
    use_scanner_layers: bool | None = Field(
        default=None,
        strict=True,
        description="true: without dates, each symbol's window is its layer's retention (the "
        "lake's policy, else the built-in scanner_layers); false: every symbol gets "
        "default_days; unset: the lake's policy when it names one, else default_days.",
    )
    orchestration: OrchestrationConfig = Field(
        default=OrchestrationConfig(), description="The roadmap's spellings of two settings."
    )
    resample: dict[IntervalField, IntervalField] = Field(
        default_factory=dict,
        description="Interval -> finer interval its bars are built from when stored ones cover "
        "the session (e.g. {5min: 1min}): such sessions are resampled, not fetched.",
    )

    @model_validator(mode="after")
    def _resample(self) -> BackfillConfig:
        for coarse, fine in self.resample.items():
            if fine not in RESAMPLE_SOURCES[coarse]:
                allowed = " or ".join(RESAMPLE_SOURCES[coarse])
                hint = f"use {allowed}" if allowed else "daily bars are always fetched"
                msg = (
                    f"backfill.resample.{coarse}: {fine} bars cannot make {coarse} bars (the "
                    f"source must be a finer intraday interval that divides it); {hint}"
                )
                raise KeyedError(msg)
        return self

    def overridden(self, name: str, value: Any, option: str) -> BackfillConfig:
        """A copy with setting ``name`` at ``value``, checked as lake.yaml's would be (a bare
        ``model_copy`` would skip the check); UsageError naming ``option`` if it is invalid."""
        field = type(self).model_fields[name]
        checker: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(
            Annotated[(field.annotation, *field.metadata)]
        )
        try:
            checked = checker.validate_python(value)
        except pydantic.ValidationError as exc:
            msg = f"{option} {value}: {exc.errors()[0]['msg'].lower()}"
            raise UsageError(msg) from None
        return self.model_copy(update={name: checked})

    @model_validator(mode="wrap")
    @classmethod
    def _orchestration(cls, data: Any, handler: ModelWrapValidatorHandler[BackfillConfig]) -> Any:
        # The roadmap's spellings set the backfill settings they name, so that every reader of
        # ``use_symbol_tiers`` and ``respect_user_overrides`` sees them.
        model = handler(data)
        update: dict[str, bool] = {}
        for alias, name in ORCHESTRATION_KEYS.items():
            given = getattr(model.orchestration, alias)
            if given is None:
                continue
            if name in model.model_fields_set and getattr(model, name) != given:
                msg = (
                    f"backfill.orchestration.{alias} ({_yaml_value(given)}) and backfill.{name} "
                    f"({_yaml_value(getattr(model, name))}) disagree; keep one of them"
                )
                raise Conflict(msg)
            update[name] = given
        return model.model_copy(update=update) if update else model


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


class ApiConfig(_Strict):
    token_env: str = Field(
        default="LAKE_API_TOKEN",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The environment variable holding the bearer token `lake serve` requires "
        "for every change (the token itself never goes in lake.yaml).",
    )


#: An S3 URL: a bucket name as S3 allows it (3 to 63 characters), then an optional key prefix.
_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[^?#]*)?")


class StorageConfig(_Strict):
    url: str | None = Field(
        default=None,
        description="Where the bar files live: s3://BUCKET/PREFIX on S3-compatible object "
        "storage (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never here); "
        "none: the lake folder.",
    )
    endpoint_url: str | None = Field(
        default=None, description="An S3-compatible server instead of AWS (MinIO, Ceph, ...)."
    )
    region: str | None = Field(
        default=None, description="The bucket's region (default: AWS_REGION, else us-east-1)."
    )

    @model_validator(mode="after")
    def _no_credentials(self) -> StorageConfig:
        # The messages never repeat a value: a URL with credentials in it must not be printed.
        for name, value in (("url", self.url), ("endpoint_url", self.endpoint_url)):
            # Anywhere in it: a secret key may hold a "/", which would end the host early.
            if value is not None and "@" in value:
                msg = (
                    f"storage.{name} must not hold credentials; set AWS_ACCESS_KEY_ID and "
                    "AWS_SECRET_ACCESS_KEY in the environment instead"
                )
                raise KeyedError(msg)
        if self.url is not None and not _S3_URL.fullmatch(self.url):
            msg = "storage.url must be s3://BUCKET/PREFIX (a bucket name: a-z, 0-9, '.', '-')"
            raise KeyedError(msg)
        if self.endpoint_url is not None and not re.match(r"https?://[^/]", self.endpoint_url):
            msg = "storage.endpoint_url must be an http:// or https:// URL"
            raise KeyedError(msg)
        return self


class CatalogConfig(_Strict):
    url: str | None = Field(
        default=None,
        pattern=r"^postgres(ql)?://",
        description="A PostgreSQL database for the catalog and queue that a team's machines "
        "share (postgresql://user:password@host:port/db; or env LAKE_CATALOG_URL); unset: "
        "the DuckDB file catalog.duckdb in the lake's folder.",
    )


class WorkerConfig(_Strict):
    lease_s: float = Field(
        default=60,
        gt=0,
        description="Seconds a claimed request stays a worker's without a heartbeat; after "
        "that another worker takes it over (a worker on the same host is seen dead at once).",
    )
    poll_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between looks at an idle queue "
        "(on PostgreSQL the longest wait: a new request wakes idle workers at once).",
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Claims of one request before a retryable failure is final."
    )


ScheduleAction = Literal["update", "check", "prune"]


class ScheduleEntry(_Strict):
    """One entry of ``schedule:``: what the worker queues, and when."""

    action: ScheduleAction = Field(
        description="update: each new session for the active symbols, by policy; check: "
        "`lake check` (its gaps become work); prune: `lake prune`."
    )
    name: str | None = Field(default=None, description="Shown in the queue (default: action).")
    cron: str | None = Field(
        default=None,
        description="Five-field cron in the calendar's time zone; update without one runs "
        "after each session's close plus grace_minutes.",
    )
    calendar: str = Field(
        default="XNYS", description="Whose time zone the cron reads (update: whose sessions)."
    )
    grace_minutes: float = Field(
        default=30, ge=0, description="update: minutes after the close before it is queued."
    )
    interval: list[IntervalField] | None = Field(
        default=None, description="Intervals (default: the policy's)."
    )

    @model_validator(mode="after")
    def _cron(self) -> ScheduleEntry:
        from croniter import croniter

        if self.cron is None and self.action != "update":
            msg = f"schedule entry {self.label!r} ({self.action}) needs a cron, e.g. '0 2 * * *'"
            raise KeyedError(msg)
        if self.cron is not None and not croniter.is_valid(self.cron):
            msg = (
                f"schedule entry {self.label!r}: {self.cron!r} is not a cron expression "
                "(five fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * 1-5')"
            )
            raise KeyedError(msg)
        return self

    @property
    def label(self) -> str:
        return self.name or self.action


# -- the roadmap's retention sections ----------------------------------------------------------

#: The intraday intervals ``data_retention``'s ``intraday_bars`` covers at each layer when no
#: ``data_management`` layer lists them: the roadmap's own lists (its ``data_management`` example,
#: and ``policies/scanner_layers.yaml``). Layer 0 lists none there; given intraday days, it takes
#: layer 1's.
INTRADAY_INTERVALS: dict[int, tuple[IntervalName, ...]] = {
    0: ("1hour",),
    1: ("1hour",),
    2: ("1hour", "5min"),
    3: ("1hour", "5min", "1min"),
}


class BarDays(_Strict):
    """One layer of ``data_retention.layer_based``: calendar days per kind of data, 0 for none."""

    daily_bars: int | None = Field(
        default=None, ge=0, strict=True, description="Calendar days of 1day bars."
    )
    intraday_bars: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="Calendar days of the layer's intraday intervals (see INTRADAY_INTERVALS).",
    )
    tick_data: int | None = Field(
        default=None, ge=0, strict=True, description="Calendar days of trades (tick data)."
    )


def _given_layers(section: BaseModel) -> dict[int, Any]:
    """The ``layer_N`` fields of ``section`` that are set, by number."""
    found = {n: getattr(section, f"layer_{n}") for n in range(4)}
    layers = {n: layer for n, layer in found.items() if layer is not None}
    if not layers:
        msg = "give at least one of layer_0, layer_1, layer_2, layer_3"
        raise ValueError(msg)
    return layers


class LayerBased(_Strict):
    """``data_retention.layer_based``: ``layer_0`` .. ``layer_3``."""

    layer_0: BarDays | None = None
    layer_1: BarDays | None = None
    layer_2: BarDays | None = None
    layer_3: BarDays | None = None

    @model_validator(mode="after")
    def _some_layer(self) -> LayerBased:
        _given_layers(self)
        return self

    def layers(self) -> dict[int, BarDays]:
        """The layers given, by number."""
        return _given_layers(self)


class DataRetention(_Strict):
    """The roadmap's ``data_retention`` section."""

    layer_based: LayerBased


class ScannerLayer(_Strict):
    """One layer of ``data_management.scanner_layers``."""

    retention_days: int = Field(
        ge=1, strict=True, description="Calendar days of every interval listed (at most)."
    )
    intervals: tuple[IntervalField, ...] = Field(min_length=1, description="Bar intervals kept.")
    priority: PriorityName | None = Field(default=None, description="Plans fill higher first.")


class ScannerLayers(_Strict):
    """``data_management.scanner_layers``: ``layer_0`` .. ``layer_3``."""

    layer_0: ScannerLayer | None = None
    layer_1: ScannerLayer | None = None
    layer_2: ScannerLayer | None = None
    layer_3: ScannerLayer | None = None

    @model_validator(mode="after")
    def _some_layer(self) -> ScannerLayers:
        _given_layers(self)
        return self

    def layers(self) -> dict[int, ScannerLayer]:
        """The layers given, by number."""
        return _given_layers(self)


RETENTION_POLICY: Literal["scanner_layer_based"] = "scanner_layer_based"


class DataManagement(_Strict):
    """The roadmap's ``data_management`` section."""

    retention_policy: Literal["scanner_layer_based"] = RETENTION_POLICY
    scanner_layers: ScannerLayers

    @model_validator(mode="before")
    @classmethod
    def _known_policy(cls, data: Any) -> Any:
        given = data.get("retention_policy", RETENTION_POLICY) if isinstance(data, dict) else None
        if isinstance(data, dict) and given != RETENTION_POLICY:
            msg = (
                f"data_management.retention_policy: unknown value {given!r}; did you mean "
                f"{RETENTION_POLICY!r}? (other retention: default_policy: NAME, e.g. "
                "scanner_layers or default, or backfill.use_scanner_layers: false for "
                "backfill.default_days everywhere)"
            )
            raise KeyedError(msg)
        return data


@dataclass(frozen=True)
class Sourced:
    """A number of calendar days and the lake.yaml key(s) it comes from."""

    days: int
    source: str


@dataclass(frozen=True)
class LayerRetention:
    """One layer's retention as lake.yaml's roadmap sections give it, each value with its keys."""

    priority: PriorityName
    #: None: the layer's default priority (``LAYER_PRIORITY``, as in policies/scanner_layers.yaml)
    priority_source: str | None
    intervals: dict[IntervalName, Sourced]
    trades: Sourced | None


class FollowEntry(_Strict):
    symbols: list[str] = Field(description="Symbols whose minute bars `lake follow` keeps live.")
    provider: str | None = Field(
        default=None, description="Provider to follow them from (default: default_provider)."
    )


class LakeConfig(_Strict):
    default_provider: str = Field(default="demo", description="Provider when --provider is absent.")
    default_policy: str | None = Field(default=None, description="Retention policy name or path.")
    backfill: BackfillConfig = BackfillConfig()
    alerts: AlertsConfig = AlertsConfig()
    api: ApiConfig = ApiConfig()
    storage: StorageConfig = StorageConfig()
    worker: WorkerConfig = WorkerConfig()
    catalog: CatalogConfig = CatalogConfig()
    schedule: list[ScheduleEntry] = Field(
        default_factory=list, description="Upkeep the worker queues: updates, checks, prunes."
    )
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    follow: list[FollowEntry] = Field(
        default_factory=list,
        description="Selections `lake follow` (without symbols) keeps live; those of one "
        "provider share one stream connection.",
    )
    data_retention: DataRetention | None = Field(
        default=None, description="The roadmap's retention in days per layer and kind of data."
    )
    data_management: DataManagement | None = Field(
        default=None, description="The roadmap's retention in intervals and days per layer."
    )

    def provider(self, name: str) -> ProviderConfig:
        return self.providers.get(name, ProviderConfig())

    @property
    def retention_sections(self) -> list[str]:
        """The roadmap's retention sections this configuration has: data_retention first."""
        given = (("data_retention", self.data_retention), ("data_management", self.data_management))
        return [name for name, section in given if section is not None]

    @model_validator(mode="after")
    def _one_policy(self) -> LakeConfig:
        sections = " and ".join(self.retention_sections)
        if sections and self.default_policy is not None:
            msg = (
                f"default_policy ({self.default_policy}) and {sections} both set the lake's "
                "retention policy; keep one of them"
            )
            raise Conflict(msg)
        chosen = sections or ("default_policy" if self.default_policy is not None else "")
        if chosen and self.backfill.use_scanner_layers is False:
            msg = (
                f"backfill.use_scanner_layers (false: every symbol gets backfill.default_days) "
                f"and {chosen} (a retention per layer) disagree; drop one of them"
            )
            raise Conflict(msg)
        self.layer_retention()  # the two sections must agree
        return self

    def layer_retention(self) -> dict[int, LayerRetention] | None:
        """The retention of each layer the roadmap's sections give (both merged where both
        are), or None without them. Where they disagree, a :class:`Conflict` names both keys."""
        if not self.retention_sections:
            return None
        days = self.data_retention.layer_based.layers() if self.data_retention else {}
        managed = self.data_management.scanner_layers.layers() if self.data_management else {}
        return {
            n: _layer_retention(n, days.get(n), managed.get(n)) for n in sorted({*days, *managed})
        }


def _layer_retention(n: int, days: BarDays | None, managed: ScannerLayer | None) -> LayerRetention:
    """Layer ``n`` from ``data_retention`` (``days``) and ``data_management`` (``managed``).

    ``retention_days`` is the layer's horizon: alone, every listed interval keeps that long;
    with ``data_retention``, ``daily_bars`` must equal it (when 1day is listed), and
    ``intraday_bars`` (at most as long) gives the days of the listed intraday intervals.
    """
    dr, dm = f"data_retention.layer_based.layer_{n}", f"data_management.scanner_layers.layer_{n}"
    priority, priority_source = LAYER_PRIORITY[n], None
    if managed is not None and managed.priority is not None:
        priority, priority_source = managed.priority, f"{dm}.priority"
    listed = list(dict.fromkeys(managed.intervals)) if managed else []
    intervals: dict[IntervalName, Sourced] = {}
    if managed is not None:
        intervals = {i: Sourced(managed.retention_days, f"{dm}.retention_days") for i in listed}
    trades = None
    if days is not None:
        intervals |= _daily(n, days, managed, listed) | _intraday(n, days, managed, listed)
        trades = Sourced(days.tick_data, f"{dr}.tick_data") if days.tick_data else None
    return LayerRetention(priority, priority_source, intervals, trades)


def _daily(
    n: int, days: BarDays, managed: ScannerLayer | None, listed: list[IntervalName]
) -> dict[IntervalName, Sourced]:
    dr, dm = f"data_retention.layer_based.layer_{n}", f"data_management.scanner_layers.layer_{n}"
    if days.daily_bars is None:
        return {}
    if managed is None:
        return {"1day": Sourced(days.daily_bars, f"{dr}.daily_bars")} if days.daily_bars else {}
    if days.daily_bars != (managed.retention_days if "1day" in listed else 0):
        theirs = (
            f"retention_days ({managed.retention_days})"
            if "1day" in listed
            else f"intervals ({', '.join(listed)}: no 1day)"
        )
        msg = (
            f"{dr}.daily_bars ({days.daily_bars}) and {dm}.{theirs} disagree on layer {n}'s "
            "daily bars; make them say the same or drop one of them"
        )
        raise Conflict(msg)
    if not days.daily_bars:
        return {}
    return {"1day": Sourced(days.daily_bars, f"{dr}.daily_bars = {dm}.retention_days")}


def _intraday(
    n: int, days: BarDays, managed: ScannerLayer | None, listed: list[IntervalName]
) -> dict[IntervalName, Sourced]:
    dr, dm = f"data_retention.layer_based.layer_{n}", f"data_management.scanner_layers.layer_{n}"
    wanted = days.intraday_bars
    if wanted is None:
        return {}
    if managed is None:
        where = f"{dr}.intraday_bars (intervals: barlake's default for layer {n})"
        return {i: Sourced(wanted, where) for i in INTRADAY_INTERVALS[n]} if wanted else {}
    covered = [i for i in listed if i != "1day"]
    if bool(covered) != bool(wanted):
        theirs = ", ".join(listed) + ("" if covered else ": no intraday")
        msg = (
            f"{dr}.intraday_bars ({wanted}) and {dm}.intervals ({theirs}) disagree on layer "
            f"{n}'s intraday bars; make them say the same or drop one of them"
        )
        raise Conflict(msg)
    if wanted > managed.retention_days:
        msg = (
            f"{dr}.intraday_bars ({wanted}) and {dm}.retention_days ({managed.retention_days}) "
            "disagree: a layer's intraday bars cannot outlast its retention; shorten "
            "intraday_bars or lengthen retention_days"
        )
        raise Conflict(msg)
    where = f"{dr}.intraday_bars (intervals: {dm}.intervals)"
    return {i: Sourced(wanted, where) for i in covered}


@dataclass(frozen=True)
class Loaded:
    """A lake's configuration, its file, and where each setting it was given came from."""

    config: LakeConfig
    path: Path
    #: Dotted key -> ``lake.yaml``, ``lake.yaml backfill.orchestration.KEY`` or ``env NAME``;
    #: keys absent here have their default.
    sources: dict[str, str] = field(default_factory=dict)

    def source(self, key: str) -> str:
        """Where the setting at the dotted ``key`` came from."""
        return self.sources.get(key, "default")

    def with_flags(self, *, provider: str | None = None, parallel: int | None = None) -> Loaded:
        """This configuration as a command sees it with ``--provider`` and ``--parallel``
        (checked as lake.yaml's values are), those settings' source the flag."""
        config, sources = self.config, dict(self.sources)
        if provider is not None:
            config = config.model_copy(update={"default_provider": provider})
            sources["default_provider"] = "flag --provider"
        if parallel is not None:
            backfill = config.backfill.overridden("parallel_symbols", parallel, "--parallel")
            config = config.model_copy(update={"backfill": backfill})
            sources["backfill.parallel_symbols"] = "flag --parallel"
        return Loaded(config, self.path, sources)

    def settings(self) -> Iterator[tuple[str, Any, str]]:
        """Each setting as (dotted key, value, source), secrets masked; the retention sections
        are left to ``barlake.retention.effective`` and the orchestration keys are shown as
        the settings they set."""
        config = self.config
        providers = {config.default_provider: config.provider(config.default_provider)}
        providers |= config.providers
        top = config.model_dump(exclude={"data_retention", "data_management", "providers"})
        del top["backfill"]["orchestration"]
        top["providers"] = {name: p.model_dump() for name, p in sorted(providers.items())}
        for key, value in _flat(top):
            yield key, mask(key, value), self.source(key)


#: Names of settings whose values are secrets (``providers.NAME.options`` above all).
SECRET = re.compile(r"key|secret|token|passw|credential|auth|signature", re.IGNORECASE)


def mask(key: str, value: Any) -> Any:
    """``value`` fit to print: a secret's is ``***``, a URL's credentials and secret query
    values are ``***``, a webhook keeps only its host (its path is its secret)."""
    if value in (None, "") or isinstance(value, bool):
        return value
    name = key.rsplit(".", 1)[-1]
    # ``api.token_env`` names the variable that holds the token: a name, not a secret.
    if any(SECRET.search(part) for part in key.split(".")) and not name.endswith("_env"):
        return "***"
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    host, slash, path = rest.partition("/")
    host = re.sub(r"^[^@]*@", "***@", host)
    if name == "webhook_url":
        return f"{scheme}://{host}/***" if slash and path else f"{scheme}://{host}{slash}"
    path = re.sub(
        r"([?&][^=&]*(?:key|secret|token|passw|signature|auth)[^=&]*=)[^&]*",
        r"\1***",
        path,
        flags=re.IGNORECASE,
    )
    return f"{scheme}://{host}{slash}{path}"


def _flat(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of each leaf of ``data``; an empty mapping is a leaf."""
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


#: The environment variable that puts a lake's catalog on a PostgreSQL server.
CATALOG_URL_ENV = "LAKE_CATALOG_URL"


def load(root: Path, environ: Mapping[str, str] | None = None) -> LakeConfig:
    """The configuration of the lake at ``root``: file, then environment on top."""
    return read(root, environ).config


def read(root: Path, environ: Mapping[str, str] | None = None) -> Loaded:
    """``load``, with the source of each setting (``lake config show``)."""
    path = Path(root) / FILE_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = yaml.load(read_text(path, "lake settings"), Loader=_UniqueKeys) or {}
        except _DuplicateKey as exc:
            msg = (
                f"{path}: key {exc.key!r} appears twice (lines {exc.first} and {exc.second}); "
                "merge the two into one mapping (YAML would keep only the second)"
            )
            raise ConfigError(msg) from None
        except yaml.YAMLError as exc:
            msg = f"{path}: not valid YAML ({str(exc).splitlines()[0]})"
            raise ConfigError(msg) from exc
        if not isinstance(loaded, dict):
            msg = f"{path}: expected a mapping of settings at the top level"
            raise ConfigError(msg)
        data = loaded
    sources = dict.fromkeys((key for key, _ in _flat(data)), FILE_NAME)
    orchestration = (data.get("backfill") or {}).get("orchestration")
    for alias, name in ORCHESTRATION_KEYS.items():
        if isinstance(orchestration, dict) and alias in orchestration:
            sources[f"backfill.{name}"] = f"{FILE_NAME} backfill.orchestration.{alias}"
    data, from_env = _with_environment(data, os.environ if environ is None else environ)
    sources |= {key: f"env {name}" for key, name in from_env.items()}
    return Loaded(parse(LakeConfig, data, path), path, sources)


def read_text(path: Path, what: str) -> str:
    """The text of the YAML file ``path``; ConfigError naming it when it is a folder, cannot be
    read, or is not UTF-8 text (a binary file saved under the name)."""
    try:
        return path.read_text(encoding="utf-8")
    except IsADirectoryError:
        msg = f"{path} is a directory; {what} are a YAML file"
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a text file (byte {exc.start} is not UTF-8); {what} are YAML text"
    except OSError as exc:
        msg = f"{path}: cannot read {what} ({exc.strerror or exc})"
    raise ConfigError(msg)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, first: int, second: int) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key, self.first, self.second = key, first, second


class _UniqueKeys(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping: YAML forbids it, and PyYAML
    would keep the second silently (two pasted ``backfill:`` sections lose the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # noqa: FBT001, FBT002
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` merges keys that the mapping may then override
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                first = seen.setdefault(key, line)
            except TypeError:  # an unhashable key: the safe loader's own error follows
                continue
            if first != line:
                raise _DuplicateKey(key, first, line)
        return super().construct_mapping(node, deep=deep)


def _with_environment(
    data: dict[str, Any], env: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """``data`` with the environment's settings on top, and which key each variable set."""
    used: dict[str, str] = {}
    data = {**data, "backfill": dict(data.get("backfill") or {})}
    if "LAKE_PROVIDER" in env:
        data["default_provider"] = env["LAKE_PROVIDER"]
        used["default_provider"] = "LAKE_PROVIDER"
    if "LAKE_PARALLEL_SYMBOLS" in env:
        data["backfill"]["parallel_symbols"] = env["LAKE_PARALLEL_SYMBOLS"]
        used["backfill.parallel_symbols"] = "LAKE_PARALLEL_SYMBOLS"
    if env.get(CATALOG_URL_ENV):
        data["catalog"] = {**(data.get("catalog") or {}), "url": env[CATALOG_URL_ENV]}
        used["catalog.url"] = CATALOG_URL_ENV
    providers = {k: dict(v or {}) for k, v in (data.get("providers") or {}).items()}
    for key, value in env.items():
        if not key.startswith("LAKE_"):
            continue
        for suffix, name in (("_BASE_URL", "base_url"), ("_RATE_LIMIT", "rate_limit_per_min")):
            if key.endswith(suffix) and len(key) > len("LAKE_") + len(suffix):
                provider = key[len("LAKE_") : -len(suffix)].lower()
                providers.setdefault(provider, {})[name] = value
                used[f"providers.{provider}.{name}"] = key
    if providers:
        data["providers"] = providers
    return data, used


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
        elif err["type"] == "value_error" and isinstance(err["ctx"]["error"], KeyedError):
            msg = f"{source}: {err['ctx']['error']}"  # it names its keys in full
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
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
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


def add_section(root: Path, name: str, values: Mapping[str, Any]) -> None:
    """Append the top-level section ``name`` to the lake's lake.yaml (see ``add_sections``)."""
    add_sections(root, {name: values})


def add_sections(root: Path, sections: Mapping[str, Mapping[str, Any]]) -> None:
    """Append top-level ``sections`` to the lake's lake.yaml (made if absent), keeping the
    file's text and comments; ConfigError when the file has one of them already. The file is
    replaced atomically, all sections at once: a reader sees it before or after, never
    half-written."""
    path = Path(root) / FILE_NAME
    text = read_text(path, "lake settings") if path.exists() else ""
    data = yaml.safe_load(text) if text.strip() else {}
    for name in sections:
        if isinstance(data, dict) and name in data:
            msg = f"{path} has a {name} section already; edit it there instead"
            raise ConfigError(msg)
    added = yaml.safe_dump(
        {name: dict(values) for name, values in sections.items()},
        default_flow_style=False,
        sort_keys=False,
    )
    tmp = path.with_name(f".{FILE_NAME}.tmp-{os.getpid()}")
    tmp.write_text(text + ("\n" if text and not text.endswith("\n") else "") + added)
    os.replace(tmp, path)
