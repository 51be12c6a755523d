"""What the vendors' market-data stream emulators share: a websocket server on 127.0.0.1 that
publishes the demo's minute bars as a clock says they close, with the faults a real stream has.

A vendor emulator (``alpaca_stream``, ``polygon_stream``) says how its vendor greets, checks
credentials, acknowledges subscriptions and words bars; the base holds the connections and
the schedule. The clock is any ``Clock``: tests hand a ``ManualClock`` and call ``tick`` after
each step, so a whole session is fast-forwarded in a second; ``run`` ticks on its own for a
clock that moves by itself.

A minute's bars are due once the minute has ended (a bar is published when it closes, as the
vendors do). The values are the demo's (``demo.generate``, with the pre- and post-market bars the
REST emulators serve), so the REST emulator of the same vendor is the stream's final record:
``truth`` gives it.

Faults (``StreamFaults``), drawn from one seeded generator so a run repeats exactly:

============ ===============================================================================
drops        that many minutes, drawn at random, at which every connection is cut half-way
             through the minute's batch (the rest of it is never sent)
corrections  the share of bars sent first with wrong values (trades still arriving), then
             again as a correction with the true ones two minutes later
duplicates   the share of bars sent twice
late         the share of bars held back to the next minute's batch: they arrive after bars
             of a later minute (out of order)
silence      minutes, from a drawn start, whose bars are never sent: the stream goes quiet
============ ===============================================================================
"""

from __future__ import annotations

import asyncio
import random
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Self

import orjson
import polars as pl
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from barlake.clock import Clock
from barlake.domain.ranges import DateRange
from barlake.providers.demo import generate
from barlake.providers.emulators.base import _extended_hours

MINUTE = timedelta(minutes=1)
#: Minutes later that a corrected bar's true values follow it.
CORRECTION_DELAY = 2


@dataclass(frozen=True)
class StreamFaults:
    """What goes wrong on the stream (see the module's table)."""

    drops: int = 0
    corrections: float = 0.0
    duplicates: float = 0.0
    late: float = 0.0
    silence: int = 0
    seed: int = 0


@dataclass
class Connection:
    """One client: whether it has authenticated, and the symbols it follows."""

    socket: ServerConnection
    authenticated: bool = False
    symbols: set[str] = field(default_factory=set)
    updates: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Outgoing:
    """One bar to publish; ``updated`` for a correction of an earlier minute."""

    bar: dict[str, Any]
    updated: bool = False


class StreamEmulator(ABC):
    """A vendor's bar stream on 127.0.0.1, serving demo bars as ``clock`` closes them.

    ``symbols`` are those the vendor knows (others are acknowledged and never sent);
    ``max_connections`` the connections one key may hold at once (beyond it the vendor's
    refusal); ``sessions`` limits publishing to those dates (all when None).
    """

    vendor = "stream"

    def __init__(
        self,
        clock: Clock,
        symbols: Sequence[str],
        *,
        api_key: str = "test-key",
        api_secret: str | None = "test-secret",
        max_connections: int = 1,
        faults: StreamFaults | None = None,
        port: int = 0,
    ) -> None:
        self.clock, self.symbols = clock, sorted(set(symbols))
        self.api_key, self.api_secret = api_key, api_secret
        self.max_connections, self.port = max_connections, port
        self.faults = faults or StreamFaults()
        self.connections: list[Connection] = []
        #: Counters a test reads: connections accepted, cut by a drop fault, refused.
        self.accepted = self.dropped = self.refused = 0
        #: Bar messages sent (corrections and duplicates included).
        self.sent = 0
        #: The newest bar start the last ``tick`` sent to a connection (None: it sent none),
        #: so that a test can wait until a follower has read that far.
        self.newest: datetime | None = None
        self._rng = random.Random(self.faults.seed)
        self._published: datetime | None = None  # the last minute published
        self._began: datetime | None = None
        self._held: dict[datetime, list[Outgoing]] = {}  # minute to publish at -> bars
        self._truth: dict[date, pl.DataFrame] = {}
        self._plans: dict[date, tuple[set[datetime], set[datetime]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- what a vendor defines ---------------------------------------------------------------

    @abstractmethod
    def greeting(self) -> list[dict[str, Any]]:
        """The messages a new connection receives first."""

    @abstractmethod
    async def receive(self, conn: Connection, message: Any) -> bool:
        """Answer one client message (auth, subscribe); False closes the connection."""

    @abstractmethod
    def wire(self, bar: dict[str, Any], *, updated: bool) -> dict[str, Any] | None:
        """One bar (lake keying: symbol, ts, open, ...) as the vendor's message; None when
        the vendor sends no such message (a stream without corrections)."""

    def follows(self, conn: Connection, symbol: str, *, updated: bool) -> bool:
        return symbol in (conn.updates if updated else conn.symbols)

    # -- shared by the vendors ---------------------------------------------------------------

    async def send(self, conn: Connection, messages: list[dict[str, Any]]) -> None:
        """``messages`` as one JSON array frame, as both vendors batch them."""
        await conn.socket.send(orjson.dumps(messages).decode())

    def admit(self) -> bool:
        """Whether one more authenticated connection fits the key's limit."""
        return sum(c.authenticated for c in self.connections) < self.max_connections

    def truth(self, day: date) -> pl.DataFrame:
        """The session's minute bars of every known symbol: what the vendor's REST API serves
        once the session is over, and what the stream publishes, minute by minute."""
        frame = self._truth.get(day)
        if frame is None:
            frame = generate(self.symbols, "1min", DateRange(day, day + timedelta(days=1)))
            if frame.height:
                frame = _extended_hours(frame, MINUTE)
            self._truth = {day: frame}  # one session at a time is all a follower asks for
        return frame

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port unless one was given) in a background thread."""
        self._thread = threading.Thread(target=self._serve, name=f"{self.vendor}-stream")
        self._thread.daemon = True
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result()
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def tick(self) -> int:
        """Publish every bar due by the clock's "now"; returns how many messages went out."""
        if self._loop is None:
            msg = "the stream emulator is not running; call start() first"
            raise RuntimeError(msg)
        return asyncio.run_coroutine_threadsafe(self._publish(), self._loop).result()

    def drop(self) -> None:
        """Cut every connection now (a network failure)."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result()

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(self._listen())
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> Server:
        return await serve(
            self._handle, "127.0.0.1", self.port, compression=None, ping_interval=None
        )

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _cut(self) -> None:
        for conn in list(self.connections):
            conn.socket.transport.abort()  # no close frame: the network failed
        self.connections.clear()

    async def _handle(self, socket: ServerConnection) -> None:
        conn = Connection(socket)
        self.connections.append(conn)
        self.accepted += 1
        try:
            await self.send(conn, self.greeting())
            async for raw in socket:
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    message = None
                if not await self.receive(conn, message):
                    self.refused += 1
                    await socket.close()
                    break
        except ConnectionClosed:
            pass
        finally:
            if conn in self.connections:
                self.connections.remove(conn)

    # -- the schedule ------------------------------------------------------------------------

    async def _publish(self) -> int:
        self.newest = None
        now = self.clock()
        due = now.replace(second=0, microsecond=0) - MINUTE  # the last minute that has closed
        if self._published is None:
            self._published = self._began = due  # a stream starts now: no history
            return 0
        sent = 0
        minute = self._published + MINUTE
        while minute <= due:
            sent += await self._publish_minute(minute)
            minute += MINUTE
        self._published = max(self._published, due)
        return sent

    async def _publish_minute(self, minute: datetime) -> int:
        day = minute.date()
        truth = self.truth(day)
        drops, quiet = self._plan(day, truth)
        if minute in quiet:  # nothing at all: what was held back waits for the next minute
            held = self._held.pop(minute, [])
            self._held.setdefault(minute + MINUTE, []).extend(held)
            return 0
        rows = truth.filter(pl.col("ts") == minute).to_dicts()
        batch = self._held.pop(minute, [])
        for bar in rows:
            batch.extend(self._faulted(bar, minute))
        if not batch:
            return 0
        cut = minute in drops
        return await self._deliver(batch[: len(batch) // 2] if cut else batch, cut=cut)

    def _faulted(self, bar: dict[str, Any], minute: datetime) -> list[Outgoing]:
        f, rng = self.faults, self._rng
        corrected, duplicated, late = (rng.random() for _ in range(3))
        out = [Outgoing(bar)]
        if corrected < f.corrections:
            wrong = {**bar, "volume": bar["volume"] * 0.5, "close": bar["close"] * 1.001}
            wrong["high"] = max(wrong["high"], wrong["close"])
            out = [Outgoing(wrong)]
            later = minute + CORRECTION_DELAY * MINUTE
            self._held.setdefault(later, []).append(Outgoing(bar, updated=True))
        if duplicated < f.duplicates:
            out.append(out[0])
        if late < f.late:
            self._held.setdefault(minute + MINUTE, []).extend(out)
            return []
        return out

    async def _deliver(self, batch: list[Outgoing], *, cut: bool) -> int:
        sent = 0
        for conn in list(self.connections):
            if not conn.authenticated:
                continue
            wired = [
                w
                for o in batch
                if self.follows(conn, o.bar["symbol"], updated=o.updated)
                and (w := self.wire(o.bar, updated=o.updated)) is not None
            ]
            if not wired:
                continue
            try:
                await self.send(conn, wired)
                sent += len(wired)
            except ConnectionClosed:
                continue
            starts = [
                o.bar["ts"] for o in batch if self.follows(conn, o.bar["symbol"], updated=o.updated)
            ]
            self.newest = max([*starts, *([self.newest] if self.newest else [])])
        self.sent += sent
        if cut:
            self.dropped += len(self.connections)
            await self._cut()
        return sent

    def _plan(self, day: date, truth: pl.DataFrame) -> tuple[set[datetime], set[datetime]]:
        """The minutes of ``day`` at which connections drop, and the silent ones."""
        plan = self._plans.get(day)
        if plan is None:
            minutes: list[datetime] = truth.get_column("ts").unique().sort().to_list()
            # Faults fall inside the session and after the stream began (a follower is on).
            began = self._began or minutes[0]
            inner = [m for m in minutes[5:-5] if m > began]
            rng = random.Random(f"{self.faults.seed}:{day}")
            drops = set(rng.sample(inner, min(self.faults.drops, len(inner))))
            quiet: set[datetime] = set()
            if self.faults.silence and len(inner) > self.faults.silence:
                begin = rng.randrange(len(inner) - self.faults.silence)
                quiet = set(inner[begin : begin + self.faults.silence])
            plan = self._plans[day] = (drops - quiet, quiet)
        return plan
