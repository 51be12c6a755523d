"""The followers of a lake as ``lake status``, ``/health`` and ``/metrics`` see them: one state
file per follower, and how a reader judges it.

Each follower (``lake follow``, one process or thread) owns ``live/followers/<id>.json``,
replaced atomically whenever its state changes and at least every ``beat_s`` seconds of wall
time (its heartbeat), so several followers of one lake never overwrite each other. A follower
that ends marks its file finished (``finished_at``); one that starts removes the files of dead
or finished followers of the same provider and symbols it takes over, so a killed follower
shows as dead until it is restarted, not forever.

A reader judges each file (``judge``):

========= ====================================================================================
finished  the follower ended (its session is final, it was stopped, or it failed)
dead      its heartbeat is older than ``DEAD_BEATS`` beats, or its pid is gone on this host
stale     alive, the session open, and nothing received for longer than the interval (one
          minute) plus the follower's grace: the stream is silent and not yet reopened
running   anything else (catching up, following, making the session final)
========= ====================================================================================

Two clocks: the heartbeat is wall time (liveness is judged by the machine's time whatever the
lake's), bar and message times are the lake's clock (``LAKE_CLOCK`` in a simulation), and so
are the lag and the stale rule.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from barlake.liveness import owner_gone
from barlake.storage.filesystem import FileSystem

FOLDER = "followers"
#: Beats a follower may miss before it counts as dead (on another host, where no pid answers).
DEAD_BEATS = 5
#: A bar interval: a follower that heard nothing for this plus its grace is stale.
INTERVAL = timedelta(minutes=1)

Judged = Literal["running", "stale", "dead", "finished"]
STATES: tuple[Judged, ...] = ("running", "stale", "dead", "finished")


class FollowerFiles:
    """The state files of the followers of the lake at ``root`` (on ``fs``)."""

    def __init__(self, root: Path, fs: FileSystem) -> None:
        self.folder = Path(root) / "live" / FOLDER
        self.fs = fs

    def save(self, state: dict[str, Any]) -> None:
        """Replace the file of the follower ``state["id"]`` with ``state``."""
        data = json.dumps(state, indent=1, default=_iso).encode()
        self.fs.put(self.folder / f"{state['id']}.json", data)

    def load(self) -> list[dict[str, Any]]:
        """Every follower's state (times as aware datetimes), oldest start first; a file that
        cannot be read (being replaced on a file system without renames) is skipped."""
        out = []
        for name in self.fs.listdir(self.folder):
            if not name.endswith(".json"):
                continue
            try:
                with self.fs.open(self.folder / name) as fh:
                    out.append(_parsed(json.load(fh)))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(out, key=lambda s: (s.get("started_at") or _EPOCH, s.get("id", "")))

    def remove(self, follower: str) -> None:
        with contextlib.suppress(OSError):
            self.fs.remove(self.folder / f"{follower}.json")

    def take_over(self, state: dict[str, Any], wall: datetime | None = None) -> list[str]:
        """Remove the files of dead or finished followers of ``state``'s provider that
        followed any of its symbols (``state`` is a new follower's); returns their ids."""
        wall = wall or datetime.now(UTC)
        mine = set(state["symbols"])
        gone = []
        for other in self.load():
            if other.get("id") == state["id"] or other.get("provider") != state["provider"]:
                continue
            if not mine & set(other.get("symbols") or ()):
                continue
            if judge(other, wall, wall) in ("dead", "finished"):
                self.remove(str(other["id"]))
                gone.append(str(other["id"]))
        return gone


@dataclass(frozen=True)
class FollowerReport:
    """One follower as a reader judges it: ``state`` (``STATES``), ``lag_s`` (the lake's now
    minus the last bar's start, None before the first bar) and the follower's own counts."""

    id: str
    provider: str
    state: Judged
    status: str
    symbols: list[str]
    host: str | None
    pid: int | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    last_bar: datetime | None
    last_message_at: datetime | None
    lag_s: float | None
    reconnects: int
    silences: int
    bars: int
    corrections: int
    backfilled: int
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @property
    def unwell(self) -> bool:
        """Stale or dead: what ``/health`` reports as degraded."""
        return self.state in ("stale", "dead")


def judge(state: dict[str, Any], now: datetime, wall: datetime) -> Judged:
    """The state of a follower (see the module) at the lake's ``now``, by wall time ``wall``."""
    if state.get("finished_at") is not None:
        return "finished"
    beat = state.get("heartbeat_at") or state.get("started_at") or _EPOCH
    lease = timedelta(seconds=DEAD_BEATS * float(state.get("beat_s") or 1.0))
    if owner_gone(state.get("host"), state.get("pid"), beat, wall, lease):
        return "dead"
    opens, closes = state.get("session_open"), state.get("session_close")
    heard = state.get("last_message_at") or state.get("started_at")
    quiet = INTERVAL + timedelta(seconds=float(state.get("grace_s") or 60.0))
    if opens and closes and opens <= now < closes and heard is not None and now - heard > quiet:
        return "stale"
    return "running"


def report(state: dict[str, Any], now: datetime, wall: datetime) -> FollowerReport:
    """``state`` (a follower's file, as ``FollowerFiles.load`` reads it) judged at ``now``."""
    last_bar = state.get("last_bar")
    return FollowerReport(
        id=str(state["id"]),
        provider=str(state.get("provider", "")),
        state=judge(state, now, wall),
        status=str(state.get("status", "")),
        symbols=list(state.get("symbols") or []),
        host=state.get("host"),
        pid=state.get("pid"),
        started_at=state.get("started_at"),
        heartbeat_at=state.get("heartbeat_at"),
        last_bar=last_bar,
        last_message_at=state.get("last_message_at"),
        lag_s=(now - last_bar).total_seconds() if last_bar is not None else None,
        reconnects=int(state.get("reconnects") or 0),
        silences=int(state.get("silences") or 0),
        bars=int(state.get("bars") or 0),
        corrections=int(state.get("corrections") or 0),
        backfilled=int(state.get("backfilled") or 0),
        finished_at=state.get("finished_at"),
    )


def reports(
    files: FollowerFiles, now: datetime, wall: datetime | None = None
) -> list[FollowerReport]:
    """Every follower of the lake judged at the lake's ``now`` (wall time: the machine's)."""
    wall = wall or datetime.now(UTC)
    return [report(s, now, wall) for s in files.load()]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMES = (
    "started_at",
    "heartbeat_at",
    "finished_at",
    "last_bar",
    "last_message_at",
    "session_open",
    "session_close",
)


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    msg = f"cannot store {type(value).__name__} in a follower's state"
    raise TypeError(msg)


def _parsed(raw: dict[str, Any]) -> dict[str, Any]:
    for key in _TIMES:
        if isinstance(raw.get(key), str):
            moment = datetime.fromisoformat(raw[key])
            raw[key] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if "id" not in raw:
        msg = "a follower's state without an id"
        raise ValueError(msg)
    return raw
