"""The interface a provider's real-time bar stream implements (``LiveSource``), and the batch
of bars that crosses it.

A live source connects, authenticates and subscribes in ``open``, then hands over what the
vendor pushes, one frame at a time, as bars in the lake's schema. It knows nothing of the lake:
reconnecting, backfilling what a lost connection missed and writing belong to the follower
(``barlake.jobs.follow``). Failures map onto ``barlake.errors``: a lost or silent connection is
a ``TransientError`` (reconnect), refused credentials an ``AuthError``, a connection limit or a
missing entitlement a ``PermanentError`` (both stop the follower).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import polars as pl


@dataclass(frozen=True)
class Batch:
    """One frame of the stream: minute bars (lake schema, ``source`` the provider) and how many
    of them correct a minute sent before (``updatedBars``); a later bar of a minute replaces
    an earlier one."""

    bars: pl.DataFrame
    corrections: int = 0


class LiveSource(Protocol):
    """A provider's stream of minute bars. Implementations live in
    ``barlake.providers.<name>_stream``."""

    name: str

    async def open(self, symbols: Sequence[str]) -> None:
        """Connect, authenticate and subscribe to the minute bars (and their corrections) of
        ``symbols``; return once the vendor has acknowledged the subscription."""
        ...

    async def receive(self) -> Batch:
        """The next frame of bars; TransientError when the connection is lost."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...
