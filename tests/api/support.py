"""Helpers of the API tests: a ``lake serve`` app on a real loopback port (uvicorn in a
thread), over a demo lake whose provider counts what it is asked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from barlake.api import create_app
from barlake.lake import Lake
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoProvider, demo_listing_date

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)  # a Wednesday evening, after the close
TOKEN = "s3cret-token-for-tests"
#: Symbols the demo lists for all of 2024-2025.
SYMBOLS = [s for s in (f"S{i:03d}" for i in range(120)) if demo_listing_date(s) is None][:50]


class CountingDemo(DemoProvider):
    """The demo provider, remembering every page it served: (symbols, interval, range)."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: NOW)
        self.asked: list[tuple[tuple[str, ...], str, Any]] = []
        self.first_at: float | None = None

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.asked.append((tuple(sorted(request.symbols)), request.interval, request.range))
        return await super().fetch_page(request, cursor)


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (a hang guard of two minutes, not a timing)."""
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.05)


@dataclass
class Served:
    """A running app: its lake, its provider and a client on its URL."""

    lake: Lake
    provider: CountingDemo
    url: str
    client: httpx.Client
    auth: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {TOKEN}"})

    def wait(self, request_id: str, *, ends: tuple[str, ...] = ("done",)) -> dict[str, Any]:
        """Poll the request until it reaches a final state, which must be one of ``ends``."""
        found: dict[str, Any] = {}

        def final() -> bool:
            found.update(self.client.get(f"/backfills/{request_id}").json())
            return found["state"] in ("done", "failed", "cancelled")

        eventually(final, f"request {request_id} finishing")
        assert found["state"] in ends, found
        return found


@contextmanager
def serving(
    lake: Lake, *, workers: int = 1, token: str | None = TOKEN, public_reads: bool = True
) -> Iterator[str]:
    """``create_app`` served by uvicorn on a free loopback port; yields its URL."""
    app = create_app(lake, token=token, workers=workers, public_reads=public_reads)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def demo_lake(root: Path, symbols: list[str], config: str = "") -> tuple[Lake, CountingDemo]:
    """A new lake at ``root`` tracking ``symbols``, on the fixed clock and a counting demo."""
    Lake.init(root, clock=lambda: NOW)
    if config:
        (root / "lake.yaml").write_text(config)
    provider = CountingDemo()
    lake = Lake.open(root, clock=lambda: NOW, providers={"demo": provider})
    lake.add_symbols(symbols)
    return lake, provider
