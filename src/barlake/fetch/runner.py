"""Running a job's scheduler to its end, with SIGINT and SIGTERM stopping it cleanly; running
any coroutine from synchronous code (``run_blocking``)."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from barlake.fetch.job import JobResult
from barlake.fetch.scheduler import Scheduler
from barlake.providers.base import Provider

T = TypeVar("T")


class Stop:
    """Stops a running job from any thread, as SIGTERM would: a worker shutting down, or a
    request cancelled while it runs. Asked before the job starts, it stops it at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: tuple[asyncio.AbstractEventLoop, Scheduler] | None = None
        self.asked = False

    def bind(self, loop: asyncio.AbstractEventLoop, scheduler: Scheduler) -> None:
        with self._lock:
            self._target = (loop, scheduler)
            if self.asked:
                loop.call_soon_threadsafe(scheduler.interrupt)

    def unbind(self) -> None:
        with self._lock:
            self._target = None

    def __call__(self) -> None:
        with self._lock:
            self.asked = True
            if self._target is not None:
                loop, scheduler = self._target
                loop.call_soon_threadsafe(scheduler.interrupt)


def run_until_signalled(
    scheduler: Scheduler,
    provider: Provider,
    *,
    close_provider: bool = True,
    stop: Stop | None = None,
) -> JobResult:
    """Run the scheduler; SIGINT and SIGTERM cancel it cleanly (fetched bars are saved).
    ``close_provider``: close the provider after the job (not for one its owner passed in).
    ``stop``: the job stops when it is called, and the process's signal handlers are left
    alone (its owner, a worker, handles signals itself)."""

    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> JobResult:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        installed = []
        if stop is not None:
            stop.bind(loop, scheduler)
        for sig in (signal.SIGINT, signal.SIGTERM) if stop is None else ():
            try:
                loop.add_signal_handler(sig, scheduler.interrupt)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                # No signal handlers outside the main thread (e.g. a notebook's worker thread)
                # or on platforms without them: the job then stops on KeyboardInterrupt only.
                pass
        try:
            return await scheduler.run()
        finally:
            if stop is not None:
                stop.unbind()
            for sig in installed:
                loop.remove_signal_handler(sig)
            if close_provider:
                await provider.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called inside a running event loop (a Jupyter kernel runs cells in one): run the job on a
    # loop of its own in a worker thread; interrupting the kernel stops the job cleanly.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="barlake-job") as pool:
        job = pool.submit(asyncio.run, main())
        try:
            return job.result()
        except KeyboardInterrupt:
            if loops:
                loops[0].call_soon_threadsafe(scheduler.interrupt)
            return job.result()


def run_blocking(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """The result of the coroutine ``make()`` returns, run to its end from synchronous code,
    also inside a running event loop (a Jupyter cell): then on a loop of its own in a worker
    thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="barlake-run") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
