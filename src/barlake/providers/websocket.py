"""What the vendors' websocket streams share: JSON frames off one connection.

A frame is a JSON object or an array of them (Alpaca and Massive both send arrays); a lost
connection or a frame that is not JSON is a ``TransientError`` (the follower reconnects).
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from barlake.errors import TransientError
from barlake.providers.http import Credentials


class JsonFrames:
    """A stream client's connection to ``url`` (``_socket``, None while closed): opening it,
    its next frame, closing it."""

    name: str
    url: str
    timeout_s: float
    _socket: ClientConnection | None

    async def _connect(self, creds: Credentials) -> None:
        """(Re)open the connection; TransientError (``creds`` kept out of it) when it fails."""
        await self.aclose()
        try:
            self._socket = await connect(
                self.url, compression=None, open_timeout=self.timeout_s, max_size=None
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            msg = f"{self.name} stream: cannot connect to {self.url}: {creds.redact(str(exc))}"
            raise TransientError(msg) from None

    async def aclose(self) -> None:
        """Close the connection."""
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()

    async def _frame(self) -> list[dict[str, Any]]:
        """The objects of the next frame; TransientError when the connection is lost."""
        if self._socket is None:
            msg = f"{self.name} stream is not open"
            raise TransientError(msg)
        try:
            raw = await self._socket.recv()
        except ConnectionClosed:
            self._socket = None
            msg = f"{self.name} stream connection lost"
            raise TransientError(msg) from None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            msg = f"{self.name} stream sent a frame that is not JSON"
            raise TransientError(msg) from None
        items = data if isinstance(data, list) else [data]
        return [e for e in items if isinstance(e, dict)]
