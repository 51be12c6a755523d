"""barlake: a local market-data lake.

Bars live as hive-partitioned Parquet files any tool can read; DuckDB finds what is missing; the
``Lake`` object plans and fills only that, tracking every job in a catalog.
"""

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
from barlake.lake import Lake
from barlake.views.coverage import Coverage

__all__ = [
    "INTERVALS",
    "AuthError",
    "ConfigError",
    "Coverage",
    "DateRange",
    "Gap",
    "Interval",
    "Lake",
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
]
__version__ = "0.1.0"
