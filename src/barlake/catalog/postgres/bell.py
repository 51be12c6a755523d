"""The queue's doorbell across machines: PostgreSQL's LISTEN and NOTIFY.

A statement that makes a request claimable (queued, released, or put back after its worker
died) also runs ``NOTIFY`` on ``CHANNEL``, which the server delivers when its transaction
commits, to every connection listening, on any machine. An idle worker waits on a connection of
its own that listens there, so it claims a new request at once rather than at its next poll
(``worker.poll_s``, still the longest wait: a notification lost with a broken connection only
delays the claim to the poll).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import psycopg

from barlake.catalog.postgres.engine import CONNECT_TIMEOUT_S

CHANNEL = "barlake_queue"
RING = f"NOTIFY {CHANNEL}"
#: Seconds between looks at the stop event while waiting.
_SLICE_S = 0.2


class Bell:
    """Waits for ``NOTIFY`` on ``CHANNEL`` on a connection of its own to ``url``."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[Any] | None = None

    def listen(self) -> None:
        """Start listening now, so that no notification after this call is missed (a server
        that cannot be reached leaves the waits to poll)."""
        try:
            self._listening()
        except psycopg.Error:
            self.close()

    def _listening(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Until a notification (True; those that came since the last wait count),
        ``stop`` is set or ``timeout`` seconds pass (False)."""
        left = timeout
        while left > 0 and not stop.is_set():
            step = min(_SLICE_S, left)
            try:
                heard = any(True for _ in self._listening().notifies(timeout=step, stop_after=1))
            except psycopg.Error:
                self.close()  # the next wait connects again; until then, poll
                stop.wait(left)
                return False
            if heard:
                return True
            left -= step
        return False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.close()
