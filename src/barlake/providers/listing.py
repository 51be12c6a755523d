"""What each provider is (``lake providers``): what it serves, its rate limit and where that
comes from, and whether its credentials are set. Never the credentials themselves: only the
names of the variables or the lake.yaml key they come from."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from barlake.clock import Clock
from barlake.config import Loaded, read
from barlake.errors import AuthError
from barlake.providers import PROVIDERS, open_provider
from barlake.providers.base import Provider
from barlake.providers.http import credentials

#: ``credentials`` of a provider that needs none.
NOT_NEEDED = "not needed"
SET = "set"
MISSING = "missing"


@dataclass(frozen=True)
class ProviderInfo:
    """One provider as ``lake providers`` shows it."""

    name: str
    default: bool
    intervals: tuple[str, ...]
    symbols_per_request: int
    bars_per_page: int
    grouped_daily: bool
    #: Longest range one request may span, in calendar days, per interval (absent: no limit).
    max_days: dict[str, int]
    rate_limit_per_min: float
    rate_limit_window_s: float
    #: Where the rate limit comes from: ``default`` (the vendor's documented limit), lake.yaml
    #: or an environment variable.
    rate_limit_source: str
    #: ``not needed``, ``set`` or ``missing``.
    credentials: str
    #: Where they come from when set (variable names or a lake.yaml key); what to set when
    #: missing; empty when none are needed.
    credentials_from: str
    credentials_env: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "intervals": list(self.intervals),
            "symbols_per_request": self.symbols_per_request,
            "bars_per_page": self.bars_per_page,
            "grouped_daily": self.grouped_daily,
            "max_days": self.max_days,
            "rate_limit_per_min": self.rate_limit_per_min,
            "rate_limit_window_s": self.rate_limit_window_s,
            "rate_limit_source": self.rate_limit_source,
            "credentials": self.credentials,
            "credentials_from": self.credentials_from,
            "credentials_env": list(self.credentials_env),
        }


def of_lake(
    root: Path,
    *,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, Provider] | None = None,
    clock: Clock | None = None,
) -> list[ProviderInfo]:
    """Every provider (``PROVIDERS``, then those in ``given``) as the lake at ``root`` would
    use it: with lake.yaml's settings, the ``given`` ready providers instead of new ones, and
    the credentials of ``environ`` (default: the process's). No lake is needed beyond its
    folder's lake.yaml, which may be absent."""
    env = os.environ if environ is None else environ
    loaded = read(root, env)
    ready = dict(given or {})

    def build(name: str) -> Provider:
        if name in ready:
            return ready[name]
        return open_provider(name, loaded.config.provider(name), clock=clock)

    names = (*PROVIDERS, *(n for n in ready if n not in PROVIDERS))
    return describe(loaded, build, env, names)


def describe(
    loaded: Loaded,
    build: Callable[[str], Provider],
    environ: Mapping[str, str],
    names: tuple[str, ...] = PROVIDERS,
) -> list[ProviderInfo]:
    """Each of ``names`` as ``build`` makes it (building a provider opens no connection: its
    HTTP client connects on its first request), its credentials looked for in ``environ``."""
    config = loaded.config
    out = []
    for name in names:
        caps = build(name).capabilities
        settings = config.provider(name)
        state, where = _credentials(
            name, caps.auth_env, caps.auth_secret_env, settings.options, environ
        )
        out.append(
            ProviderInfo(
                name=name,
                default=name == config.default_provider,
                intervals=tuple(caps.intervals),
                symbols_per_request=caps.symbols_per_request,
                bars_per_page=caps.bars_per_page,
                grouped_daily=caps.grouped_daily,
                max_days={str(i): n for i, n in caps.max_days.items()},
                rate_limit_per_min=settings.rate_limit_per_min or caps.rate_limit_per_min,
                rate_limit_window_s=settings.rate_limit_window_s,
                rate_limit_source=loaded.source(f"providers.{name}.rate_limit_per_min"),
                credentials=state,
                credentials_from=where,
                credentials_env=caps.auth_env + caps.auth_secret_env,
            )
        )
    return out


def _credentials(
    name: str,
    key_env: tuple[str, ...],
    secret_env: tuple[str, ...],
    options: Mapping[str, Any],
    environ: Mapping[str, str],
) -> tuple[str, str]:
    """Whether ``name``'s credentials are set, and where from (or what to set), as the
    provider itself looks for them (``http.credentials``)."""
    if not key_env:
        return NOT_NEEDED, ""
    try:
        credentials(name, options, key_env, secret_env, environ)
    except AuthError:
        wanted = " or ".join(key_env) + (f" and {' or '.join(secret_env)}" if secret_env else "")
        return MISSING, f"set {wanted}"
    found = [
        next((f"env {n}" for n in group if environ.get(n)), f"lake.yaml providers.{name}.options")
        for group in (key_env, secret_env)
        if group
    ]
    return SET, ", ".join(dict.fromkeys(found))
