"""Binance spot klines, emulated.

Serves ``GET /api/v3/klines`` for crypto symbols (those the demo trades 24/7, e.g. ``BTCUSDT``;
any other is ``-1121 Invalid symbol.``). It validates ``symbol`` (-1102 missing, -1100 illegal
characters), ``interval`` (-1120) and ``limit`` (1..1000, default 500; -1130), takes
``startTime``/``endTime`` in ms (µs too) and selects like the vendor: from ``startTime`` the
oldest ``limit`` klines, else the newest up to ``endTime`` (or now), never past ``endTime``; a
kline is in when its open time is. Klines are positional arrays of decimal strings, labelled by
open time; the quote-asset volume is vwap times volume. Errors are ``{"code", "msg"}``.

The rate limit counts calls (default 3,000 a minute: the vendor's 6,000 weight at 2 a call),
and every answer says ``X-MBX-USED-WEIGHT`` and ``X-MBX-USED-WEIGHT-1M`` (2 a call). Over it the
answer is 429 ``-1003`` with ``Retry-After``; a client that comes back before that wait is
over earns a violation, and ``ban_after`` of them a 418 IP ban of ``ban_s`` seconds, answered
to everything with ``Retry-After``. ``block="waf"`` answers every request 403, ``"geo"`` 451.

[INFERRED] sliding (not on-the-minute) windows, how many violations ban, the 403 body and
the -1130 and 404 texts.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.providers.demo import demo_calendar, generate
from barlake.providers.emulators.base import Emulator, Quota, Reply

WEIGHT, WEIGHT_LIMIT = 2, 6000
MAX_LIMIT, DEFAULT_LIMIT = 1000, 500
VALID = (
    *("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h"),
    *("1d", "3d", "1w", "1M"),
)
SERVED: dict[str, Interval] = {
    "1m": "1min",
    "5m": "5min",
    "15m": "15min",
    "30m": "30min",
    "1h": "1hour",
    "1d": "1day",
}
_SYMBOL = re.compile(r"[A-Z0-9\-_.]{1,20}")
_TOO_MUCH = (
    "Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
_BANNED = (
    "Way too much request weight used; IP banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
_RESTRICTED = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)
_WAF = b"<html><head><title>403 Forbidden</title></head><body>Request blocked.</body></html>"


class BinanceEmulator(Emulator):
    """``api.binance.com`` (or ``data-api.binance.vision``) on loopback."""

    vendor = "binance"

    def __init__(
        self,
        *,
        ban_after: int = 3,
        ban_s: float = 120.0,
        block: Literal["waf", "geo"] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["rate_limit"] = kwargs.get("rate_limit") or WEIGHT_LIMIT // WEIGHT
        super().__init__(**kwargs)
        self.ban_after, self.ban_s, self.block = ban_after, ban_s, block
        self._retry_at = self._banned_until = 0.0
        self._violations = 0
        self._ban_lock = threading.Lock()

    def authorize(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply | None:
        if self.block == "geo":
            return self.error(451, _RESTRICTED, 0)
        if self.block == "waf":
            return Reply(403, _WAF, {"Content-Type": "text/html"})
        now = time.time()
        with self._ban_lock:
            if now < self._banned_until:
                return self._ban(now)
        return None

    def error(self, status: int, message: str, code: int = -1000) -> Reply:
        return Reply(status, {"code": code, "msg": message})

    def quota_headers(self, quota: Quota) -> dict[str, str]:
        used = str((quota.limit - quota.remaining) * WEIGHT)
        return {"X-MBX-USED-WEIGHT": used, "X-MBX-USED-WEIGHT-1M": used}

    def rate_limited(self, quota: Quota) -> Reply:
        now = time.time()
        with self._ban_lock:
            if now < self._retry_at:
                self._violations += 1
            if self._violations >= self.ban_after:
                self._banned_until, self._violations = now + self.ban_s, 0
                return self._ban(now)
            self._retry_at = max(self._retry_at, now + quota.retry_after)
        reply = self.error(429, _TOO_MUCH.format(limit=quota.limit * WEIGHT), -1003)
        reply.headers["Retry-After"] = str(max(1, math.ceil(quota.retry_after)))
        return reply

    def _ban(self, now: float) -> Reply:
        until = int(self._banned_until * 1000)
        reply = self.error(418, _BANNED.format(until=until), -1003)
        reply.headers["Retry-After"] = str(max(1, math.ceil(self._banned_until - now)))
        return reply

    def route(self, path: str, query: Mapping[str, str], faults: frozenset[str]) -> Reply:
        with self._ban_lock:
            self._violations = 0  # admitted: the client waited long enough
        if path != "/api/v3/klines":
            return self.error(404, "Not Found")
        symbol, wire = query.get("symbol", ""), query.get("interval", "")
        for name, value in (("symbol", symbol), ("interval", wire)):
            if not value:
                message = (
                    f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
                return self.error(400, message, -1102)
        if not _SYMBOL.fullmatch(symbol):
            message = (
                "Illegal characters found in parameter 'symbol'; "
                "legal range is '^[A-Z0-9-_.]{1,20}$'."
            )
            return self.error(400, message, -1100)
        known = self.symbols is None or symbol in self.symbols
        if not known or demo_calendar(symbol).name != "24/7":
            return self.error(400, "Invalid symbol.", -1121)
        if wire not in VALID:
            return self.error(400, "Invalid interval.", -1120)
        interval = SERVED.get(wire)
        if interval is None:
            return self.error(400, f"the emulator serves only {', '.join(SERVED)}", -1120)
        parsed = self._window(query, interval)
        if isinstance(parsed, Reply):
            return parsed
        start, end, limit = parsed
        step = spec(interval).seconds * 1000
        lo = start if start is not None else end - limit * step
        hi = min(end, lo + limit * step) if start is not None else end
        days = DateRange(_day(lo) - timedelta(days=1), _day(hi) + timedelta(days=2))
        frame = generate([symbol], interval, days, now=self.now)
        t = frame["ts"].dt.epoch("ms")
        frame = frame.filter((t >= lo) & (t <= end)).sort("ts")
        page = frame.head(limit) if start is not None else frame.tail(limit)
        page = self.corrupt(page, faults, datetime.fromtimestamp(lo / 1000, UTC))
        return Reply(200, _klines(page, step))

    def _window(
        self, query: Mapping[str, str], interval: Interval
    ) -> Reply | tuple[int | None, int, int]:
        """``startTime`` (None if absent), ``endTime`` (default now) and ``limit``."""
        times: dict[str, int | None] = {}
        for name in ("startTime", "endTime"):
            text = query.get(name)
            if text is None:
                times[name] = None
            elif text.isdigit():
                value = int(text)
                times[name] = value // 1000 if value >= 10**15 else value  # microseconds
            else:
                message = (
                    f"Illegal characters found in parameter '{name}'; legal range is '^\\d+$'."
                )
                return self.error(400, message, -1100)
        text = query.get("limit", str(DEFAULT_LIMIT))
        limit = int(text) if text.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            return self.error(400, "Data sent for parameter 'limit' is not valid.", -1130)
        now = int((self.now or datetime.now(UTC)).timestamp() * 1000)
        end = times["endTime"] if times["endTime"] is not None else now
        start = times["startTime"]
        if start is not None and start > end:
            return self.error(400, "Start time is greater than end time.", -1023)
        return start, end, limit


def _klines(page: pl.DataFrame, step: int) -> list[list[Any]]:
    """The vendor's positional arrays, prices and volumes as 8-decimal strings."""
    out = []
    for row in page.iter_rows(named=True):
        opened = int(row["ts"].timestamp() * 1000)
        volume, quote = row["volume"], row["vwap"] * row["volume"]
        out.append(
            [
                opened,
                *(_decimal(row[k]) for k in ("open", "high", "low", "close")),
                _decimal(volume),
                opened + step - 1,
                _decimal(quote),
                row["trades"],
                _decimal(volume / 2),
                _decimal(quote / 2),
                "0",
            ]
        )
    return out


def _decimal(value: float) -> str:
    return f"{value:.8f}"


def _day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()
