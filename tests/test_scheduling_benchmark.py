"""The scheduling benchmark's scenarios at tiny sizes, against the emulators: counts only, never
times. A repeated fill makes no request, barlake never makes more requests than the naive loop,
the emulator sees exactly the pages the plan lists, and the lake has no gap afterwards (halted
sessions covered by the ledger, pre-listing ones not expected). Sessions missing for every
symbol on Polygon take one grouped call each. The scenarios talk to emulators in threads
(quicker); one emulator in a process of its own, as the benchmark starts them by default, is
checked apart: its counts, 429s included, and its end."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from barlake.coverage.matrix import EMPTY, NOT_EXPECTED, STORED
from barlake.lake import Lake
from barlake.providers.demo import demo_halted, demo_listing_date
from barlake.providers.emulators import open_emulator

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
#: No vendor limit in the way: these tests count, they do not wait.
UNLIMITED = 60_000.0


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``benchmarks/scheduling.py`` imported, with the emulators' keys in the environment."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    module = importlib.import_module("scheduling")
    for name in [k for k in os.environ if k.startswith("LAKE_")]:
        monkeypatch.delenv(name)
    for name, value in module.CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    yield module
    for name in ("scheduling", "_scenarios"):
        sys.modules.pop(name, None)


SCENARIOS = {
    "S1-alpaca": lambda s: s.daily_update("alpaca", 30, 10, rate=UNLIMITED),
    "S1-polygon": lambda s: s.daily_update("polygon", 30, 10, rate=UNLIMITED),
    # 140 sessions reach back past 2024-06-03, when the NEW* names list.
    "S3-rows-alpaca": lambda s: s.holey("alpaca", 20, 140, rate=UNLIMITED, by="rows"),
    "S3-polygon": lambda s: s.holey("polygon", 20, 140, rate=UNLIMITED),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_counts(bench: ModuleType, tmp_path: Path, name: str) -> None:
    scenario = SCENARIOS[name](bench)
    assert scenario.name == name
    m = bench.measure(
        scenario,
        tmp_path,
        runs=1,
        latency_s=0.0,
        naive_size=len(scenario.symbols),
        process=False,
        log=lambda _: None,
    )
    ours, again = m.fills[0], m.repeats[0]
    assert (ours.result.status, ours.result.symbol_errors) == ("done", {})
    assert ours.requests > 0
    assert again.requests == 0
    assert ours.rate_limited == m.naive.rate_limited == 0
    assert m.naive.sampled == len(scenario.symbols)
    assert ours.requests <= m.naive.requests
    assert ours.requests == ours.plan.total_requests
    assert m.gaps_after == 0

    lake = Lake.open(m.lake, clock=bench.clock)
    (selection,) = scenario.selections
    assert lake.gaps(**selection) == []
    cells = lake.coverage(**selection).to_frame()
    halted = 0
    for symbol, session, state in cells.select("symbol", "session", "state").iter_rows():
        listed = demo_listing_date(symbol)
        if listed is not None and session < listed:
            assert state == NOT_EXPECTED, (symbol, session)
        elif demo_halted(symbol, session):
            assert state == EMPTY, (symbol, session)  # asked for, came back empty: in the ledger
            halted += 1
        else:
            assert state == STORED, (symbol, session)
    if name.startswith("S3"):
        assert halted > 0  # HALT001 halts every fifth session
        assert m.held["removed_bars"] > 0
        listed_inside = [s for s in scenario.symbols if s.startswith("NEW")]
        assert listed_inside
        assert all(demo_listing_date(s) > selection["start"] for s in listed_inside)
    if name == "S3-polygon":
        # Every symbol lacks the same sessions: one grouped-daily call for each, nothing else.
        gone = importlib.import_module("_scenarios").missing_sessions(scenario)
        assert len(gone) == m.held["removed_sessions"] == 7  # 5% of 140, rounded up
        assert ours.requests == len(gone) == ours.plan.lower_bound
        assert sorted(p.request.range.start for p in ours.plan.requests) == gone
        for planned in ours.plan.requests:
            assert planned.sessions == planned.pages == 1
            assert len(planned.request.symbols) > 1
        assert m.naive.requests == len(scenario.symbols)  # one aggregates call per symbol


def test_emulator_process_counts_calls_and_429s_and_ends(bench: ModuleType) -> None:
    scenario = bench.daily_update("polygon", 3, 5, rate=UNLIMITED)
    vendor = bench.open_vendor(scenario, 0.0, process=True, rate=1.0)  # the second call: 429
    try:
        mark = vendor.mark()
        assert mark[:2] == (0, 0)  # its warm-up is not counted, nor held against the limit
        url = f"{vendor.url}/v2/aggs/grouped/locale/us/market/stocks/2024-12-13"
        key = {"apiKey": importlib.import_module("_scenarios").KEY}
        statuses = [httpx.get(url, params=key).status_code for _ in range(2)]
        assert statuses == [200, 429]
        calls, limited, cpu = vendor.since(mark)
        assert (calls, limited) == (2, 1)
        assert cpu >= 0
    finally:
        vendor.stop()
    assert vendor.proc.returncode is not None


def test_emulator_latency_holds_each_answer_back_side_by_side() -> None:
    emulator = open_emulator("polygon", api_key="k", latency_s=0.4).start()
    try:
        url = f"{emulator.url}/v2/aggs/grouped/locale/us/market/stocks/2024-06-03?apiKey=k"
        started = time.perf_counter()
        assert httpx.get(url).status_code == 200
        assert time.perf_counter() - started >= 0.4
        threads = [threading.Thread(target=httpx.get, args=(url,)) for _ in range(5)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.perf_counter() - started < 5 * 0.4  # answered in parallel, not in turn
        assert emulator.requests == 6
    finally:
        emulator.stop()
