"""The queue workers ``lake serve`` runs beside the API, each in a thread of its own."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from barlake.jobs.worker import Log, Worker
    from barlake.lake import Lake

log = logging.getLogger("barlake.api")


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
