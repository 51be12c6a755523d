"""Faults the emulators inject, each drawn per response at its own rate or forced for the next
responses (``Faults.force``), from a spec such as ``"5xx=0.1,slow=0.05"``:

========== ==================================================================================
5xx        HTTP 500 in the vendor's error shape instead of the answer
echo       HTTP 500 whose error text echoes the request: its URL with the query string as
           sent (percent-encoded) and the decoded query parameters, as some gateways do
slow       the answer comes after ``slow_s`` seconds (less than a client's timeout)
timeout    the answer comes after ``hang_s`` seconds (more than a client's timeout)
truncated  the body is cut in half after announcing its full length; the connection closes
malformed  the body is cut in half (with a matching length): invalid JSON
duplicate  one bar of the page is sent twice (a print: the previous page's last again)
unordered  the page's bars come in reverse order
outside    a copy of a bar, moved whole weeks back to before the requested range, is added
           (a print: see ``emulators.trades``)
nan        one bar's close is NaN
negative   one bar's volume (or low) is negative; one print's price
zero       one print's size is zero (trades only; bars ignore it)
========== ==================================================================================

Transport faults are applied by the server as it answers; data faults by ``corrupt``, to one
page of bars before the vendor's encoding (``emulators.trades.corrupt`` to a page of trades).
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from barlake.errors import UsageError

TRANSPORT_FAULTS = ("5xx", "echo", "slow", "timeout", "truncated", "malformed")
DATA_FAULTS = ("duplicate", "unordered", "outside", "nan", "negative")
#: Faults only a page of trades can suffer.
TRADE_FAULTS = ("zero",)
FAULTS: tuple[str, ...] = TRANSPORT_FAULTS + DATA_FAULTS + TRADE_FAULTS

_SPEC_ITEM = re.compile(r"^\s*([a-z0-9]+)\s*=\s*([0-9.eE+-]+)\s*$")


def parse_faults(faults: str | Mapping[str, float] | None) -> dict[str, float]:
    """Rates per fault from ``"5xx=0.1,slow=0.05"`` (or a mapping); UsageError if unknown."""
    if faults is None or faults == "":
        return {}
    items: list[tuple[str, Any]]
    if isinstance(faults, str):
        items = []
        for part in faults.split(","):
            match = _SPEC_ITEM.match(part)
            if not match:
                msg = f"cannot read fault {part.strip()!r}; write NAME=RATE, e.g. 5xx=0.1"
                raise UsageError(msg)
            items.append((match[1], match[2]))
    else:
        items = list(faults.items())
    rates: dict[str, float] = {}
    for name, value in items:
        if name not in FAULTS:
            msg = f"unknown fault {name!r}; use some of: {', '.join(FAULTS)}"
            raise UsageError(msg)
        rate = float(value)
        if not 0 <= rate <= 1:
            msg = f"fault {name} has rate {rate:g}; rates are probabilities in 0..1"
            raise UsageError(msg)
        rates[name] = rate
    return rates


class Faults:
    """Which faults each response suffers: forced ones first, else drawn at seeded rates."""

    def __init__(self, faults: str | Mapping[str, float] | None = None, *, seed: int = 0) -> None:
        self.rates = parse_faults(faults)
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._forced: deque[str] = deque()
        self._lock = threading.Lock()

    def force(self, fault: str, times: int = 1) -> None:
        """The next ``times`` responses (that pass auth and rate limit) suffer ``fault``."""
        parse_faults({fault: 1})
        with self._lock:
            self._forced.extend([fault] * times)

    def draw(self) -> frozenset[str]:
        with self._lock:
            if self._forced:
                chosen = {self._forced.popleft()}
            else:
                # Every rate is drawn every time, so one rate never shifts another's sequence;
                # the trades-only ones only when asked, so that bar sequences stay as seeded.
                drawn = [f for f in FAULTS if f not in TRADE_FAULTS or f in self.rates]
                draws = {f: self.rng.random() for f in drawn}
                chosen = {f for f in drawn if draws[f] < self.rates.get(f, 0)}
            self.injected.update(chosen)
            return frozenset(chosen)


def corrupt(
    frame: pl.DataFrame, faults: frozenset[str], rng: random.Random, before: datetime
) -> pl.DataFrame:
    """``frame`` (one page of bars, lake keying) with the data faults in ``faults``; a bar moved
    ``outside`` starts before ``before``, the start of the whole request (not of the page)."""
    if frame.is_empty() or not faults & set(DATA_FAULTS):
        return frame
    i = rng.randrange(frame.height)
    if "duplicate" in faults:
        frame = pl.concat([frame[: i + 1], frame[i : i + 1], frame[i + 1 :]])
    if "outside" in faults:
        moved = frame[i : i + 1]
        weeks = math.floor((moved["ts"][0] - before) / timedelta(weeks=1)) + 1
        frame = pl.concat([moved.with_columns(pl.col("ts") - timedelta(weeks=weeks)), frame])
    row = pl.int_range(pl.len()) == rng.randrange(frame.height)
    if "nan" in faults:
        frame = frame.with_columns(
            pl.when(row).then(float("nan")).otherwise("close").alias("close")
        )
    if "negative" in faults:
        name = rng.choice(["volume", "low"])
        frame = frame.with_columns(pl.when(row).then(-pl.col(name)).otherwise(name).alias(name))
    if "unordered" in faults and frame.height > 1:
        frame = frame.reverse()
    return frame
