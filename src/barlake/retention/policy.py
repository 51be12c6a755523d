"""Retention policies: per scanner layer, how far back to fill and keep each interval and trades.

A policy is a YAML file (``policies/*.yaml``)::

    name: scanner_layers
    layers:
      0: {priority: low, intervals: {1day: 30}}
      3: {priority: critical, intervals: {1day: 120, 1min: {sessions: 40}}, trades: 5}

Units: ``days`` are calendar days ending today, today included, as in the CLI's ``--days N``
(``1day: 30`` and ``lake fill --days 30`` ask for the same range); a bare number means days.
``sessions`` counts the trading sessions of the symbol's calendar, ending with the last one on or
before today. ``keep_days``/``keep_sessions`` keep data longer than it is filled (default: same).

Layers are the integers 0-3 as in ``--layer N`` (``"2"`` is read as 2; ``layer_2`` is rejected
with a hint). A layer missing from a policy uses the highest defined layer below it.

Built-in policies are the repository's ``policies/*.yaml``. The package reaches them through the
symlink ``src/barlake/policies -> ../../policies``, which sdists and wheels store as real files
(``package-data`` in pyproject); a checkout that lost the symlink still finds the folder itself.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal, Self, get_args

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from barlake.calendars.calendar import Calendar
from barlake.config import parse, read_text
from barlake.domain.intervals import ALIASES, SPECS, Interval
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.errors import ConfigError, UsageError

Priority = Literal["low", "medium", "high", "critical"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
Layer = Literal[0, 1, 2, 3]
LAYERS: tuple[Layer, ...] = get_args(Layer)
#: What a retention applies to: bars of one interval, or trades (tick data).
IntervalOrTrades = Interval | Literal["trades"]
TRADES: Literal["trades"] = "trades"

_PACKAGE_DIR = Path(__file__).resolve().parents[1] / "policies"


#: The longest retention in calendar days (about 100 years): longer ones reach before the
#: first exchange data and overflow date arithmetic.
MAX_DAYS = 36_600


def priority_rank(priority: Priority) -> int:
    """Order of ``priority``: low 0 < medium 1 < high 2 < critical 3."""
    return PRIORITIES.index(priority)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Retention(_Strict):
    """How much of one series to fill, and to keep, counted back from today."""

    days: int | None = Field(default=None, ge=1, description="Calendar days ending today.")
    sessions: int | None = Field(default=None, ge=1, description="Trading sessions ending today.")
    keep_days: int | None = Field(default=None, ge=1, description="Keep longer than filled.")
    keep_sessions: int | None = Field(default=None, ge=1, description="Keep longer than filled.")

    @field_validator("days", "sessions", "keep_days", "keep_sessions")
    @classmethod
    def _not_absurd(cls, value: int | None) -> int | None:
        if value is not None and value > MAX_DAYS:
            msg = f"{value} is too long; a retention is at most {MAX_DAYS} days (100 years)"
            raise ValueError(msg)
        return value

    @model_validator(mode="before")
    @classmethod
    def _bare_number(cls, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int | dict):
            msg = "expected a number of calendar days or a mapping such as {sessions: 20}"
            raise ValueError(msg)
        return {"days": data} if isinstance(data, int) else data

    @model_validator(mode="after")
    def _one_unit(self) -> Self:
        if (self.days is None) == (self.sessions is None):
            msg = "give exactly one of days or sessions"
            raise ValueError(msg)
        if self.keep_days is not None and self.keep_sessions is not None:
            msg = "give at most one of keep_days or keep_sessions"
            raise ValueError(msg)
        for keep, fill, unit in (
            (self.keep_days, self.days, "days"),
            (self.keep_sessions, self.sessions, "sessions"),
        ):
            if keep is not None and fill is not None and keep < fill:
                msg = f"keep_{unit} ({keep}) is shorter than {unit} ({fill}); keep what you fill"
                raise ValueError(msg)
        return self

    def window(self, today: date, calendar: Calendar | None = None) -> DateRange:
        """The range to fill: half-open, ending with ``today`` included."""
        return _span(today, self.days, self.sessions, calendar)

    def keep_window(self, today: date, calendar: Calendar | None = None) -> DateRange:
        """The range to keep; it always contains :meth:`window`."""
        fill = self.window(today, calendar)
        if self.keep_days is None and self.keep_sessions is None:
            return fill
        keep = _span(today, self.keep_days, self.keep_sessions, calendar)
        return DateRange(min(keep.start, fill.start), fill.end)


def _span(today: date, days: int | None, sessions: int | None, cal: Calendar | None) -> DateRange:
    end = today + ONE_DAY
    if days is not None:
        return DateRange(today - (days - 1) * ONE_DAY, end)
    assert sessions is not None  # validation gives one of them
    if cal is None:
        msg = f"a retention of {sessions} sessions needs the symbol's calendar"
        raise UsageError(msg)
    past = int(np.searchsorted(cal.sessions, np.datetime64(today, "D"), side="right"))
    if past == 0:
        return DateRange(end, end)  # the calendar has no session yet: nothing to fill
    return DateRange(date.fromisoformat(str(cal.sessions[max(past - sessions, 0)])), end)


class LayerPolicy(_Strict):
    """The retention of one scanner layer."""

    priority: Priority = Field(default="medium", description="Plans fill higher priorities first.")
    intervals: dict[Interval, Retention] = Field(default_factory=dict, description="Bars.")
    trades: Retention | None = Field(default=None, description="Tick data, when wanted.")

    @field_validator("intervals", mode="before")
    @classmethod
    def _interval_names(cls, value: Any) -> Any:
        """``1d: 30`` is ``1day: 30`` (``domain.intervals.ALIASES``); both spellings of one
        interval are an error naming them."""
        if not isinstance(value, dict):
            return value
        out: dict[Any, Any] = {}
        spelled: dict[Any, Any] = {}
        for key, retention in value.items():
            name = ALIASES.get(key, key) if isinstance(key, str) else key
            if name in out:
                msg = f"{spelled[name]} and {key} are the same interval; keep one of them"
                raise ValueError(msg)
            out[name], spelled[name] = retention, key
        return out

    def retention(self, interval: IntervalOrTrades) -> Retention | None:
        """The retention of ``interval`` (or of ``"trades"``), or None."""
        if interval == TRADES:
            return self.trades
        return self.intervals.get(interval)


class Liquidity(_Strict):
    """The layer-1 filter: symbols trading enough dollars qualify."""

    lookback_sessions: int = Field(default=20, ge=1, description="Sessions looked at.")
    layer1_min_dollar_volume: float = Field(
        default=5_000_000, ge=0, description="Median of close*volume over the lookback."
    )


class Policy(_Strict):
    """A retention policy: a :class:`LayerPolicy` per layer, and the liquidity filter."""

    name: str = Field(min_length=1)
    description: str = ""
    liquidity: Liquidity = Liquidity()
    layers: dict[Layer, LayerPolicy] = Field(min_length=1)

    @field_validator("layers", mode="before")
    @classmethod
    def _numeric_keys(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in value.items()}

    def for_layer(self, layer: int) -> LayerPolicy | None:
        """The policy of ``layer``, else of the highest defined layer below it, else None."""
        for candidate in reversed(LAYERS):
            if candidate <= layer and candidate in self.layers:
                return self.layers[candidate]
        return None

    def retention(self, layer: int, interval: IntervalOrTrades) -> Retention | None:
        """The retention of ``interval`` for ``layer``, or None when the policy has none."""
        policy = self.for_layer(layer)
        return policy.retention(interval) if policy else None

    def window(
        self, layer: int, interval: IntervalOrTrades, today: date, calendar: Calendar | None = None
    ) -> DateRange | None:
        """The range to fill for ``layer`` and ``interval``, ending ``today`` inclusive."""
        retention = self.retention(layer, interval)
        return retention.window(today, calendar) if retention else None

    def keep_window(
        self, layer: int, interval: IntervalOrTrades, today: date, calendar: Calendar | None = None
    ) -> DateRange | None:
        """The range to keep for ``layer`` and ``interval``; contains :meth:`window`."""
        retention = self.retention(layer, interval)
        return retention.keep_window(today, calendar) if retention else None

    def intervals_for(self, layer: int) -> list[Interval]:
        """The bar intervals ``layer`` fills, longest first (trades not included)."""
        policy = self.for_layer(layer)
        if policy is None:
            return []
        return sorted(policy.intervals, key=lambda i: SPECS[i].length, reverse=True)


def builtin_policies() -> dict[str, Path]:
    """The policies shipped with barlake, by name."""
    folders = [_PACKAGE_DIR]
    src = Path(__file__).resolve().parents[2]
    if src.name == "src" and (src.parent / "pyproject.toml").is_file():  # a checkout, not a wheel
        folders.append(src.parent / "policies")
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path.resolve())
    return found


def load_policy(name_or_path: str, lake_root: Path | None = None) -> Policy:
    """The policy at a path, else ``NAME.yaml`` in the lake's ``policies/``, else a built-in one.

    >>> load_policy("scanner_layers").window(2, "1hour", date(2024, 7, 5))
    DateRange(start=datetime.date(2024, 6, 6), end=datetime.date(2024, 7, 6))
    """
    return read_policy(policy_path(name_or_path, lake_root))


def policy_path(name_or_path: str, lake_root: Path | None = None) -> Path:
    """The file ``load_policy`` reads for ``name_or_path``."""
    given = Path(name_or_path).expanduser()
    in_folder = len(given.parts) > 1
    if (in_folder or given.suffix in (".yaml", ".yml")) and given.is_file():
        return given
    if in_folder and given.is_dir():
        msg = f"policy {name_or_path} is a directory; give a policy's YAML file"
        raise ConfigError(msg)
    if in_folder:
        msg = f"policy file {name_or_path} does not exist"
        raise ConfigError(msg)
    name = given.stem if given.suffix in (".yaml", ".yml") else name_or_path
    found = builtin_policies()
    if lake_root is not None:  # the lake's own policies shadow the built-in ones
        found.update((p.stem, p) for p in sorted((Path(lake_root) / "policies").glob("*.yaml")))
    if name in found:
        return found[name]
    msg = f"unknown policy {name!r}; available: {', '.join(sorted(found)) or 'none'}, or a path"
    raise ConfigError(msg)


def read_policy(path: Path) -> Policy:
    """The policy in the YAML file ``path``; its name defaults to the file's stem."""
    try:
        data = yaml.safe_load(read_text(path, "policies"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        msg = f"{path}: not valid YAML ({where}{problem})"
        raise ConfigError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path}: expected a mapping with name, layers and optionally liquidity"
        raise ConfigError(msg)
    return parse(Policy, {"name": path.stem, **data}, path)


class Policies:
    """The policies a lake can name: a path, the lake's own ``policies/``, the built-in ones,
    with the lake's own when none is named (``retention.effective.lake_policy``: lake.yaml's
    retention sections, its ``default_policy``, or ``scanner_layers`` by
    ``backfill.use_scanner_layers``)."""

    def __init__(self, lake_root: Path | None, default: str | Policy | None) -> None:
        self.lake_root = lake_root
        self.default = default

    def chosen(self, policy: str | Policy | None) -> Policy | None:
        """``policy`` loaded, else the default one, else None."""
        chosen = policy if policy is not None else self.default
        if chosen is None or isinstance(chosen, Policy):
            return chosen
        return load_policy(chosen, self.lake_root)

    def required(self, policy: str | Policy | None) -> Policy:
        """``chosen``, where a policy must be had."""
        found = self.chosen(policy)
        if found is None:
            msg = (
                "no policy: pass --policy NAME (e.g. scanner_layers) or set default_policy "
                "(or data_retention, or backfill.use_scanner_layers: true) in lake.yaml"
            )
            raise UsageError(msg)
        return found
