"""What a request body may be before any route sees it: JSON, and at most ``MAX_BODY`` bytes.

A pure ASGI middleware: it reads the body once (refusing it as soon as it grows too large, so a
client cannot make the server hold an unbounded body), then replays it to the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from barlake.views.serialize import dumps

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The largest body accepted (a batch of layer updates for 10,000 symbols fits).
MAX_BODY = 1 << 20

_WITH_BODY = {"POST", "PUT", "PATCH"}


class BodyLimits:
    """Refuse bodies over ``max_body`` bytes (413) and bodies that are not JSON (415)."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            await _problem(send, 413, self._too_large())
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _problem(send, 413, self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and not (kind == "application/json" or kind.endswith("+json")):
            shown = kind[:60] or "none"
            msg = f"send the body as JSON with `Content-Type: application/json` (got {shown})"
            await _problem(send, 415, msg)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the body is larger than {self.max_body:,} bytes; send fewer items per request"


async def _problem(send: Send, status: int, detail: str) -> None:
    payload = dumps({"detail": detail}, indent=None).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
