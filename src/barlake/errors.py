"""The errors barlake raises, one class per failure a user can act on.

Every error carries ``retryable`` (the scheduler retries only those). The library knows nothing
of processes: the ``lake`` command maps each class to an exit status in ``barlake.cli.exits``
(shown here in brackets)::

    LakeError               [1]    base; never raised itself
    ├── UsageError          [2]    bad argument, date, interval, symbol or input file
    │   ├── ConfigError     [2]    lake.yaml or a policy file is invalid
    │   ├── UnknownSymbolError [2] a symbol the catalog does not know
    │   └── NotFoundError   [2]    no job or queued request has the id given
    ├── ProviderError       [3]    a provider failed for a request
    │   ├── AuthError       [3]    credentials missing or refused: stops the job, never retried
    │   ├── RateLimitError  [3]    429 and friends: retried after ``retry_after`` seconds
    │   ├── TransientError  [3]    5xx, timeouts, broken responses: retried with backoff
    │   └── PermanentError  [3]    other 4xx: recorded once
    │       └── UnknownAtProviderError [3] the provider does not know the symbol: set aside
    ├── ValidationError     [1]    bars that are impossible or malformed: never stored
    ├── StorageError        [4]    a Parquet file or the lake layout cannot be read or written
    │   ├── FileSystemError [4]    the file system refuses all writes (full, read-only): stops jobs
    │   └── LockError       [4]    the catalog or a lake lock is held by another process
    └── Interrupted       [130]    SIGINT or SIGTERM stopped a job after saving its work
"""

from __future__ import annotations


class LakeError(Exception):
    """Base of every error barlake raises on purpose."""

    #: Whether the provider asks every request to slow down (a 429), not only this one: the
    #: scheduler then pauses the provider's rate limiter instead of backing this request off.
    throttles: bool = False
    #: Seconds the provider asked us to wait before trying again, when it said.
    retry_after: float | None = None
    retryable: bool = False


class UsageError(LakeError):
    """The user asked for something invalid; nothing was written."""


class ConfigError(UsageError):
    """A configuration or policy file is invalid."""


class UnknownSymbolError(UsageError):
    """A symbol is not in the catalog."""


class NotFoundError(UsageError):
    """No job or backfill request has the id (or id prefix) given."""


class ProviderError(LakeError):
    """A provider could not serve a request."""


class AuthError(ProviderError):
    """Credentials are missing or were refused."""


class RateLimitError(ProviderError):
    """The provider asked us to slow down."""

    retryable = True
    throttles = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure that may pass: server errors, timeouts, truncated responses."""

    retryable = True


class PermanentError(ProviderError):
    """A failure that retrying will not fix for this request.

    ``symbol`` names the one symbol at fault when the provider says so, so that the other
    symbols of a multi-symbol request can be fetched without it.
    """

    def __init__(self, message: str, symbol: str | None = None) -> None:
        super().__init__(message)
        self.symbol = symbol


class UnknownAtProviderError(PermanentError):
    """The provider does not know the symbol (a typo, another market's spelling, a delisting it
    dropped). Fills from that provider set the symbol aside until ``lake fill --retry-failed``
    or ``lake symbols add`` of it again."""


class ValidationError(LakeError):
    """Bars failed validation and were not stored."""


class StorageError(LakeError):
    """The lake's files could not be read or written."""


class FileSystemError(StorageError):
    """The file system holding the lake refuses every write (full, over quota, read-only)."""


class LockError(StorageError):
    """Another process holds a lock we need."""


class Interrupted(LakeError):
    """A job was stopped by a signal; what it fetched was saved."""
