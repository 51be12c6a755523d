"""Identical reads that arrive together are answered by one computation.

Dashboards and scripts poll the same few URLs (a job's status, a selection's gaps). Each read
of the catalog costs milliseconds of a process whose GIL the queue worker shares, so fifty
clients polling one job would make fifty equal reads. Here a read joins the computation of its
key that has not started yet, or starts one once the computation in flight ends: every answer is
computed after its request arrived (a read never returns a state older than itself), and a
key has at most one computation running and one waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from starlette.concurrency import run_in_threadpool


class Coalescer:
    """Runs ``compute`` for ``key`` in the thread pool, shared by every caller of the same key
    that arrives before it starts. Belongs to one event loop (the app's)."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, asyncio.Task[Any]] = {}
        self._running: dict[Hashable, asyncio.Task[Any]] = {}

    async def run(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The result of ``compute()`` (or its exception) as of a moment after this call."""
        task = self._waiting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._round(key, compute))
            task.add_done_callback(_retrieve)
            self._waiting[key] = task
        # A caller that goes away (a client that hangs up) leaves the others their answer.
        return await asyncio.shield(task)

    async def _round(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        running = self._running.get(key)
        if running is not None:  # began before some of our callers arrived: its answer is older
            await asyncio.wait([running])
        me = self._waiting.pop(key)
        self._running[key] = me
        try:
            return await run_in_threadpool(compute)
        finally:
            del self._running[key]


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every caller may have left; the exception has then been seen by nobody, which is fine.
    if not task.cancelled():
        task.exception()
