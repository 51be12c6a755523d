"""Running a job's scheduler to its end, with SIGINT and SIGTERM stopping it cleanly."""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

from barlake.fetch.job import JobResult
from barlake.fetch.scheduler import Scheduler
from barlake.providers.base import Provider


def run_until_signalled(
    scheduler: Scheduler, provider: Provider, *, close_provider: bool = True
) -> JobResult:
    """Run the scheduler; SIGINT and SIGTERM cancel it cleanly (fetched bars are saved).
    ``close_provider``: close the provider after the job (not for one its owner passed in)."""

    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> JobResult:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
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
