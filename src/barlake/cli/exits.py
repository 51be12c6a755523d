"""The exit-code table: what the ``lake`` process returns, and which error gives which code.

The codes, as README.md lists them (scripts rely on them; ``EXIT_CODES`` maps errors to them)::

    0    done
    1    finished, but failures or gaps remain
    2    bad usage, config or policy
    3    provider or authentication failure
    4    storage or lock failure
    130  interrupted
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from barlake.cli.state import State
from barlake.errors import (
    AuthError,
    ConfigError,
    FileSystemError,
    Interrupted,
    LakeError,
    LockError,
    NotFoundError,
    PermanentError,
    ProviderError,
    RateLimitError,
    StorageError,
    TransientError,
    UnknownAtProviderError,
    UnknownSymbolError,
    UsageError,
    ValidationError,
)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_PROVIDER = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130

#: Each error class and its code, most specific first: an error takes the first row it is an
#: instance of. Every class in ``barlake.errors`` has its own row (a test checks), so a new
#: class has to be placed here on purpose.
EXIT_CODES: tuple[tuple[type[LakeError], int], ...] = (
    (ConfigError, EXIT_USAGE),
    (UnknownSymbolError, EXIT_USAGE),
    (NotFoundError, EXIT_USAGE),
    (UsageError, EXIT_USAGE),
    (AuthError, EXIT_PROVIDER),
    (RateLimitError, EXIT_PROVIDER),
    (TransientError, EXIT_PROVIDER),
    (UnknownAtProviderError, EXIT_PROVIDER),
    (PermanentError, EXIT_PROVIDER),
    (ProviderError, EXIT_PROVIDER),
    (ValidationError, EXIT_INCOMPLETE),
    (FileSystemError, EXIT_STORAGE),
    (LockError, EXIT_STORAGE),
    (StorageError, EXIT_STORAGE),
    (Interrupted, EXIT_INTERRUPTED),
    (LakeError, EXIT_INCOMPLETE),
)

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(error: LakeError) -> int:
    """The process status for ``error``: its first row in ``EXIT_CODES``."""
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """One ``error:`` line on stderr, then exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(func: F) -> F:
    """Turn ``LakeError`` into one line on stderr and its exit code (traceback with --verbose)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LakeError as exc:
            state = click.get_current_context().find_object(State)
            if state is not None and state.verbose:
                click.echo(traceback.format_exc().rstrip("\n"), err=True)
            fail(str(exc), exit_code(exc))
        except KeyboardInterrupt:
            fail("interrupted", EXIT_INTERRUPTED)

    return wrapper  # type: ignore[return-value]
