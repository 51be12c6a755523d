"""lake.yaml's ``follow:`` selections, kept live by the worker.

A worker (``lake worker``, or the one ``lake serve`` runs) follows each provider's selections
(``Lake.follow``, one stream connection for all of them) in a thread of its own, from the
opening of each session on their calendar until that session is final, then waits for the
next one. It looks between requests, as it does for schedules:

- before the session opens, or on a day without one, nothing runs;
- a worker started during the session (or after its close) starts the follower then: the
  follower catches up through the planner first, so nothing is missed;
- a follower that ends its session (made final) is not started again for that session in
  this process; one stopped by the worker is not either (the worker is stopping);
- a follower that fails with a retryable error (the provider down, the lake's fill lock held
  by a fill at that moment) is started again ``RETRY_S`` later; any other error (a refused
  key, the vendor's connection limit) is logged once and the session is left alone.

Only one follower of a provider's selections runs per lake folder at a time: each holds an
exclusive lock on ``live/follow-<provider>.lock`` while it runs (the kernel frees it when its
process dies), so a second worker on the same lake, or ``lake serve --workers 2``, leaves the
stream to the first. Workers on other machines (a PostgreSQL catalog) follow only when no
running follower of the provider shows in ``Lake.followers()``, and only while they hold the
catalog's lease of it (``Catalog.lease``: a PostgreSQL advisory lock on a connection of the
follower's own, which the server drops with a dead process), so that of two workers starting
at the same moment on two machines, one follows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from barlake.calendars.calendar import Calendar
from barlake.clock import Clock
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.errors import LakeError, LockError
from barlake.storage.lock import FileLock

#: Seconds (wall time) before a follower that failed with a retryable error starts again.
RETRY_S = 5.0

#: Follows one provider's selections until its session is final or the event is set; returns
#: the result's summary (``FollowResult.to_dict``).
Follow = Callable[[str, threading.Event], dict[str, Any]]
#: Whether a follower of the provider runs elsewhere (another machine of the team).
Elsewhere = Callable[[str], bool]
#: The catalog's lease of a name (``Catalog.lease``): held across machines while entered.
Lease = Callable[[str], AbstractContextManager[bool]]
#: One line of the worker's log.
Log = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class Selection:
    """One provider's followed symbols (every ``follow:`` entry of it) and their calendar."""

    provider: str
    symbols: tuple[str, ...]
    calendar: Calendar

    def session(self, now: datetime) -> date | None:
        """Today's session, once it has opened (None before, or on a day without one)."""
        today = now.date()
        if not self.calendar.session_count(DateRange(today, today + ONE_DAY)):
            return None
        opens, _ = self.calendar.open_close(today)
        return today if now >= opens else None


class Following:
    """The worker's followers: one thread per provider of lake.yaml's ``follow:`` entries."""

    def __init__(
        self,
        selections: Sequence[Selection],
        follow: Follow,
        clock: Clock,
        root: Path,
        *,
        elsewhere: Elsewhere | None = None,
        lease: Lease | None = None,
        log: Log | None = None,
    ) -> None:
        self.selections, self.follow, self.clock = list(selections), follow, clock
        self.root = Path(root)
        self.elsewhere = elsewhere or (lambda provider: False)
        self.lease: Lease = lease or (lambda name: contextlib.nullcontext(enter_result=True))
        self.log: Log = log or (lambda event, fields: None)
        self._stop = threading.Event()
        self._threads: dict[str, threading.Thread] = {}
        self._ended: dict[str, date] = {}  # the last session each provider's follower ended
        self._retry_at: dict[str, float] = {}

    def tick(self) -> None:
        """Start the follower of each selection whose session is open and not yet followed
        to its end (the worker calls this between requests)."""
        if self._stop.is_set():
            return
        now = self.clock()
        for sel in self.selections:
            running = self._threads.get(sel.provider)
            if running is not None and running.is_alive():
                continue
            session = sel.session(now)
            if session is None or self._ended.get(sel.provider) == session:
                continue
            if time.monotonic() < self._retry_at.get(sel.provider, 0.0):
                continue
            if self.elsewhere(sel.provider):
                continue
            thread = threading.Thread(
                target=self._run, args=(sel, session), daemon=True, name=f"follow {sel.provider}"
            )
            self._threads[sel.provider] = thread
            thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every follower (each saves what it received) and wait for them."""
        self._stop.set()
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _run(self, sel: Selection, session: date) -> None:
        fields: dict[str, Any] = {"provider": sel.provider, "session": session.isoformat()}
        try:
            summary = self._follow_held(sel, fields)
        except Exception as exc:  # a worker outlives its followers' failures
            retry = isinstance(exc, LakeError) and (exc.retryable or isinstance(exc, LockError))
            if retry:
                self._retry_at[sel.provider] = time.monotonic() + RETRY_S
            else:
                self._ended[sel.provider] = session
            error = str(exc) if isinstance(exc, LakeError) else f"{type(exc).__name__}: {exc}"
            self.log("follow_failed", {**fields, "error": error, "retry": retry})
            return
        if summary is None:  # another worker of this lake follows them
            self._retry_at[sel.provider] = time.monotonic() + RETRY_S
            return
        self._ended[sel.provider] = session
        keys = ("bars", "corrections", "reconnects", "backfilled", "final_bars", "differences")
        done = {k: summary[k] for k in keys if k in summary}
        self.log("followed", {**fields, **done, "stopped": self._stop.is_set()})

    def _follow_held(self, sel: Selection, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Follow ``sel`` holding this machine's lock and the catalog's lease of it (two
        workers on two machines starting at the same moment both see no follower running;
        one gets the lease); None when another holds either."""
        with (
            ProviderLock(self.root, sel.provider) as locked,
            self.lease(f"follow:{sel.provider}") as leased,
        ):
            if not (locked and leased):
                return None
            self.log("following", {**fields, "symbols": len(sel.symbols)})
            return self.follow(sel.provider, self._stop)


class ProviderLock:
    """The lake's lock on following ``provider`` (``<lake>/live/follow-<provider>.lock``, a
    ``FileLock``): entered, it says whether this follower holds it (False: another does)."""

    def __init__(self, root: Path, provider: str) -> None:
        self.lock = FileLock(Path(root) / "live" / f"follow-{provider}.lock")
        self._held = False

    def __enter__(self) -> bool:
        self.lock.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.__enter__()
        except LockError:
            return False
        self._held = True
        return True

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self._held = False
            self.lock.__exit__(None, None, None)
