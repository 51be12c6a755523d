"""What every vendor emulator shares: a threaded HTTP server on loopback, the vendor-style rate
limit, fault injection, and the demo generator's bars.

A vendor emulator (``alpaca``, ``polygon``) subclasses ``Emulator`` and says how its vendor
checks credentials, words errors and routes paths; the base runs each request through the same
steps: credentials, rate limit, faults drawn, route, reply. Bars always come from
``barlake.providers.demo.generate``, so every provider serves the same values; trades from
``emulators.trades`` (the demo's prints unless a truth is given).

``latency_s`` holds every answer back that long, as a vendor's network and servers would; the
server answers each connection in its own thread, so concurrent requests wait side by side.

The faults are described in ``faults``.

``duplicates`` counts the answers of 200 to a request already answered 200 before (the same
path and query, credentials aside): work a client did twice. ``arrivals`` holds when each
request came and its answer's status.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

import orjson
import polars as pl

from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.providers.demo import generate
from barlake.providers.demo.grids import clock_bars
from barlake.providers.emulators.faults import Faults, corrupt
from barlake.providers.emulators.trades import TradeBook, Truth, demo_truth

#: Query parameters that carry credentials (Polygon's ``apiKey``): not part of what a request
#: asks for.
CREDENTIAL_PARAMS = frozenset({"apiKey", "apikey", "api_key"})


@dataclass(frozen=True)
class Quota:
    """A rate-limit decision and what the vendor's headers say about it."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # unix seconds when the oldest request leaves the window
    retry_after: float


class RateLimit:
    """At most ``per_minute`` requests per sliding ``window_s`` (default one minute)."""

    def __init__(self, per_minute: float | None, *, window_s: float = 60.0) -> None:
        self.limit = max(1, int(per_minute)) if per_minute else 0
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> Quota:
        """The decision on one more request, counted when allowed."""
        return self._quota(count=True)

    def peek(self) -> Quota:
        """What the window holds now, counting nothing (for answers refused before it)."""
        return self._quota(count=False)

    def _quota(self, *, count: bool) -> Quota:
        now = time.time()
        with self._lock:
            if not self.limit:
                return Quota(allowed=True, limit=0, remaining=0, reset=now, retry_after=0)
            while self._times and self._times[0] <= now - self.window_s:
                self._times.popleft()
            allowed = len(self._times) < self.limit
            if allowed and count:
                self._times.append(now)
            reset = (self._times[0] if self._times else now) + self.window_s
            remaining = self.limit - len(self._times)
            return Quota(allowed, self.limit, remaining, reset, max(0.0, reset - now))


@dataclass
class Reply:
    """An answer before it is encoded: a status, a JSON body (or bytes) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class Emulator(ABC):
    """A vendor's HTTP API on 127.0.0.1, serving demo bars. Use as a context manager."""

    vendor: ClassVar[str] = "emulator"
    #: Whether the vendor stamps intraday bars on the clock grid (a 09:30 open's first hour
    #: at 09:00, ``demo.grids``) rather than from the open.
    clock_grid: ClassVar[bool] = False

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        api_secret: str | None = "test-secret",
        rate_limit: float | None = None,
        window_s: float = 60.0,
        faults: str | Mapping[str, float] | None = None,
        seed: int = 0,
        symbols: Sequence[str] | None = None,
        now: datetime | None = None,
        slow_s: float = 0.2,
        hang_s: float = 3.0,
        latency_s: float = 0.0,
        port: int = 0,
        trades: Truth | None = None,
        trades_per_minute: int | None = None,
    ) -> None:
        self.api_key, self.api_secret = api_key, api_secret
        self.rate = RateLimit(rate_limit, window_s=window_s)
        self.faults = Faults(faults, seed=seed)
        self.symbols = frozenset(symbols) if symbols is not None else None
        self.now, self.slow_s, self.hang_s, self.port = now, slow_s, hang_s, port
        self.latency_s = max(0.0, latency_s)
        #: ``(status, path)`` of every request served, without query strings (no keys).
        self.log: list[tuple[int, str]] = []
        #: ``(unix time, status)`` of every request, as it arrived.
        self.arrivals: list[tuple[float, int]] = []
        #: Answers of 200 to a request answered 200 before.
        self.duplicates = 0
        self._answered: set[bytes] = set()
        self._answered_lock = threading.Lock()
        self._stopped = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cache: dict[tuple[Any, ...], pl.DataFrame] = {}
        self._cache_lock = threading.Lock()
        #: The prints the trades endpoints serve (``emulators.trades``): ``trades`` when given,
        #: else the demo's, ``trades_per_minute`` a minute when given.
        self.tape = TradeBook(trades or demo_truth(trades_per_minute), self.symbols)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 (a free port unless one was given) in a background thread."""
        self._stopped.clear()
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.emulator = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() returns at once
            name=f"{self.vendor}-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; answers held back by slow or timeout faults are dropped."""
        self._stopped.set()
        server, self._server = self._server, None  # stop twice, or from two threads: once
        if server is not None:
            server.shutdown()
            server.server_close()

    def wait(self) -> None:
        """Block until ``stop`` (or KeyboardInterrupt)."""
        while not self._stopped.wait(0.5):
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return len(self.log)

    def forget(self) -> None:
        """Start the record afresh: ``log``, ``arrivals`` and ``duplicates``."""
        with self._answered_lock:
            self.log.clear()
            self.arrivals.clear()
            self._answered.clear()
            self.duplicates = 0

    # -- what a vendor defines ---------------------------------------------------------------

    @abstractmethod
    def authorize(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply | None:
        """None when the credentials are right, else the vendor's refusal."""

    @abstractmethod
    def route(self, path: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        """The answer to an authorised, admitted request."""

    @abstractmethod
    def error(self, status: int, message: str) -> Reply:
        """An error in the vendor's shape."""

    def quota_headers(self, quota: Quota) -> dict[str, str]:
        """The vendor's rate-limit headers, sent with every answer (refusals included)."""
        return {}

    def rate_limited(self, quota: Quota) -> Reply:
        return self.error(429, "rate limit exceeded")

    # -- shared helpers ----------------------------------------------------------------------

    def bars(self, symbols: Sequence[str], interval: Interval, window: DateRange) -> pl.DataFrame:
        """Demo bars of the known ``symbols`` (lake keying), on the vendor's grid; intraday ones
        with extended hours."""
        known = sorted(s for s in set(symbols) if self.symbols is None or s in self.symbols)
        key = (tuple(known), interval, window, self.now)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        make = clock_bars if self.clock_grid else generate
        frame = make(known, interval, window, now=self.now)
        if spec(interval).intraday and frame.height:
            frame = _extended_hours(frame, spec(interval).length)
        with self._cache_lock:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = frame
        return frame

    def corrupt(
        self, frame: pl.DataFrame, faults: frozenset[str], before: datetime
    ) -> pl.DataFrame:
        """``frame`` (one page, lake keying) with the data faults in ``faults``."""
        return corrupt(frame, faults, self.faults.rng, before)

    @staticmethod
    def request_id() -> str:
        return uuid.uuid4().hex

    # -- one request -------------------------------------------------------------------------

    def _respond(
        self, path: str, query: Mapping[str, str], headers: Mapping[str, str], target: str = ""
    ) -> tuple[Reply, frozenset[str]]:
        refusal = self.authorize(query, headers)
        if refusal is not None:
            refusal.headers.update(self.quota_headers(self.rate.peek()))
            return refusal, frozenset()
        quota = self.rate.admit()
        if not quota.allowed:
            reply, faults = self.rate_limited(quota), frozenset[str]()
        else:
            faults = self.faults.draw()
            if "5xx" in faults:
                reply = self.error(500, "internal server error")
            elif "echo" in faults:
                said = f"upstream error for GET {self.url}{target} (params {dict(query)})"
                reply = self.error(500, said)
            else:
                reply = self.route(path, query, faults)
        reply.headers.update(self.quota_headers(quota))
        return reply, faults

    def _served(self, path: str, query: Mapping[str, str], status: int, arrived: float) -> None:
        asked = [path, *sorted(f"{k}={v}" for k, v in query.items() if k not in CREDENTIAL_PARAMS)]
        digest = hashlib.blake2b("\n".join(asked).encode(), digest_size=16).digest()
        with self._answered_lock:
            self.log.append((status, path))
            self.arrivals.append((arrived, status))
            if status != 200:
                return
            if digest in self._answered:
                self.duplicates += 1
            else:
                self._answered.add(digest)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            reply, faults = self._respond(parts.path, query, headers, handler.path)
        except Exception as exc:  # an emulator bug must still answer, and say what it was
            reply, faults = (
                self.error(500, f"emulator error: {type(exc).__name__}: {exc}"),
                frozenset(),
            )
        self._served(parts.path, query, reply.status, arrived)
        body = reply.body if isinstance(reply.body, bytes) else _encode(reply.body, faults)
        cut = reply.status == 200 and bool(faults & {"truncated", "malformed"})
        if cut and "malformed" in faults:
            body = body[: len(body) // 2]
        gzipped = "gzip" in headers.get("accept-encoding", "") and len(body) > 1024
        if gzipped:
            body = gzip.compress(body, compresslevel=1)
        delay = self.hang_s if "timeout" in faults else self.slow_s if "slow" in faults else 0
        delay += self.latency_s
        if delay and self._stopped.wait(delay):
            handler.close_connection = True
            return
        try:
            handler.send_response(reply.status)
            for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                handler.send_header(name, value)
            if gzipped:
                handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if cut and "truncated" in faults:
                handler.wfile.write(body[: len(body) // 2])
                handler.close_connection = True
            else:
                handler.wfile.write(body)
        except OSError:  # the client gave up (a timeout fault): nothing left to tell it
            handler.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new connections (ten
    # workers' first calls), which the client's TCP sends again a second later: calls arrived
    # a second after their rate-limit slot, past the limiter's margin, and earned 429s.
    request_queue_size = 128
    block_on_close = False  # stopping never waits for answers held back by faults
    emulator: Emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer are expected here; stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # idle keep-alive connections end after this
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall

    def do_GET(self) -> None:
        self.server.emulator._handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are recorded in ``Emulator.log``; nothing goes to stderr."""


def _encode(body: Any, faults: frozenset[str]) -> bytes:
    """``body`` as JSON: orjson, several times faster on pages of bars, except where a "nan"
    fault must reach the wire as the bare NaN a sloppy vendor sends (orjson writes null)."""
    if "nan" in faults:
        return json.dumps(body).encode()
    return orjson.dumps(body)


def _extended_hours(frame: pl.DataFrame, step: timedelta) -> pl.DataFrame:
    """``frame`` plus a pre-market bar before and a post-market bar after each session of each
    symbol, as the vendors' intraday answers have: flat at the open (close), little volume."""
    session = pl.struct(pl.col("symbol"), pl.col("ts").dt.date())
    extra = []
    for keep, shift, price in (
        (session.is_first_distinct(), -step, "open"),
        (session.is_last_distinct(), step, "close"),
    ):
        flat = [pl.col(price).alias(c) for c in ("open", "high", "low", "close", "vwap")]
        extra.append(
            frame.filter(keep).with_columns(
                *flat,
                pl.col("ts") + shift,
                pl.lit(100.0).alias("volume"),
                pl.lit(1, dtype=pl.Int64).alias("trades"),
            )
        )
    return pl.concat([frame, *extra]).sort("symbol", "ts")


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None
