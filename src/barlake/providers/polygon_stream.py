"""Polygon.io / Massive's real-time stocks stream: minute aggregates (``AM``) over websockets.

``wss://socket.massive.com/stocks`` (``delayed.massive.com`` for the 15-minute delayed feed;
the former ``polygon.io`` hosts answer alike), JSON arrays of events (see
``emulators.polygon_stream`` for the protocol). The client authenticates with the REST API's
key (``{"action":"auth","params":KEY}``), subscribes ``AM.<ticker>`` for each followed symbol
and turns ``AM`` events into bars in the lake's schema (``s``, the window start in epoch
milliseconds, is the bar's ``ts``). The vendor sends no corrections as such: a second ``AM`` of
a minute already received replaces it, and is counted as a correction when its values differ.
Statuses: ``auth_failed`` is an ``AuthError``; ``max_connections`` (one connection per key and
cluster: the vendor closes the older one when another opens) a ``PermanentError``, which no
reconnect would cure, since reconnecting would close the other process's connection in turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.errors import AuthError, PermanentError, ProviderError, TransientError
from barlake.providers.http import Credentials, credentials
from barlake.providers.polygon import KEY_ENV, NAME, PolygonOptions
from barlake.providers.stream import Batch
from barlake.providers.websocket import JsonFrames
from barlake.providers.wire import wire_columns

#: The stocks cluster's host of each feed.
HOSTS = {"realtime": "wss://socket.massive.com", "delayed": "wss://delayed.massive.com"}
#: Statuses that stop a follower: no reconnect changes the key or the limit.
TERMINAL: dict[str, type[ProviderError]] = {
    "auth_failed": AuthError,
    "max_connections": PermanentError,
}
ADVICE = {
    "auth_failed": "check POLYGON_API_KEY (or MASSIVE_API_KEY)",
    "max_connections": "another connection took this key's stream; follow every selection "
    "from one process",
}
_COLUMNS = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "vwap": "vw"}


class PolygonStream(JsonFrames):
    """One connection to Massive's stocks stream (``LiveSource``)."""

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        name: str = NAME,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(PolygonOptions, config.options, f"providers.{name}.options")
        root = self.options.stream_url or HOSTS[self.options.stream_feed]
        self.url = f"{root.rstrip('/')}/stocks"
        self.timeout_s = config.timeout_s
        self._env = KEY_ENV if name == NAME else KEY_ENV[::-1]
        self._environ = environ
        self._socket: ClientConnection | None = None
        self._creds: Credentials | None = None
        #: The values last received of each (symbol, start) of the day: a repeat that differs
        #: is a correction, one that does not a duplicate.
        self._received: dict[tuple[str, int], tuple[Any, ...]] = {}
        self._day: date | None = None

    async def open(self, symbols: Sequence[str]) -> None:
        creds = self._creds = credentials(
            self.name, self.options.model_dump(), self._env, (), self._environ
        )
        await self._connect(creds)
        topics = [f"AM.{s}" for s in sorted(set(symbols))]
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._expect({"connected"})
                await self._send({"action": "auth", "params": creds.key})
                await self._expect({"auth_success"})
                await self._send({"action": "subscribe", "params": ",".join(topics)})
                await self._expect({f"subscribed to: {t}" for t in topics})
        except TimeoutError:
            await self.aclose()
            msg = f"{self.name} stream did not acknowledge within {self.timeout_s:g} s; retrying"
            raise TransientError(msg) from None

    async def receive(self) -> Batch:
        events = await self._frame()
        for e in events:
            if e.get("ev") == "status":
                self._check(e)
        aggregates = [e for e in events if e.get("ev") == "AM"]
        columns: dict[str, list[Any]] = {"ts": [e.get("s") for e in aggregates]}
        for name, key in _COLUMNS.items():
            columns[name] = [e.get(key) for e in aggregates]
        frame = wire_columns(
            columns,
            symbols=[str(e.get("sym")) for e in aggregates],
            source=self.name,
            stamps="ms",
        )
        return Batch(frame, self._corrections(aggregates, frame))

    def _corrections(self, aggregates: list[dict[str, Any]], frame: Any) -> int:
        """How many of ``aggregates`` replace a minute received before with other values."""
        changed = 0
        for event, start in zip(aggregates, frame.get_column("ts"), strict=True):
            if start is None:
                continue
            if start.date() != self._day:
                self._received.clear()
                self._day = start.date()
            key = (str(event.get("sym")), int(event.get("s") or 0))
            values = tuple(event.get(k) for k in _COLUMNS.values())
            before = self._received.get(key)
            changed += before is not None and before != values
            self._received[key] = values
        return changed

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._socket is not None
        try:
            await self._socket.send(orjson.dumps(message).decode())
        except ConnectionClosed as exc:
            msg = f"{self.name} stream closed while sending: {self._redact(str(exc))}"
            raise TransientError(msg) from None

    async def _expect(self, wanted: set[str]) -> None:
        """Read frames until statuses have said each of ``wanted`` (a status, or a success
        message such as ``subscribed to: AM.AAPL``)."""
        left = set(wanted)
        while left:
            for e in await self._frame():
                if e.get("ev") != "status":
                    continue
                self._check(e)
                left.discard(str(e.get("status")))
                if e.get("status") == "success":
                    left.discard(str(e.get("message")))

    def _check(self, event: Mapping[str, Any]) -> None:
        """Raise the error a status event means: a terminal one, or a refusal to reconnect
        from (``auth_timeout``, ``auth_required``); other statuses pass."""
        kind = str(event.get("status"))
        if kind in ("connected", "auth_success", "success"):
            return
        text = self._redact(str(event.get("message", kind))).rstrip(".")
        error = TERMINAL.get(kind)
        if error is not None:
            msg = f"{self.name} stream refused: {text} ({kind}); {ADVICE[kind]}"
            raise error(msg)
        if kind in ("auth_timeout", "auth_required"):
            msg = f"{self.name} stream refused: {text} ({kind}); reconnecting"
            raise TransientError(msg)

    def _redact(self, text: str) -> str:
        return self._creds.redact(text) if self._creds is not None else text
