"""Alpaca's real-time market-data stream: minute bars and their corrections over websockets.

``wss://stream.data.alpaca.markets/v2/{feed}``, JSON-encoded: every frame is a JSON array of
messages (see ``emulators.alpaca_stream`` for the protocol). The client authenticates with the
same key and secret as the REST API, subscribes ``bars`` and ``updatedBars`` for the followed
symbols, and turns ``T:"b"`` and ``T:"u"`` messages into bars in the lake's schema. Errors: 402
(auth failed) is an ``AuthError``; 406 (connection limit: one per key on most plans) and 409
(insufficient subscription) are ``PermanentError``s, which no reconnect would cure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from barlake.config import ProviderConfig
from barlake.config import parse as parse_config
from barlake.errors import AuthError, PermanentError, ProviderError, TransientError
from barlake.providers.alpaca import KEY_ENV, NAME, SECRET_ENV, AlpacaOptions
from barlake.providers.http import Credentials, credentials
from barlake.providers.stream import Batch
from barlake.providers.websocket import JsonFrames
from barlake.providers.wire import wire_bars

STREAM_URL = "wss://stream.data.alpaca.markets"
#: Error codes that stop a follower: no reconnect changes the key, the plan or the limit.
TERMINAL: dict[int, type[ProviderError]] = {
    402: AuthError,
    406: PermanentError,
    409: PermanentError,
}
ADVICE = {
    402: "check APCA_API_KEY_ID and APCA_API_SECRET_KEY",
    406: "another connection holds this key's stream; follow every selection from one process",
    409: "the plan does not include this feed; set providers.alpaca.options.feed: iex",
}


class AlpacaStream(JsonFrames):
    """One connection to Alpaca's stream (``LiveSource``)."""

    def __init__(
        self,
        config: ProviderConfig | None = None,
        *,
        name: str = NAME,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        config = config or ProviderConfig()
        self.name = name
        self.options = parse_config(AlpacaOptions, config.options, f"providers.{name}.options")
        self.url = f"{(self.options.stream_url or STREAM_URL).rstrip('/')}/v2/{self.options.feed}"
        self.timeout_s = config.timeout_s
        self._environ = environ
        self._socket: ClientConnection | None = None

    async def open(self, symbols: Sequence[str]) -> None:
        creds = credentials(
            self.name, self.options.model_dump(), KEY_ENV, SECRET_ENV, self._environ
        )
        await self._connect(creds)
        await self._expect("connected", creds)
        await self._send({"action": "auth", "key": creds.key, "secret": creds.secret}, creds)
        await self._expect("authenticated", creds)
        names = list(symbols)
        await self._send({"action": "subscribe", "bars": names, "updatedBars": names}, creds)
        await self._expect("subscription", creds)

    async def receive(self) -> Batch:
        messages = await self._frame()
        objects = [m for m in messages if m.get("T") in ("b", "u")]
        for m in messages:
            if m.get("T") == "error":
                raise _error(self.name, m)
        frame = wire_bars(
            self.name,
            objects,
            symbols=[str(m.get("S")) for m in objects],
            source=self.name,
            stamps="rfc3339",
        )
        return Batch(frame, sum(m.get("T") == "u" for m in objects))

    async def _send(self, message: dict[str, Any], creds: Credentials) -> None:
        assert self._socket is not None
        try:
            await self._socket.send(orjson.dumps(message).decode())
        except ConnectionClosed as exc:
            msg = f"{self.name} stream closed while sending: {creds.redact(str(exc))}"
            raise TransientError(msg) from None

    async def _expect(self, what: str, creds: Credentials) -> None:
        """Read frames until one says ``what`` (a ``success`` message or the subscription)."""
        while True:
            for m in await self._frame():
                if m.get("T") == "error":
                    raise _error(self.name, m)
                if m.get("T") == "subscription" and what == "subscription":
                    return
                if m.get("T") == "success" and m.get("msg") == what:
                    return


def _error(vendor: str, message: Mapping[str, Any]) -> ProviderError:
    code = message.get("code")
    text = str(message.get("msg", "error"))
    kind: type[ProviderError] = TransientError
    if isinstance(code, int):
        kind = TERMINAL.get(code, TransientError)
    advice = ADVICE.get(code, "reconnecting") if isinstance(code, int) else "reconnecting"
    return kind(f"{vendor} stream refused: {text} (error {code}); {advice}")
