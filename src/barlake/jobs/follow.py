"""Follow: keep a selection's minute bars current through the session from a provider's
stream, with no gap between stored history, the live bars and the provider's final record.

The seams, and how each is closed:

1. **History to live.** ``catch_up`` (the normal planner's fill) fetches from the last stored bar
   to now, today's partial session included; the minutes that close between it and the
   stream's subscription are fetched from REST after subscribing.
2. **Across a lost connection.** A dropped or silent stream (nothing for a minute plus
   ``grace_s`` while the session is open) is reopened with exponential backoff; then the REST
   bars of exactly the minutes the stream did not deliver (of those closed by then, from the
   start's minute on: the catch-up stored the ones before) go to the live area.
3. **Live to final.** Once the session has closed plus ``close_grace``, ``catch_up`` fetches the
   session again (the ledger's provisional ranges send it back), the final bars replace the
   live ones, the minutes that differed are counted, and the live area is cleared.

A follower that was down (killed, or started late) catches up the same way on start. Live bars
go to ``storage.live`` (one small file per flush), which ``Lake.bars`` reads through. Its state
(symbols, last bar, reconnects, a heartbeat) goes to a file of its own that ``lake status`` and
the service read (``barlake.jobs.followers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import LedgerRepository
from barlake.catalog.schema import LEDGER
from barlake.clock import Clock
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, PermanentError, ProviderError, TransientError
from barlake.jobs.followers import FollowerFiles
from barlake.liveness import HOST
from barlake.providers.base import Provider
from barlake.providers.polling import minute_bars
from barlake.providers.stream import LiveSource
from barlake.providers.wire import to_sessions
from barlake.storage.live import LiveArea

MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class FollowOptions:
    """How a follower paces itself (seconds of real time unless said otherwise)."""

    #: Longest wait for a frame before the clock is looked at again.
    poll_s: float = 0.5
    #: Seconds (of the lake's clock) past a minute without any bar before the stream is
    #: declared silent and reopened.
    grace_s: float = 60.0
    #: After the close, how long (lake clock) before the session is fetched again as final.
    close_grace: timedelta = timedelta(minutes=15)
    #: Reconnect backoff: first wait, cap, and attempts before giving up.
    backoff_s: float = 0.5
    backoff_cap_s: float = 30.0
    max_attempts: int = 12
    #: Flush received bars to the live area at most this often, and no later than this
    #: after the first of them arrived.
    flush_s: float = 0.2
    #: The heartbeat: the state file is written at least this often (wall time).
    beat_s: float = 1.0


@dataclass
class FollowState:
    """What a follower tells ``lake status`` and the service (``live/followers/<id>.json``).

    ``heartbeat_at`` and ``finished_at`` are wall time; the bar and message times, the
    session's open and close, the lake's clock."""

    id: str
    provider: str
    symbols: list[str]
    pid: int
    started_at: datetime
    host: str = HOST
    heartbeat_at: datetime | None = None
    beat_s: float = 1.0
    grace_s: float = 60.0
    session_open: datetime | None = None
    session_close: datetime | None = None
    finished_at: datetime | None = None
    last_bar: datetime | None = None
    last_message_at: datetime | None = None
    reconnects: int = 0
    silences: int = 0
    bars: int = 0
    corrections: int = 0
    backfilled: int = 0
    status: str = "starting"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


@dataclass(frozen=True)
class FollowResult:
    """A followed session, made final: counts for the job's summary."""

    state: FollowState
    session: date | None
    final_bars: int = 0
    #: Minutes whose final bar differed from the live one, or that only one of them had.
    differences: int = 0
    missing_live: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.state.to_dict(),
            "session": self.session.isoformat() if self.session else None,
            "final_bars": self.final_bars,
            "differences": self.differences,
            "missing_live": self.missing_live,
        }


@dataclass
class _Received:
    """Bars received but not yet flushed, and every minute delivered this session."""

    pending: list[pl.DataFrame] = field(default_factory=list)
    seen: set[tuple[str, datetime]] = field(default_factory=set)


class Follower:
    """Follows ``symbols`` from ``source`` (one connection for all of them), with ``rest`` for
    the minutes the stream missed. ``catch_up`` runs the planner's fill of the symbols' minute
    bars from their last stored one to now; ``read`` gives the bars readers see (stored with
    live ones over them) of a session."""

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        source: LiveSource,
        rest: Provider,
        live: LiveArea,
        catalog: LedgerRepository,
        calendar: Calendar,
        clock: Clock,
        catch_up: Callable[[], Any],
        read: Callable[[date], pl.DataFrame],
        options: FollowOptions | None = None,
    ) -> None:
        self.symbols = sorted(set(symbols))
        self.source, self.rest, self.live = source, rest, live
        self.catalog, self.calendar, self.clock = catalog, calendar, clock
        self.catch_up, self.read = catch_up, read
        self.options = options or FollowOptions()
        self.state = FollowState(
            id=uuid.uuid4().hex,
            provider=rest.name,
            symbols=self.symbols,
            pid=os.getpid(),
            started_at=clock(),
            beat_s=self.options.beat_s,
            grace_s=self.options.grace_s,
        )
        self.files = FollowerFiles(live.root, live.fs)
        self._saving = threading.Lock()  # the heartbeat and the worker threads both save
        self._got = _Received()
        self._covered: datetime | None = None  # minutes before it came from REST at start
        self._opened_at: datetime | None = None  # when the stream last subscribed
        self._ledgered: set[str] = set()  # symbols with a provisional range of the session
        self._backfills: set[asyncio.Task[int]] = set()  # REST fetches beside the stream

    # -- the run -----------------------------------------------------------------------------

    async def run(self, stop: threading.Event | None = None) -> FollowResult:
        """Follow until today's session is final (or ``stop`` is set); the result counts what
        the final fetch changed. AuthError and PermanentError (refused key, connection limit,
        missing entitlement) end it."""
        stop = stop or threading.Event()
        session = self._session()
        if session is not None:
            self.state.session_open, self.state.session_close = self.calendar.open_close(session)
        beat = asyncio.create_task(self._beat())
        try:
            result = await self._follow(session, stop)
        except BaseException:
            self._save("failed", finished=True)
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        self._save(self.state.status, finished=True)
        return result

    async def _follow(self, session: date | None, stop: threading.Event) -> FollowResult:
        await asyncio.to_thread(self._start)
        if session is None or self._final_due(session):
            return await asyncio.to_thread(self._finalize, session)
        try:
            await self._connect(stop)
            self._start_backfill()
            loop = asyncio.get_running_loop()
            last_flush = loop.time()
            while not stop.is_set():
                self._reap()
                if self._final_due(session):
                    break
                # Bars received wait for the next frame at most until their flush is due,
                # not for a whole poll.
                wait = self.options.poll_s
                if self._got.pending:
                    due = last_flush + self.options.flush_s - loop.time()
                    wait = max(0.0, min(wait, due))
                try:
                    batch = await asyncio.wait_for(self.source.receive(), wait)
                except TimeoutError:
                    batch = None
                except TransientError:
                    await self._reconnect(stop)
                    continue
                if batch is not None:
                    self._take(batch.bars, batch.corrections)
                elif self._silent(session):
                    self.state.silences += 1
                    await self._reconnect(stop)
                    continue
                now = loop.time()
                if self._got.pending and now - last_flush >= self.options.flush_s:
                    self._flush()
                    last_flush = now
            await self._drain()
            self._flush()
        finally:
            for task in self._backfills:
                task.cancel()
            await self.source.aclose()
        if stop.is_set():
            self._save("stopped")
            return FollowResult(self.state, session)
        return await asyncio.to_thread(self._finalize, session)

    async def _beat(self) -> None:
        """The heartbeat: the state file again every ``beat_s``, whatever the run is doing."""
        while True:
            await asyncio.sleep(self.options.beat_s)
            await asyncio.to_thread(self._save, self.state.status)

    def _start(self) -> None:
        """Take over the files of dead followers of these symbols, catch up through the
        planner, then forget live bars a previous run left: the REST answer covers every
        minute closed by now, with final values where they were known."""
        at = self.clock()
        self.files.take_over(self.state.to_dict() | {"symbols": self.symbols})
        self._save("catching up")
        self.catch_up()
        self.live.clear(through=at.date())
        self._covered = at.replace(second=0, microsecond=0)
        self._save("catching up")

    async def _connect(self, stop: threading.Event, *, again: bool = False) -> None:
        """Open the stream, retrying transient failures with exponential backoff. ``again``
        (a reconnect) also retries a connection limit: the vendor may not have noticed yet
        that the old connection is gone; refused credentials stop at once."""
        wait = self.options.backoff_s
        retried = (PermanentError, TransientError) if again else (TransientError,)
        for attempt in range(self.options.max_attempts):
            try:
                await self.source.open(self.symbols)
                self.state.last_message_at = self._opened_at = self.clock()
                self._save("following")
                return
            except AuthError:
                raise
            except retried:
                if attempt + 1 == self.options.max_attempts or stop.is_set():
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.options.backoff_cap_s)

    async def _reconnect(self, stop: threading.Event) -> None:
        self.state.reconnects += 1
        self._flush()
        await self.source.aclose()
        await self._connect(stop, again=True)
        self._start_backfill()

    # -- bars in -----------------------------------------------------------------------------

    def _take(self, frame: pl.DataFrame, corrections: int) -> None:
        self.state.last_message_at = self.clock()
        frame = to_sessions(frame, "1min", self.calendar)
        frame = frame.filter(pl.col("symbol").is_in(self.symbols))
        if frame.is_empty():  # only bars outside the session: still a sign of life
            self._save("following")
            return
        self._got.pending.append(frame)
        self._got.seen.update(zip(frame["symbol"], frame["ts"], strict=True))
        self.state.bars += frame.height
        self.state.corrections += corrections
        last = frame.get_column("ts").max()
        if isinstance(last, datetime) and (
            self.state.last_bar is None or last > self.state.last_bar
        ):
            self.state.last_bar = last

    def _flush(self) -> None:
        if not self._got.pending:
            return
        frame = pl.concat(self._got.pending)
        self._got.pending.clear()
        self._write(frame)
        self._save("following")

    def _start_backfill(self) -> None:
        """Fetch what the stream missed before it (re)subscribed (``_backfill``) beside the
        stream: its bars keep being read and written meanwhile, however long the REST pages of
        the session so far take."""
        now = self._opened_at or self.clock()
        self._backfills.add(asyncio.create_task(self._backfill(self._covered, now)))

    def _reap(self) -> None:
        """Forget the backfills that ended; raise what one of them raised."""
        for task in [t for t in self._backfills if t.done()]:
            self._backfills.discard(task)
            task.result()

    async def _drain(self) -> None:
        """Wait for the backfills in flight (their bars are written), raising their errors."""
        while self._backfills:
            await asyncio.wait(self._backfills)
            self._reap()

    async def _backfill(self, since: datetime | None, now: datetime) -> int:
        """REST bars of the minutes closed by ``now`` that the stream did not deliver (from
        ``since``, else the whole session so far), into the live area; returns how many.
        ``since`` is the start's minute: the minutes before it are stored already (the
        catch-up), so a reconnect writes only what the stream missed, not the session again.
        ``now`` is when the stream subscribed: what closes later, the stream delivers, however
        long this fetch took to start. The bars the stream delivered while the pages came
        (``seen``) are not written again: the stream's own, or its corrections, stand."""
        session = self._session()
        if session is None:
            return 0
        frame = await self._fetch(session)
        closed = frame.filter(pl.col("ts") + pl.duration(minutes=1) <= now)
        if since is not None:
            closed = closed.filter(pl.col("ts") >= since)
        seen = self._got.seen
        fresh = [(s, t) not in seen for s, t in zip(closed["symbol"], closed["ts"], strict=True)]
        missed = closed.filter(pl.Series(fresh, dtype=pl.Boolean))
        if missed.height:
            self._write(missed)
            seen.update(zip(missed["symbol"], missed["ts"], strict=True))
            self.state.backfilled += missed.height
        self._save("following")
        return missed.height

    async def _fetch(self, session: date) -> pl.DataFrame:
        """Every minute bar of ``session`` the provider's REST API has now, retrying its
        retryable failures with the reconnect backoff."""
        wait = self.options.backoff_s
        for attempt in range(self.options.max_attempts):
            try:
                window = DateRange(session, session + _DAY)
                return await minute_bars(self.rest, self.symbols, window)
            except ProviderError as exc:
                if not exc.retryable or attempt + 1 == self.options.max_attempts:
                    raise
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.options.backoff_cap_s)
        raise AssertionError  # unreachable: the last attempt returns or raises

    # -- the session -------------------------------------------------------------------------

    def _session(self) -> date | None:
        """Today's session (on the followed symbols' calendar), None when there is none."""
        today = self.clock().date()
        return today if self.calendar.session_count(DateRange(today, today + _DAY)) else None

    def _final_due(self, session: date) -> bool:
        close = self.calendar.open_close(session)[1]
        return self.clock() >= close + self.options.close_grace

    def _silent(self, session: date) -> bool:
        now, last = self.clock(), self.state.last_message_at
        opens, closes = self.calendar.open_close(session)
        open_ = opens <= now < closes
        quiet = timedelta(seconds=60 + self.options.grace_s)
        return open_ and last is not None and now - last > quiet

    def _finalize(self, session: date | None) -> FollowResult:
        """Fetch the session again as final; count the minutes that changed; clear live."""
        if session is None:
            self._save("idle")
            return FollowResult(self.state, None)
        self._save("finalizing")
        before = self.read(session)
        self.catch_up()
        after = self.read(session)
        differences, missing = _differences(before, after)
        self.live.clear(through=session)
        self._save("final")
        return FollowResult(self.state, session, after.height, differences, missing)

    def _write(self, frame: pl.DataFrame) -> None:
        """Live bars into the live area; the session of each symbol's first ones becomes a
        provisional ledger range (the final fetch settles it)."""
        self.live.write(frame)
        new = sorted(set(frame["symbol"]) - self._ledgered)
        if not new:
            return
        self._ledgered.update(new)
        day = frame.get_column("ts").min().date()  # type: ignore[union-attr]
        counts = frame.group_by("symbol").len()
        rows = pl.DataFrame(
            {
                "provider": self.rest.name,
                "symbol": new,
                "interval": "1min",
                "start_date": day,
                "end_date": day + _DAY,
                "bars": counts.filter(pl.col("symbol").is_in(new)).sort("symbol")["len"],
                "fetched_at": self.clock(),
                "final": False,
                "job_id": self.state.id,
            },
            schema=LEDGER,
        )
        self.catalog.add_ledger(rows)

    def _save(self, status: str, *, finished: bool = False) -> None:
        """The state file, with ``status`` and a fresh heartbeat (``finished``: the last)."""
        with self._saving:
            if self.state.finished_at is not None:
                return  # the run has ended: a late heartbeat must not revive it
            self.state.status = status
            self.state.heartbeat_at = datetime.now(UTC)
            if finished:
                self.state.finished_at = self.state.heartbeat_at
            with contextlib.suppress(OSError):
                self.files.save(self.state.to_dict())


def _differences(before: pl.DataFrame, after: pl.DataFrame) -> tuple[int, int]:
    """Minutes whose values differ between two frames of bars, and those only ``after`` has."""
    cols = ["open", "high", "low", "close", "volume"]
    joined = after.join(before, on=bars.KEY, how="full", suffix="_live", coalesce=True)
    missing = joined.filter(pl.col("open_live").is_null()).height
    changed = pl.any_horizontal(
        [(pl.col(c) - pl.col(f"{c}_live")).abs().fill_null(1.0) > 1e-9 for c in cols]
    )
    return joined.filter(changed).height, missing


_DAY = timedelta(days=1)


def read_state(live: LiveArea, follower: str | None = None) -> dict[str, Any] | None:
    """The state file of ``follower`` (else of the follower of this lake that started last),
    as saved (times as ISO text), or None."""
    states = FollowerFiles(live.root, live.fs).load()
    if follower is not None:
        states = [s for s in states if s["id"] == follower]
    if not states:
        return None
    return FollowState(**_fields(states[-1])).to_dict()


def _fields(state: dict[str, Any]) -> dict[str, Any]:
    known = FollowState.__dataclass_fields__
    return {k: v for k, v in state.items() if k in known}
