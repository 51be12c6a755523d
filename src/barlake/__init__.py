"""barlake: a local market-data lake.

Bars live as hive-partitioned Parquet files any tool can read; DuckDB finds what is missing; the
``Lake`` object plans and fills only that, tracking every job in a catalog.

The names below load on first use (PEP 562): ``import barlake.cli`` imports this package first,
and ``lake --help`` must not pay for polars, DuckDB and the calendars it never touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from barlake.coverage.gaps import Gap
    from barlake.domain.intervals import INTERVALS, Interval
    from barlake.domain.ranges import DateRange
    from barlake.errors import (
        AuthError,
        ConfigError,
        LakeError,
        LockError,
        PermanentError,
        ProviderError,
        RateLimitError,
        StorageError,
        TransientError,
        UnknownSymbolError,
        UsageError,
        ValidationError,
    )
    from barlake.fetch.progress import Progress
    from barlake.lake import Lake
    from barlake.views.coverage import Coverage
    from barlake.views.info import Info, Series

#: Where each public name lives.
_HOMES: dict[str, str] = {
    "Gap": "barlake.coverage.gaps",
    "Coverage": "barlake.views.coverage",
    "Info": "barlake.views.info",
    "Series": "barlake.views.info",
    "INTERVALS": "barlake.domain.intervals",
    "Interval": "barlake.domain.intervals",
    "DateRange": "barlake.domain.ranges",
    **dict.fromkeys(
        (
            "AuthError",
            "ConfigError",
            "LakeError",
            "LockError",
            "PermanentError",
            "ProviderError",
            "RateLimitError",
            "StorageError",
            "TransientError",
            "UnknownSymbolError",
            "UsageError",
            "ValidationError",
        ),
        "barlake.errors",
    ),
    "Lake": "barlake.lake",
    "Progress": "barlake.fetch.progress",
}

__all__ = [
    "INTERVALS",
    "AuthError",
    "ConfigError",
    "Coverage",
    "DateRange",
    "Gap",
    "Info",
    "Interval",
    "Lake",
    "LakeError",
    "LockError",
    "PermanentError",
    "Progress",
    "ProviderError",
    "RateLimitError",
    "Series",
    "StorageError",
    "TransientError",
    "UnknownSymbolError",
    "UsageError",
    "ValidationError",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access, then keep the name here."""
    try:
        home = _HOMES[name]
    except KeyError:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg) from None
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The public names too, loaded or not (for completion in notebooks)."""
    return sorted({*globals(), *__all__})
