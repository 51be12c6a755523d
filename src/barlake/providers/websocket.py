"""What the vendors' websocket streams share: JSON frames off one connection.

A frame is a JSON object or an array of them (Alpaca and Massive both send arrays); a lost
connection or a frame that is not JSON is a ``TransientError`` (the follower reconnects).
"""

from __future__ import annotations

from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from barlake.errors import TransientError


class JsonFrames:
    """A stream client's connection (``_socket``, None while closed) and its next frame."""

    name: str
    _socket: ClientConnection | None

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
