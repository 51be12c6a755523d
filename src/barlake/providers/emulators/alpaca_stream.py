"""Alpaca's real-time market-data stream (``wss://stream.data.alpaca.markets/v2/{feed}``) on
loopback, JSON-encoded.

The vendor's protocol, as its documentation and official client (``alpaca-py``) have it: every
frame is a JSON array of messages. On connect ``[{"T":"success","msg":"connected"}]``; the
client sends ``{"action":"auth","key":...,"secret":...}`` and gets ``authenticated`` or an
error; then ``{"action":"subscribe","bars":[...],"updatedBars":[...]}``, acknowledged with a
``subscription`` message listing every channel. Minute bars are ``{"T":"b","S","o","h","l",
"c","v","vw","n","t"}`` (``t`` RFC 3339 in UTC, the bar's start); ``T:"u"`` is an updated bar,
sent when late trades change a minute already sent. Errors are ``{"T":"error","code","msg"}``:
402 auth failed, 406 connection limit exceeded (one connection per key on most plans), 409
insufficient subscription (the ``sip`` feed without a plan for it), 401 not authenticated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from websockets.asyncio.server import ServerConnection

from barlake.clock import Clock
from barlake.providers.emulators.stream import Connection, StreamEmulator, StreamFaults

CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


def error(code: int, message: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": message}


class AlpacaStreamEmulator(StreamEmulator):
    """Alpaca's stream: ``feeds`` are those the key's plan may use (``iex`` on the free one);
    the path (``/v2/iex``, ``/v2/sip``) chooses the feed."""

    vendor = "alpaca"

    def __init__(
        self,
        clock: Clock,
        symbols: Sequence[str],
        *,
        api_key: str = "test-key",
        api_secret: str | None = "test-secret",
        max_connections: int = 1,
        faults: StreamFaults | None = None,
        feeds: Sequence[str] = ("iex",),
        port: int = 0,
    ) -> None:
        super().__init__(
            clock,
            symbols,
            api_key=api_key,
            api_secret=api_secret,
            max_connections=max_connections,
            faults=faults,
            port=port,
        )
        self.feeds = tuple(feeds)

    def greeting(self) -> list[dict[str, Any]]:
        return [{"T": "success", "msg": "connected"}]

    async def receive(self, conn: Connection, message: Any) -> bool:
        action = message.get("action") if isinstance(message, dict) else None
        if action == "auth":
            return await self._auth(conn, message)
        if not conn.authenticated:
            await self.send(conn, [error(401, "not authenticated")])
            return False
        if action in ("subscribe", "unsubscribe"):
            for channel, bucket in (("bars", conn.symbols), ("updatedBars", conn.updates)):
                names = [str(s).upper() for s in message.get(channel) or []]
                if action == "subscribe":
                    bucket.update(names)
                else:
                    bucket.difference_update(names)
            listed: dict[str, list[str]] = {c: [] for c in CHANNELS} | {
                "bars": sorted(conn.symbols),
                "updatedBars": sorted(conn.updates),
            }
            await self.send(conn, [{"T": "subscription", **listed}])
            return True
        await self.send(conn, [error(400, "invalid syntax")])
        return True

    async def _auth(self, conn: Connection, message: dict[str, Any]) -> bool:
        if message.get("key") != self.api_key or message.get("secret") != self.api_secret:
            await self.send(conn, [error(402, "auth failed")])
            return False
        if _feed(conn.socket) not in self.feeds:
            await self.send(conn, [error(409, "insufficient subscription")])
            return False
        if not self.admit():
            await self.send(conn, [error(406, "connection limit exceeded")])
            return False
        conn.authenticated = True
        await self.send(conn, [{"T": "success", "msg": "authenticated"}])
        return True

    def wire(self, bar: dict[str, Any], *, updated: bool) -> dict[str, Any]:
        return {
            "T": "u" if updated else "b",
            "S": bar["symbol"],
            "o": bar["open"],
            "h": bar["high"],
            "l": bar["low"],
            "c": bar["close"],
            "v": bar["volume"],
            "vw": bar["vwap"],
            "n": bar["trades"],
            "t": bar["ts"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _feed(socket: ServerConnection) -> str:
    path = socket.request.path if socket.request is not None else ""
    return path.rstrip("/").rsplit("/", 1)[-1]
