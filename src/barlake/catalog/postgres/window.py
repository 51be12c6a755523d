"""A rate-limit window in the catalog's database: one limit per provider account for every
worker on every machine that shares the catalog.

It keeps the rule of ``fetch.ratewindow``'s windows (at most ``limit`` acquisitions in any
``span`` seconds, and a pause that holds everyone back) in two tables: ``rate_takes`` holds the
latest acquisitions of each window, ``rate_windows`` its pause. Each call is one transaction
under an advisory lock of its window, so acquisitions are counted one at a time across
machines. Times are wall-clock seconds of the caller's clock, read inside the lock; only a hash
of the window's key is stored (a key names a vendor URL, which may carry credentials).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from barlake.catalog.postgres.catalog import PostgresCatalog
from barlake.catalog.postgres.engine import Connection

Clock = Callable[[], float]

#: Acquisitions older than this many spans are forgotten: no limit looks that far back.
_KEEP_SPANS = 2.0


def window_key(key: str) -> str:
    """The name a window is stored under: a hash of ``key``, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class PostgresWindow:
    """The window called ``key`` in ``catalog``'s database (``fetch.ratewindow.Window``)."""

    def __init__(self, catalog: PostgresCatalog, key: str) -> None:
        self.catalog = catalog
        self.key = window_key(key)
        self._lock = int(self.key[:15], 16)  # a bigint for pg_advisory_xact_lock
        with catalog.connect() as con:
            con.execute(
                "INSERT INTO rate_windows (window_key) VALUES (?) ON CONFLICT DO NOTHING",
                [self.key],
            )

    def take(self, clock: Clock, limit: int, span: float) -> float:
        with self.catalog.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(?)", [self._lock])
            now = clock()
            left = self._paused(con, now)
            if left > 0:
                return left
            nth = con.execute(
                "SELECT taken_at FROM rate_takes WHERE window_key = ? "
                "ORDER BY taken_at DESC OFFSET ? LIMIT 1",
                [self.key, limit - 1],
            ).fetchone()
            if nth is not None:
                # one "in the future" (a machine whose clock runs ahead) counts as made now
                wait = max(0.0, min(float(nth[0]), now) + span - now)
                if wait > 0:
                    return wait
            con.execute(
                "INSERT INTO rate_takes (window_key, taken_at) VALUES (?, ?)", [self.key, now]
            )
            con.execute(
                "DELETE FROM rate_takes WHERE window_key = ? AND taken_at < ?",
                [self.key, now - _KEEP_SPANS * span],
            )
            return 0.0

    def hold(self, clock: Clock, seconds: float) -> None:
        with self.catalog.connect() as con:
            con.execute("SELECT pg_advisory_xact_lock(?)", [self._lock])
            now = clock()
            if seconds > self._paused(con, now):
                con.execute(
                    "UPDATE rate_windows SET pause_set = ?, pause_until = ? WHERE window_key = ?",
                    [now, now + seconds, self.key],
                )

    def held(self, clock: Clock) -> float:
        with self.catalog.connect(read_only=True) as con:
            return self._paused(con, clock())

    def _paused(self, con: Connection, now: float) -> float:
        row = con.execute(
            "SELECT pause_set, pause_until FROM rate_windows WHERE window_key = ?", [self.key]
        ).fetchone()
        if row is None:
            return 0.0
        set_at, until = float(row[0]), float(row[1])
        return max(0.0, until - max(now, set_at))
