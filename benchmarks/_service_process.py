"""``lake serve``'s app in a process of its own, for ``service.py``: the API and one worker on
the lake at ROOT, whose demo provider notes when it is first asked for bars.

    python benchmarks/_service_process.py ROOT LATENCY_MS [threads|processes]

``threads`` (the default) runs the worker in the API's process, as ``lake serve`` does on the
embedded catalog; ``processes`` runs it in a child process (``... ROOT LATENCY_MS worker``), as
``lake serve`` does on a PostgreSQL catalog (LAKE_CATALOG_URL). The token comes from
LAKE_API_TOKEN. The URL goes to stdout as one line once listening; the wall-clock time
(``time.time()``) of the first page asked of the provider is written to ROOT/first_request. It
serves until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import uvicorn

from barlake.api import create_app
from barlake.api.listener import listen
from barlake.lake import Lake
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoConfig, DemoProvider


class Stamping(DemoProvider):
    """The demo provider, writing down when it was first asked for a page."""

    def __init__(self, config: DemoConfig, stamp: Path) -> None:
        super().__init__(config)
        self.stamp = stamp

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        if not self.stamp.exists():
            self.stamp.write_text(repr(time.time()))
        return await super().fetch_page(request, cursor)


def main() -> None:
    root, latency = Path(sys.argv[1]), float(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "threads"
    provider = Stamping(DemoConfig(latency_ms=latency), root / "first_request")
    lake = Lake.open(root, providers={"demo": provider})
    if mode == "worker":
        worker = lake.worker()
        signal.signal(signal.SIGTERM, lambda *_: worker.stop())
        worker.run()
        return
    child = None
    if mode == "processes":
        child = subprocess.Popen([sys.executable, __file__, str(root), str(latency), "worker"])
    app = create_app(lake, token=os.environ["LAKE_API_TOKEN"], workers=int(child is None))
    listener = listen("127.0.0.1", 0)
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        if child is not None:
            child.terminate()
            child.wait(60)


if __name__ == "__main__":
    main()
