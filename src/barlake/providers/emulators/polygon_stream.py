"""Polygon.io / Massive's stocks stream (``wss://socket.massive.com/stocks``, formerly
``socket.polygon.io``; ``delayed.`` for the 15-minute delayed feed) on loopback.

The vendor's protocol, as its documentation and official client (``polygon-io/client-python``,
``polygon/websocket``) have it: every frame is a JSON array of events, each with ``ev``. On
connect ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``; the
client sends ``{"action":"auth","params":KEY}`` and gets ``auth_success`` (``"authenticated"``)
or ``auth_failed`` (``"authentication failed"``), after which the server closes the
connection. ``{"action":"subscribe","params":"AM.AAPL,AM.MSFT"}`` (``AM.*``: every ticker) is
acknowledged with one ``{"ev":"status","status":"success","message":"subscribed to: AM.AAPL"}``
per topic. Minute aggregates are ``{"ev":"AM","sym","v","av","op","vw","o","c","h","l","a",
"z","s","e"}``: ``v`` the minute's volume, ``av`` the day's so far, ``op`` the day's official
open, ``vw`` the minute's VWAP and ``a`` the day's, ``z`` the average trade size, ``s`` and
``e`` the window's start and end in epoch milliseconds. A minute without trades sends nothing.

There are no correction messages: trades arriving late for a minute already sent produce a
second ``AM`` of that minute, which replaces the first (the base's corrections send one, two
minutes later). A key holds one connection per cluster (the vendor's knowledge base); one more
authenticated connection does not refuse the newcomer: the oldest is sent
``{"ev":"status","status":"max_connections","message":...}`` and closed (code 1008, as
clients report it), and the newcomer streams. [INFERRED] the ``unsubscribed from:`` wording,
the answer to a message before auth (``auth_required``, then the close), ``op`` as 0 before
the open, and ``z`` rounded to whole shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from barlake.calendars.calendar import get_calendar
from barlake.clock import Clock
from barlake.errors import UsageError
from barlake.providers.emulators.stream import (
    MINUTE,
    Connection,
    StreamEmulator,
    StreamFaults,
)

CONNECTED = "Connected Successfully"
MAX_CONNECTIONS = (
    "Maximum number of websocket connections exceeded. You have reached the connection "
    "limit for your account. Please contact support to increase your limit."
)
#: The websocket close code of an evicted connection (policy violation).
EVICTED = 1008


def status(kind: str, message: str) -> dict[str, Any]:
    return {"ev": "status", "status": kind, "message": message}


class PolygonStreamEmulator(StreamEmulator):
    """Massive's stocks cluster: one key (``api_key``; ``api_secret`` is not used), the ``AM``
    channel, ``max_connections`` connections per key before the oldest is evicted."""

    vendor = "polygon"

    def __init__(
        self,
        clock: Clock,
        symbols: Sequence[str],
        *,
        api_key: str = "test-key",
        max_connections: int = 1,
        faults: StreamFaults | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(
            clock,
            symbols,
            api_key=api_key,
            api_secret=None,
            max_connections=max_connections,
            faults=faults,
            port=port,
        )
        #: Connections closed because a newer one took their place.
        self.evicted = 0
        self._day: dict[tuple[str, datetime], tuple[float, float, float]] = {}
        self._day_of: date | None = None

    def greeting(self) -> list[dict[str, Any]]:
        return [status("connected", CONNECTED)]

    async def receive(self, conn: Connection, message: Any) -> bool:
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            return await self._auth(conn, str(message.get("params", "")))
        if not conn.authenticated:
            await self.send(conn, [status("auth_required", "authentication required")])
            return False
        if action in ("subscribe", "unsubscribe"):
            topics = [t.strip() for t in str(message.get("params", "")).split(",") if t.strip()]
            said = []
            for topic in topics:
                channel, _, ticker = topic.partition(".")
                if channel != "AM" or not ticker:
                    said.append(status("error", f"invalid subscription: {topic}"))
                    continue
                names = set(self.symbols) if ticker == "*" else {ticker.upper()}
                if action == "subscribe":
                    conn.symbols |= names
                    said.append(status("success", f"subscribed to: {topic}"))
                else:
                    conn.symbols -= names
                    said.append(status("success", f"unsubscribed from: {topic}"))
            await self.send(conn, said)
            return True
        await self.send(conn, [status("error", "invalid action")])
        return True

    async def _auth(self, conn: Connection, key: str) -> bool:
        if key != self.api_key:
            await self.send(conn, [status("auth_failed", "authentication failed")])
            return False
        while not self.admit():
            oldest = next(c for c in self.connections if c.authenticated)
            oldest.authenticated = False
            self.connections.remove(oldest)
            self.evicted += 1
            await self.send(oldest, [status("max_connections", MAX_CONNECTIONS)])
            await oldest.socket.close(EVICTED, "max connections")
        conn.authenticated = True
        await self.send(conn, [status("auth_success", "authenticated")])
        return True

    def follows(self, conn: Connection, symbol: str, *, updated: bool) -> bool:
        return symbol in conn.symbols  # one channel: a later AM of a minute replaces it

    def wire(self, bar: dict[str, Any], *, updated: bool) -> dict[str, Any]:
        start: datetime = bar["ts"]
        day_volume, day_open, day_vwap = self._so_far(bar["symbol"], start)
        ms = int(start.timestamp() * 1000)
        trades = bar.get("trades") or 0
        return {
            "ev": "AM",
            "sym": bar["symbol"],
            "v": _shares(bar["volume"]),
            "av": _shares(day_volume),
            "op": day_open,
            "vw": bar["vwap"],
            "o": bar["open"],
            "c": bar["close"],
            "h": bar["high"],
            "l": bar["low"],
            "a": day_vwap,
            "z": round(bar["volume"] / trades) if trades else 0,
            "s": ms,
            "e": ms + int(MINUTE.total_seconds() * 1000),
        }

    def _so_far(self, symbol: str, minute: datetime) -> tuple[float, float, float]:
        """The day's volume, official open and VWAP of ``symbol`` through ``minute``."""
        if self._day_of != minute.date():
            opens = _open(minute.date())
            frame = self.truth(minute.date()).sort("symbol", "ts")
            traded = pl.col("volume").cum_sum().over("symbol")
            value = (pl.col("vwap").fill_null(pl.col("close")) * pl.col("volume")).cum_sum()
            official = pl.col("open").filter(pl.col("ts") >= opens).first().over("symbol")
            frame = frame.with_columns(
                traded.alias("av"),
                pl.when(pl.col("ts") >= opens).then(official).otherwise(0.0).alias("op"),
                (value.over("symbol") / traded).fill_nan(None).alias("a"),
            )
            self._day = {
                (s, t): (av, op, a if a is not None else 0.0)
                for s, t, av, op, a in frame.select("symbol", "ts", "av", "op", "a").iter_rows()
            }
            self._day_of = minute.date()
        return self._day.get((symbol, minute), (0.0, 0.0, 0.0))


def _open(day: date) -> datetime:
    """The regular open of ``day`` (a day without a session: never)."""
    try:
        return get_calendar("XNYS").open_close(day)[0]
    except UsageError:
        return datetime.max.replace(tzinfo=UTC)


def _shares(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
