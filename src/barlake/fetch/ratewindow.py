"""Where a rate limiter's window lives: in one process, or in a file that every process shares.

A window remembers when the latest acquisitions happened and whether a pause (a 429's
Retry-After) holds everyone back. ``take`` records an acquisition if the ``limit``-th latest one
has left the window, and otherwise says how long until it does.

The shared window is a small file, ``<cache dir>/ratelimits/<provider>-<hash of the key>.bin``:

    header  b"BLRW", version u32, capacity u64, head u64, last f64, pause set f64, pause end f64
    slots   ``capacity`` float64 times in a ring; ``head`` is where the next one goes

Each call holds an exclusive ``flock`` for a handful of system calls and touches the header and
one slot, whatever the limit. Times are wall-clock seconds (``time.time()``), the only clock that
processes share, read inside the lock so that they are written in order. ``last`` is the latest
time written: when it lies ahead of the clock, the clock was set back, and every later time
(entries and pause) moves back to now, so that a jump costs at most one window. Processes may
ask for different limits: the ring holds as many entries as the largest of them, and each
process checks its own limit against the same history.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import re
import struct
import sys
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple, Protocol

from barlake.calendars.calendar import cache_dir

Clock = Callable[[], float]

_MAGIC = b"BLRW"
_VERSION = 1
_HEADER = struct.Struct("<4sIQQddd")  # magic, version, capacity, head, last, pause set, pause end
_SLOT = struct.Struct("<d")
_EMPTY = 0.0  # 1970: an unused slot is as good as an acquisition long gone
#: A time written this far ahead of the clock means the clock was set back since.
_JUMP_S = 1.0
#: Limits above this are no vendor's (1,700 a second): their windows stay in the process.
MAX_SHARED = 100_000

_warned = False


class Window(Protocol):
    """What a rate limiter asks of its window. Each call reads ``clock`` once, inside the
    window's lock, so that times are written in the order they were read."""

    def take(self, clock: Clock, limit: int, span: float) -> float:
        """0 after recording an acquisition now; else the seconds to wait first (for a pause
        to end, or for the ``limit``-th latest acquisition to be ``span`` seconds old)."""
        ...

    def hold(self, clock: Clock, seconds: float) -> None:
        """Pause every acquisition for ``seconds`` from now (never shortening a longer pause)."""
        ...

    def held(self, clock: Clock) -> float:
        """Seconds left of the pause, 0 when there is none."""
        ...


class _Pause(NamedTuple):
    set_at: float
    until: float

    def left(self, now: float) -> float:
        return max(0.0, self.until - max(now, self.set_at))

    def rebased(self, now: float) -> _Pause:
        """The pause after the clock went back to ``now``: as long, counted from now."""
        if self.set_at <= now:
            return self
        return _Pause(now, now + self.until - self.set_at)


_NO_PAUSE = _Pause(_EMPTY, _EMPTY)


def _wait(latest: float, now: float, span: float) -> float:
    """Seconds until an acquisition made at ``latest`` leaves a window of ``span`` seconds;
    one "in the future" (a clock a little behind another's) counts as made now."""
    return max(0.0, min(latest, now) + span - now)


class LocalWindow:
    """The window of one process (the fallback, and the choice when nothing is shared)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._pause = _NO_PAUSE

    def take(self, clock: Clock, limit: int, span: float) -> float:
        now = self._now(clock)
        if (left := self._pause.left(now)) > 0:
            return left
        if len(self._times) >= limit and (wait := _wait(self._times[-limit], now, span)) > 0:
            return wait
        self._times.append(now)
        while len(self._times) > limit:
            self._times.popleft()
        return 0.0

    def hold(self, clock: Clock, seconds: float) -> None:
        now = self._now(clock)
        if seconds > self._pause.left(now):
            self._pause = _Pause(now, now + seconds)

    def held(self, clock: Clock) -> float:
        return self._pause.left(self._now(clock))

    def _now(self, clock: Clock) -> float:
        now = clock()
        if max(self._pause.set_at, self._times[-1] if self._times else _EMPTY) > now + _JUMP_S:
            self._times = deque(min(t, now) for t in self._times)
            self._pause = self._pause.rebased(now)
        return now


class _Header(NamedTuple):
    capacity: int
    head: int
    last: float  # the latest time written, to notice a clock set back
    pause: _Pause


class SharedWindow:
    """A window kept in ``path``, shared by every process (and object) that opens it.

    ``capacity`` is the ring's least size; a larger limit grows it. If the file becomes
    unusable, the window carries on in this process alone (see ``open_window``).
    """

    def __init__(self, path: Path, capacity: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        weakref.finalize(self, os.close, self._fd)
        self._local: LocalWindow | None = None
        with self._locked():
            self._header(capacity, math.inf)

    def take(self, clock: Clock, limit: int, span: float) -> float:
        if self._local is None:
            try:
                return self._take(clock, limit, span)
            except OSError as exc:
                self._local = _fallback(self.path.parent, exc)
        return self._local.take(clock, limit, span)

    def hold(self, clock: Clock, seconds: float) -> None:
        if self._local is None:
            try:
                self._hold(clock, seconds)
                return
            except OSError as exc:
                self._local = _fallback(self.path.parent, exc)
        self._local.hold(clock, seconds)

    def held(self, clock: Clock) -> float:
        if self._local is None:
            try:
                with self._locked():
                    now = clock()
                    return self._header(0, now).pause.left(now)
            except OSError as exc:
                self._local = _fallback(self.path.parent, exc)
        return self._local.held(clock)

    def _take(self, clock: Clock, limit: int, span: float) -> float:
        with self._locked():
            now = clock()
            header = self._header(limit, now)
            if (left := header.pause.left(now)) > 0:
                return left
            nth = (header.head - limit) % header.capacity
            (latest,) = _SLOT.unpack(self._read(_slot(nth), _SLOT.size))
            if (wait := _wait(latest, now, span)) > 0:
                return wait
            os.pwrite(self._fd, _SLOT.pack(now), _slot(header.head))
            head = (header.head + 1) % header.capacity
            self._write(header._replace(head=head, last=max(header.last, now)))
            return 0.0

    def _hold(self, clock: Clock, seconds: float) -> None:
        with self._locked():
            now = clock()
            header = self._header(0, now)
            if seconds > header.pause.left(now):
                pause = _Pause(now, now + seconds)
                self._write(header._replace(last=max(header.last, now), pause=pause))

    def _header(self, limit: int, now: float) -> _Header:
        """The header, after making a missing or damaged file new, a small ring larger, and
        times from before the clock was set back no later than ``now``."""
        header = self._parse(os.pread(self._fd, _HEADER.size, 0))
        if header is None:
            os.ftruncate(self._fd, 0)
            header = self._grow(_Header(0, 0, _EMPTY, _NO_PAUSE), limit)
        elif header.capacity < limit:
            header = self._grow(header, limit)
        if header.last > now + _JUMP_S:
            header = self._rebase(header, now)
        return header

    def _parse(self, raw: bytes) -> _Header | None:
        if len(raw) != _HEADER.size:
            return None
        magic, version, capacity, head, last, set_at, until = _HEADER.unpack(raw)
        whole = os.fstat(self._fd).st_size >= _slot(capacity)
        if magic != _MAGIC or version != _VERSION or head >= max(capacity, 1) or not whole:
            return None
        return _Header(capacity, head, last, _Pause(set_at, until))

    def _grow(self, header: _Header, capacity: int) -> _Header:
        """The ring with room for ``capacity`` entries: the oldest first, then empty slots."""
        old = self._read(_slot(0), header.capacity * _SLOT.size)
        cut = header.head * _SLOT.size
        empty = _SLOT.pack(_EMPTY) * (capacity - header.capacity)
        os.pwrite(self._fd, old[cut:] + old[:cut] + empty, _slot(0))
        # In ring order from ``head``: the empty slots (the oldest), then the old entries.
        grown = header._replace(capacity=capacity, head=header.capacity % max(capacity, 1))
        self._write(grown)
        return grown

    def _rebase(self, header: _Header, now: float) -> _Header:
        """``header`` and the ring with every time after ``now`` moved back to ``now``."""
        size = header.capacity * _SLOT.size
        times = struct.unpack(f"<{header.capacity}d", self._read(_slot(0), size))
        os.pwrite(
            self._fd, struct.pack(f"<{header.capacity}d", *(min(t, now) for t in times)), _slot(0)
        )
        rebased = header._replace(last=now, pause=header.pause.rebased(now))
        self._write(rebased)
        return rebased

    def _write(self, header: _Header) -> None:
        capacity, head, last, (set_at, until) = header
        raw = _HEADER.pack(_MAGIC, _VERSION, capacity, head, last, set_at, until)
        os.pwrite(self._fd, raw, 0)

    def _read(self, offset: int, size: int) -> bytes:
        raw = os.pread(self._fd, size, offset)
        if len(raw) != size:
            msg = f"{self.path} changed size while locked"
            raise OSError(msg)
        return raw

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


def _slot(index: int) -> int:
    """The file offset of slot ``index``."""
    return _HEADER.size + index * _SLOT.size


def window_path(key: str, directory: Path | None = None) -> Path:
    """The file of the window called ``key`` (e.g. a provider's name and base URL).

    Only a hash of the key reaches the file name: a URL may carry credentials.
    """
    label = re.sub(r"[^A-Za-z0-9_-]", "_", key.split(" ", 1)[0])[:32] or "window"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return (directory or cache_dir() / "ratelimits") / f"{label}-{digest}.bin"


def open_window(key: str, limit: int, directory: Path | None = None) -> Window:
    """The shared window called ``key``, or this process's own if its file cannot be used."""
    if limit > MAX_SHARED:
        return LocalWindow()
    path = window_path(key, directory)
    try:
        return SharedWindow(path, limit)
    except OSError as exc:
        return _fallback(path.parent, exc)


def _fallback(directory: Path, exc: OSError) -> LocalWindow:
    global _warned
    if not _warned:
        _warned = True
        reason = exc.strerror or str(exc)
        print(
            f"barlake: cannot share rate limits with other processes through {directory} "
            f"({reason}); this process keeps its own",
            file=sys.stderr,
        )
    return LocalWindow()
