"""The scenarios of ``scheduling.py``: their starting lakes, barlake's fill of them, and the naive
per-symbol loop a research script would run instead.

Every scenario runs on one clock, ``CLOCK``: Saturday 2024-12-14 before the markets open, so
2024-12-13 is the last session that has opened (and closed). Bars come from the emulators, which
serve the demo generator's values; starting lakes are filled from the demo provider (the very
same bars, so the ledger knows the halted and pre-listing sessions as a real lake's would), and
every symbol is catalogued with the listing date the generator gives it.

Each measurement talks to its own emulator (so that no run inherits another's rate-limit
window): by default a process of its own started with ``_emulator_process.py``, which leaves this
process's interpreter and cores to barlake; or, ``process=False``, threads of this process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import polars as pl
import yaml

import barlake
from barlake import Lake
from barlake.calendars.calendar import get_calendar
from barlake.domain.intervals import Interval
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.fetch.job import JobResult
from barlake.planning.plan import Plan
from barlake.providers.demo import demo_listing_date
from barlake.providers.emulators import open_emulator
from barlake.providers.polygon import SPANS

CLOCK = datetime(2024, 12, 14, 11, tzinfo=UTC)
#: The last session that has opened by ``CLOCK``: the "new" session of a daily update.
LAST_SESSION = date(2024, 12, 13)
KEY, SECRET = "pk-bench-5c2e91", "sk-bench-0a7d33f8"
#: The emulators' test keys, for the environment the providers read them from.
CREDENTIALS = {
    "APCA_API_KEY_ID": KEY,
    "APCA_API_SECRET_KEY": SECRET,
    "POLYGON_API_KEY": KEY,
    "MASSIVE_API_KEY": KEY,
}
#: The vendors' free plans: Alpaca Basic, Polygon (Massive) Basic.
RATES = {"alpaca": 200.0, "polygon": 5.0}
#: Our side of S3 on Polygon: its paid plans have no limit, and at the free 5 a minute the
#: dozen grouped calls would mostly wait for the window. The naive loop keeps the free rate.
S3_POLYGON_RATE = 100.0
HOLE_SEED = 20241213


def clock() -> datetime:
    return CLOCK


def sessions_until(last: date, count: int) -> list[date]:
    """The ``count`` XNYS sessions ending with ``last``."""
    cal = get_calendar("XNYS")
    days = cal.sessions_in(DateRange(last - timedelta(days=2 * count + 14), last + ONE_DAY))
    return [date.fromisoformat(str(d)) for d in days[-count:]]


@dataclass(frozen=True)
class Scenario:
    """Symbols, the starting lake, and what barlake is asked to fill (``Lake.plan`` keyword
    arguments, one plan each, run as one job)."""

    name: str
    provider: str
    rate_per_min: float
    symbols: tuple[str, ...]
    selections: tuple[dict[str, Any], ...]
    stored: DateRange | None = None  # daily bars in the starting lake
    holes: float = 0.0  # share of the stored sessions (or rows) removed at random
    holes_by: str = "sessions"  # "sessions": dates gone for every symbol; "rows": single bars
    layer: int | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: A scenario of ours beyond the issue's list (its misses are reported apart).
    beyond_issue: bool = False
    naive_rate: float | None = None  # the naive loop's vendor rate, when not ``rate_per_min``

    @property
    def naive_rate_per_min(self) -> float:
        return self.naive_rate or self.rate_per_min


def daily_update(provider: str, symbols: int, sessions: int, rate: float | None = None) -> Scenario:
    """S1: ``sessions`` sessions of daily bars stored, one new session to fetch."""
    days = sessions_until(LAST_SESSION, sessions + 1)
    return Scenario(
        name=f"S1-{provider}",
        provider=provider,
        rate_per_min=rate or RATES[provider],
        symbols=tuple(f"U{i:04d}" for i in range(symbols)),
        selections=({"interval": "1day", "start": days[0], "end": LAST_SESSION},),
        stored=DateRange.inclusive(days[0], days[-2]),
        notes=f"{symbols} symbols x {sessions} sessions stored, 1 new session",
    )


def new_symbols(symbols: int, rate: float | None = None) -> Scenario:
    """S2: new layer-3 symbols: 120 days of daily bars and 60 days of 1-minute bars."""
    return Scenario(
        name="S2-alpaca",
        provider="alpaca",
        rate_per_min=rate or RATES["alpaca"],
        symbols=tuple(f"L{i:03d}" for i in range(symbols)),
        selections=({"interval": "1day", "days": 120}, {"interval": "1min", "days": 60}),
        layer=3,
        notes=f"{symbols} new symbols: --days 120 daily, --days 60 1min",
    )


def holey(
    provider: str,
    symbols: int,
    sessions: int,
    holes: float = 0.05,
    rate: float | None = None,
    *,
    by: str = "sessions",
) -> Scenario:
    """S3: ``sessions`` sessions of daily bars with ``holes`` of the sessions missing at random
    for every symbol (a daily updater that missed some days), or with ``by="rows"`` that share
    of the (symbol, session) rows ("S3-rows"); ``NEW*`` names list mid-window (2024-06-03),
    ``HALT*`` ones halt every fifth session, and the generator lists about one other name in ten
    late and halts about one in eight. ``rate`` sets both sides' rate; by default Polygon's
    session holes are filled at ``S3_POLYGON_RATE`` and the naive loop runs at the free rate."""
    days = sessions_until(LAST_SESSION, sessions)
    names = tuple(
        f"NEW{i:03d}" if i % 20 == 0 else f"HALT{i:03d}" if i % 20 == 1 else f"H{i:03d}"
        for i in range(symbols)
    )
    window = DateRange.inclusive(days[0], LAST_SESSION)
    if by == "sessions":
        name = f"S3-{provider}"
        gone = len(hole_sessions(days, holes, HOLE_SEED))
        notes = (
            f"{symbols} symbols x {sessions} sessions, {gone} sessions ({holes:.0%}) missing "
            "for every symbol"
        )
    elif by == "rows":
        name = f"S3-rows-{provider}"
        notes = (
            f"{symbols} symbols x {sessions} sessions, {holes:.0%} of the (symbol, session) "
            "rows missing at random"
        )
    else:
        msg = f"holes by {by!r}: use sessions or rows"
        raise ValueError(msg)
    ours = rate or (S3_POLYGON_RATE if provider == "polygon" and by == "sessions" else None)
    return Scenario(
        name=name,
        provider=provider,
        rate_per_min=ours or RATES[provider],
        symbols=names,
        selections=({"interval": "1day", "start": days[0], "end": LAST_SESSION},),
        stored=window,
        holes=holes,
        holes_by=by,
        notes=notes + "; late listings, halted sessions",
        beyond_issue=by == "rows",
        naive_rate=rate or RATES[provider],
    )


def roadmap(symbols: int, rate: float | None = None) -> Scenario:
    """R1: symbols new at layer 3 filled by the default policy (365 days daily, 30 days 1hour
    and 5min, 10 days 1min); the roadmap asks for 100 symbols in under 5 minutes."""
    return Scenario(
        name="R1-alpaca",
        provider="alpaca",
        rate_per_min=rate or RATES["alpaca"],
        symbols=tuple(f"R{i:03d}" for i in range(symbols)),
        selections=({"policy": "default"},),
        layer=3,
        notes=f"{symbols} symbols at layer 3, policy default",
        extra={"target_wall_s": 10.0},
    )


# -- the starting lake -------------------------------------------------------------------------


def build(scenario: Scenario, root: Path) -> dict[str, int]:
    """Create the starting lake of ``scenario`` at ``root``; returns what it holds."""
    lake = Lake.init(root, clock=clock)
    table = root.parent / f"{root.name}-symbols.parquet"
    names = list(scenario.symbols)
    pl.DataFrame(
        {"symbol": names, "listed_on": [demo_listing_date(s) for s in names]},
        schema={"symbol": pl.String, "listed_on": pl.Date},
    ).write_parquet(table)
    lake.import_symbols(table)
    table.unlink()
    if scenario.layer is not None:
        lake.set_layers(names, scenario.layer)
    held = {"stored_bars": 0, "removed_bars": 0, "removed_sessions": 0}
    if scenario.stored is not None:
        first, last = scenario.stored.start, scenario.stored.last
        result = lake.fill(interval="1day", start=first, end=last, provider="demo")
        if not result.ok:
            msg = f"building {scenario.name}: the demo fill ended {result.status}"
            raise RuntimeError(msg)
        held["stored_bars"] = result.bars_written
    if scenario.holes and scenario.holes_by == "rows":
        held["removed_bars"] = punch_holes(lake, scenario.holes, HOLE_SEED)
    elif scenario.holes and scenario.stored is not None:
        gone = missing_sessions(scenario)
        held["removed_bars"] = remove_sessions(lake, gone)
        held["removed_sessions"] = len(gone)
    held["stored_bars"] -= held["removed_bars"]
    return held


def hole_sessions(sessions: Sequence[date], share: float, seed: int) -> list[date]:
    """``share`` of ``sessions`` (at least one, rounded up), picked at random (seeded)."""
    count = min(len(sessions), max(1, math.ceil(share * len(sessions))))
    picked = np.random.default_rng(seed).choice(len(sessions), size=count, replace=False)
    return sorted(sessions[int(i)] for i in picked)


def missing_sessions(scenario: Scenario) -> list[date]:
    """The sessions an S3 lake lacks for every symbol (none unless its holes are sessions)."""
    if scenario.stored is None or not scenario.holes or scenario.holes_by != "sessions":
        return []
    cal = get_calendar("XNYS")
    days = [date.fromisoformat(str(d)) for d in cal.sessions_in(scenario.stored)]
    return hole_sessions(days, scenario.holes, HOLE_SEED)


def punch_holes(lake: Lake, share: float, seed: int) -> int:
    """Remove ``share`` of the stored daily rows at random (seeded); returns how many."""
    rng = np.random.default_rng(seed)
    removed = 0
    for path in lake.store.files("1day", None, None):
        frame = lake.store.read_file(path)
        if frame is None:
            continue
        keep = rng.random(frame.height) >= share
        removed += int((~keep).sum())
        lake.store.replace_file(path, "1day", frame.filter(pl.Series(keep)))
    return removed


def remove_sessions(lake: Lake, sessions: Sequence[date]) -> int:
    """Remove every symbol's daily bar of each of ``sessions``; returns how many."""
    removed = 0
    for path in lake.store.files("1day", None, None):
        frame = lake.store.read_file(path)
        if frame is None:
            continue
        keep = frame.filter(~pl.col("ts").dt.date().is_in(list(sessions)))
        if keep.height < frame.height:
            removed += frame.height - keep.height
            lake.store.replace_file(path, "1day", keep)
    return removed


class Vendor(Protocol):
    """An emulator started for one measurement, and what it served since a mark."""

    @property
    def url(self) -> str: ...

    def mark(self) -> Any: ...

    def since(self, mark: Any) -> tuple[int, int, float]:
        """Calls, of which 429s, and the emulator's CPU seconds since ``mark``."""
        ...

    def stop(self) -> None: ...


def emulator_settings(scenario: Scenario, latency_s: float, rate: float | None) -> dict[str, Any]:
    """``open_emulator``'s settings for ``scenario`` (at ``rate`` a minute if given)."""
    return {
        "api_key": KEY,
        "api_secret": SECRET,
        "rate_limit": rate or scenario.rate_per_min,
        "latency_s": latency_s,
        "symbols": list(scenario.symbols),
        "now": CLOCK,
    }


class ThreadVendor:
    """The emulator in this process. Its CPU time is that of its handler threads (not counting
    what they hand to polars' own threads, so a floor), and it is taken from barlake's fill: a
    real vendor's would not be."""

    def __init__(self, scenario: Scenario, latency_s: float, rate: float | None = None) -> None:
        settings = emulator_settings(scenario, latency_s, rate)
        self.emulator = open_emulator(scenario.provider, **settings)
        self.cpu: list[float] = []
        answer = self.emulator._handle

        def timed(handler: Any) -> None:
            started = time.thread_time()
            answer(handler)
            self.cpu.append(time.thread_time() - started)

        self.emulator._handle = timed  # type: ignore[method-assign]
        self.emulator.start()

    @property
    def url(self) -> str:
        return self.emulator.url

    def mark(self) -> tuple[int, int]:
        return len(self.emulator.log), len(self.cpu)

    def since(self, mark: tuple[int, int]) -> tuple[int, int, float]:
        log = self.emulator.log[mark[0] :]
        limited = sum(1 for status, _ in log if status == 429)
        return len(log), limited, sum(self.cpu[mark[1] :], 0.0)

    def stop(self) -> None:
        self.emulator.stop()


RUNNER = Path(__file__).with_name("_emulator_process.py")


class ProcessVendor:
    """The emulator in a process of its own (``_emulator_process.py``): its URL is the first
    line it prints; each ``count`` line sent to it is answered with its counts and its CPU
    seconds so far (all of its process: handlers, polars' threads, the server)."""

    #: Seconds to wait for the child to listen, answer a ``count``, or leave.
    START_S, ANSWER_S, EXIT_S = 120.0, 30.0, 10.0

    def __init__(self, scenario: Scenario, latency_s: float, rate: float | None = None) -> None:
        settings = emulator_settings(scenario, latency_s, rate)
        settings["now"] = CLOCK.isoformat()
        self._spawn(scenario.provider, settings)

    @classmethod
    def started(cls, provider: str, settings: dict[str, Any]) -> ProcessVendor:
        """``provider``'s emulator with ``open_emulator``'s ``settings`` (``now`` as an ISO
        timestamp), in a process of its own."""
        vendor = cls.__new__(cls)
        vendor._spawn(provider, settings)
        return vendor

    def _spawn(self, provider: str, settings: dict[str, Any]) -> None:
        env = dict(os.environ)
        # The child imports the barlake this process runs, wherever that is.
        src = str(Path(barlake.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), provider, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="emulator-stdout", daemon=True)
        self._reader.start()
        try:
            self._url = self._line(self.START_S)
        except BaseException:
            self.stop()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            msg = f"the emulator process gave no answer in {timeout:.0f} s"
            raise RuntimeError(msg) from None
        if line is None:
            msg = f"the emulator process ended (exit code {self.proc.poll()})"
            raise RuntimeError(msg)
        return line

    @property
    def url(self) -> str:
        return self._url

    def ask(self, line: str) -> Any:
        """The child's JSON answer to one line of its protocol (``count``, ``arrivals``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self._line(self.ANSWER_S))

    def mark(self) -> tuple[int, int, float]:
        counts = self.ask("count")
        return counts["requests"], counts["statuses"].get("429", 0), counts["cpu_s"]

    def since(self, mark: tuple[int, int, float]) -> tuple[int, int, float]:
        now = self.mark()
        return now[0] - mark[0], now[1] - mark[1], now[2] - mark[2]

    def stop(self) -> None:
        """Close its stdin (it stops serving and leaves), then SIGTERM, then kill."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):  # it left already
                self.proc.stdin.close()
        for end in (None, self.proc.terminate, self.proc.kill):
            if end is not None:
                end()
            try:
                self.proc.wait(self.EXIT_S)
                break
            except subprocess.TimeoutExpired:
                continue
        self._reader.join(self.EXIT_S)  # it ends at the child's end of stdout
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()


def open_vendor(
    scenario: Scenario, latency_s: float, *, process: bool = True, rate: float | None = None
) -> Vendor:
    """A started emulator for ``scenario``: a process of its own, or threads of this one."""
    kind = ProcessVendor if process else ThreadVendor
    return kind(scenario, latency_s, rate)


def configure(root: Path, scenario: Scenario, vendor: Vendor) -> None:
    """Point the lake at ``vendor``'s emulator, at the vendor's rate limit."""
    entry = {"base_url": vendor.url, "rate_limit_per_min": scenario.rate_per_min}
    config = {
        "default_provider": scenario.provider,
        "providers": {scenario.provider: entry},
        # The scenarios measure bar requests; corporate actions are benchmarks/actions.py's.
        "backfill": {"fetch_actions": False},
    }
    (root / "lake.yaml").write_text(yaml.safe_dump(config))


# -- barlake's side ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fill:
    """One fill of a scenario: its plan and result, the emulator's count, the wall time."""

    plan: Plan
    result: JobResult
    requests: int  # HTTP calls the emulator received
    rate_limited: int  # of which answered 429
    wall_s: float
    cpu_s: float  # CPU time of this process meanwhile (with a thread emulator, its time too)
    emulator_cpu_s: float  # the emulator's (a part of cpu_s with a thread emulator)


def plan_of(lake: Lake, scenario: Scenario) -> Plan:
    plans = [lake.plan(**selection) for selection in scenario.selections]
    joined = plans[0]
    for more in plans[1:]:
        joined = joined + more
    return joined


def fill(scenario: Scenario, root: Path, vendor: Vendor) -> Fill:
    """Open the lake, plan and run the scenario's selection, timed end to end."""
    mark = vendor.mark()
    cpu = time.process_time()
    started = time.perf_counter()
    lake = Lake.open(root, clock=clock)
    plan = plan_of(lake, scenario)
    result = lake.run_plan(plan)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    calls, limited, emulator_cpu = vendor.since(mark)
    return Fill(plan, result, calls, limited, wall, cpu, emulator_cpu)


# -- the naive loop ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Naive:
    """The naive loop over a sample of the symbols."""

    symbols: int  # all the scenario's symbols
    sampled: int
    requests: int  # answered calls (not 429) during the sample
    rate_limited: int
    wall_s: float
    emulator_cpu_s: float
    bars: int


def whole_windows(plan: Plan) -> dict[str, list[tuple[Interval, DateRange]]]:
    """Each symbol's whole requested window per interval, as the plan explains them."""
    out: dict[str, list[tuple[Interval, DateRange]]] = {}
    for origin in plan.origins:
        if origin.requested is not None:
            out.setdefault(origin.symbol, []).append((origin.interval, origin.requested))
    return dict(sorted(out.items()))


def sample(names: Sequence[str], size: int) -> list[str]:
    """``size`` of ``names``, spread evenly (all when there are no more)."""
    if size >= len(names):
        return list(names)
    return [names[int(i)] for i in np.linspace(0, len(names) - 1, size).round()]


def naive(
    scenario: Scenario,
    windows: Mapping[str, list[tuple[Interval, DateRange]]],
    vendor: Vendor,
    out: Path,
    size: int,
) -> Naive:
    """Download each sampled symbol's whole window, one symbol after the other, into one
    Parquet file per symbol and interval, and count what the emulator saw."""
    picked = sample(list(windows), size)
    out.mkdir(parents=True, exist_ok=True)
    loop = alpaca_loop if scenario.provider == "alpaca" else polygon_loop
    mark = vendor.mark()
    started = time.perf_counter()
    bars = loop(vendor.url, ((s, windows[s]) for s in picked), out)
    wall = time.perf_counter() - started
    calls, limited, emulator_cpu = vendor.since(mark)
    return Naive(len(windows), len(picked), calls - limited, limited, wall, emulator_cpu, bars)


def _file(out: Path, symbol: str, interval: str) -> Path:
    return out / f"{quote(symbol, safe='')}-{interval}.parquet"


def alpaca_loop(
    url: str, work: Iterable[tuple[str, list[tuple[Interval, DateRange]]]], out: Path
) -> int:
    """alpaca-py's bars client, one symbol at a time. The client retries a 429 by itself (3
    times, 3 s apart, whatever the headers say); when it gives up, sleep until the
    ``X-RateLimit-Reset`` it reports and ask again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # alpaca-py imports websockets.legacy
        from alpaca.common.exceptions import APIError
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.historical import StockHistoricalDataClient
        from alpaca.data.requests import StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

    frames = {
        "1min": TimeFrame(1, TimeFrameUnit.Minute),
        "5min": TimeFrame(5, TimeFrameUnit.Minute),
        "15min": TimeFrame(15, TimeFrameUnit.Minute),
        "30min": TimeFrame(30, TimeFrameUnit.Minute),
        "1hour": TimeFrame(1, TimeFrameUnit.Hour),
        "1day": TimeFrame(1, TimeFrameUnit.Day),
    }
    client = StockHistoricalDataClient(KEY, SECRET, url_override=url)
    bars = 0
    for symbol, asks in work:
        for interval, window in asks:
            request = StockBarsRequest(
                symbol_or_symbols=symbol,
                timeframe=frames[interval],
                start=datetime.combine(window.start, datetime.min.time(), UTC),
                end=datetime.combine(window.end, datetime.min.time(), UTC),
                feed=DataFeed.IEX,
                adjustment=Adjustment.RAW,
            )
            while True:
                try:
                    with warnings.catch_warnings():
                        # alpaca-py's DataFrame conversion uses pandas calls pandas deprecates
                        warnings.simplefilter("ignore", DeprecationWarning)
                        frame = client.get_stock_bars(request).df
                    break
                except APIError as exc:
                    if exc.status_code != 429 or exc.response is None:
                        raise
                    reset = float(exc.response.headers.get("X-RateLimit-Reset", time.time() + 1))
                    time.sleep(max(0.0, reset - time.time()) + 0.1)
            if len(frame):
                frame.to_parquet(_file(out, symbol, interval))
                bars += len(frame)
    return bars


def polygon_loop(
    url: str, work: Iterable[tuple[str, list[tuple[Interval, DateRange]]]], out: Path
) -> int:
    """Plain httpx against the aggregates endpoint, one symbol at a time: follow ``next_url``
    (adding the key again: it carries none), sleep ``Retry-After`` on a 429."""
    bars = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for symbol, asks in work:
            for interval, window in asks:
                mult, span = SPANS[interval]
                first, last = window.start.isoformat(), window.last.isoformat()
                path = f"/v2/aggs/ticker/{quote(symbol, safe='')}/range/{mult}/{span}"
                link: str | None = f"{path}/{first}/{last}"
                params: dict[str, Any] = {"adjusted": "true", "sort": "asc", "limit": 50_000}
                rows: list[dict[str, Any]] = []
                while link is not None:
                    response = client.get(link, params={**params, "apiKey": KEY})
                    if response.status_code == 429:
                        time.sleep(float(response.headers.get("Retry-After", "1")))
                        continue
                    response.raise_for_status()
                    body = response.json()
                    rows += body.get("results") or []
                    link, params = body.get("next_url"), {}
                if rows:
                    pd.DataFrame(rows).assign(ticker=symbol).to_parquet(
                        _file(out, symbol, interval)
                    )
                    bars += len(rows)
    return bars
