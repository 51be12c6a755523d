"""Liveness: whether the process that owns a job (or a temporary file) is still there.

On the owner's own host its pid answers at once; from anywhere, a heartbeat older than the
lease says the owner is gone (or wedged, or its pid was reused by another program).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

#: How long a running job may go without a heartbeat before it counts as dead. Jobs beat
#: every second (``fetch.scheduler.REPORT_EVERY_S``), so this only fires for a dead owner.
LEASE = timedelta(seconds=120)

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def owner_gone(
    host: str | None, pid: int | None, beat: datetime, now: datetime, lease: timedelta = LEASE
) -> bool:
    """Whether the owner (on ``host`` with ``pid``, last heard of at ``beat``) is gone; an
    owner without a host is one of this host's (rows written before hosts were recorded)."""
    if now - beat > lease:
        return True
    local = host is None or host == HOST
    return local and pid is not None and not pid_alive(pid)


def abandoned(
    owned: Iterable[tuple[Any, str | None, int | None, datetime]], lease: timedelta = LEASE
) -> list[str]:
    """The ids among ``owned`` rows (id, host, pid, last heartbeat) whose owner is gone."""
    now = datetime.now(UTC)
    return [str(i) for i, host, pid, beat in owned if owner_gone(host, pid, beat, now, lease)]
