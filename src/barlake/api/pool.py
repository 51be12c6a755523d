"""The queue workers ``lake serve`` runs beside the API: threads of its own process on the
embedded catalog, ``lake worker`` processes on a PostgreSQL one (``workers_for`` chooses)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from barlake.jobs.worker import Log, Worker
    from barlake.lake import Lake

log = logging.getLogger("barlake.api")


class Workers(Protocol):
    """What the app needs of its workers: start and stop with it, and how many are alive."""

    size: int

    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> None: ...

    @property
    def alive(self) -> int: ...


def workers_for(lake: Lake, size: int, log: Log | None = None) -> Workers:
    """Threads when the catalog is the lake's DuckDB file, which one process at a time may
    write; ``lake worker`` processes when it is a PostgreSQL server, so that a fill's CPU work
    (bars parsed, validated and written in Python) never holds the API's interpreter lock.
    Providers handed to the lake in Python exist in this process only: they keep threads."""
    if lake.catalog_url is None or lake.handed_providers:
        return WorkerPool(lake, size, log)
    return WorkerProcesses(lake, size)


class WorkerPool:
    """``size`` workers of ``lake``'s queue: started with the app, stopped with it; ``log``
    receives their events (claimed, done, failed, idle)."""

    def __init__(self, lake: Lake, size: int, log: Log | None = None) -> None:
        self.lake, self.size, self.log = lake, size, log
        self._running: list[tuple[Worker, threading.Thread]] = []

    def start(self) -> None:
        for n in range(self.size):
            name = f"serve-{n + 1}" if self.size > 1 else None
            worker = self.lake.worker(name=name, log=self.log)
            thread = threading.Thread(
                target=self._serve, args=(worker,), name=f"lake-worker-{n + 1}", daemon=True
            )
            thread.start()
            self._running.append((worker, thread))

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every worker to stop (in-flight work is saved or released) and wait for them."""
        for worker, _ in self._running:
            worker.stop()
        for _, thread in self._running:
            thread.join(timeout)
        self._running.clear()

    @property
    def alive(self) -> int:
        return sum(thread.is_alive() for _, thread in self._running)

    @staticmethod
    def _serve(worker: Worker) -> None:
        try:
            worker.run()
        except Exception:  # a worker that dies is reported by /health; the API stays up
            log.exception("queue worker stopped on an error")


class WorkerProcesses:
    """``size`` ``lake worker`` processes on ``lake``'s root, started with the app and
    stopped with it (SIGTERM: in-flight work is saved or released, as ``lake worker`` does).
    They inherit the environment (``LAKE_CATALOG_URL``, credentials) and write their event
    lines to this process's stderr."""

    def __init__(self, lake: Lake, size: int) -> None:
        self.lake, self.size = lake, size
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for n in range(self.size):
            command = [sys.executable, "-m", "barlake", "--lake", str(self.lake.root), "worker"]
            command += ["--name", f"serve-{n + 1}"]
            self._running.append(subprocess.Popen(command, stdin=subprocess.DEVNULL))

    def stop(self, timeout: float = 30.0) -> None:
        for process in self._running:
            if process.poll() is None:
                process.terminate()
        for process in self._running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:  # its lease lets another worker take the work
                process.kill()
                process.wait()
        self._running.clear()

    @property
    def alive(self) -> int:
        return sum(process.poll() is None for process in self._running)
