"""The worker follows lake.yaml's ``follow:`` selections: nothing before the open, one follower
from the open (caught up first) until the session is final, not again that session, and only
one per lake however many workers run."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from tests.live.rig import QUICK, SESSION, YESTERDAY, truth, until

from barlake import Lake
from barlake.clock import ManualClock, fixed
from barlake.jobs.follow import read_state
from barlake.jobs.following import ProviderLock

SYMBOLS = ["AAPL", "MSFT", "DEMO1"]
CLOSE = datetime(2025, 1, 15, 21, tzinfo=UTC)
BEFORE_OPEN = datetime(2025, 1, 15, 14, 20, tzinfo=UTC)


@pytest.fixture
def lake(tmp_path: Path) -> tuple[Lake, ManualClock]:
    return lake_at(tmp_path)


def lake_at(tmp_path: Path) -> tuple[Lake, ManualClock]:
    root = tmp_path / "lake"
    Lake.init(root)
    config_file = root / "lake.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    config["follow"] = [{"symbols": SYMBOLS[:2], "provider": "demo"}, {"symbols": ["demo1"]}]
    config["worker"] = {"poll_s": 0.05}
    config_file.write_text(yaml.safe_dump(config))
    history = Lake.open(root, clock=fixed(datetime(2025, 1, 14, 23, tzinfo=UTC)))
    history.fill(SYMBOLS, interval="1min", start=YESTERDAY, end=YESTERDAY, provider="demo")
    clock = ManualClock(BEFORE_OPEN)
    return Lake.open(root, clock=clock), clock


class Logged:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, event: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self.lines.append((event, dict(fields)))

    def events(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [f for e, f in self.lines if e == name]


def test_the_worker_follows_the_session_from_its_open_until_it_is_final(lake) -> None:
    lake, clock = lake
    log = Logged()
    worker = lake.worker(log=log, follow_options=QUICK)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        until(lambda: bool(log.events("idle")), "the worker idles")
        lake.queue.add("AAPL", interval="1day", days=5)  # upkeep turns go by
        until(lambda: len(log.events("done")) == 1, "a request served before the open")
        assert log.events("following") == []  # 14:20: the session has not opened
        assert read_state(lake.live) is None

        clock.advance(datetime(2025, 1, 15, 15, 0, 30, tzinfo=UTC) - clock())
        until(lambda: bool(log.events("following")), "a follower started")
        started = log.events("following")
        assert started == [{"provider": "demo", "session": "2025-01-15", "symbols": 3}]

        def state() -> dict[str, Any]:
            return read_state(lake.live) or {}

        until(lambda: state().get("status") == "following", "subscribed")
        grace = timedelta(minutes=lake.config.backfill.provisional_grace_minutes)
        final_at = CLOSE + max(QUICK.close_grace, grace)
        while clock() < final_at:
            assert not log.events("follow_failed"), log.events("follow_failed")
            now = clock.advance(timedelta(minutes=1))
            stamp = now.isoformat()
            if now < final_at:
                until(lambda: state().get("last_message_at", "") >= stamp, "a minute")  # noqa: B023
        until(lambda: bool(log.events("followed")), "the session made final")
        followed = log.events("followed")[0]
        assert followed["session"] == "2025-01-15" and not followed["stopped"]
        assert followed["differences"] == 0

        # Later turns of the worker (each request served is one) do not follow the same
        # session again.
        for n, symbol in enumerate(["MSFT", "DEMO1"], start=2):
            lake.queue.add(symbol, interval="1day", days=5)
            until(lambda: len(log.events("done")) == n, "a request served after the close")  # noqa: B023
        assert len(log.events("following")) == 1, log.lines
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()
    stored = lake.bars(SYMBOLS, interval="1min", start=YESTERDAY, end=SESSION).collect()
    want = pl.concat([truth(SYMBOLS, YESTERDAY), truth(SYMBOLS, SESSION)]).sort("symbol", "ts")
    assert stored.select(want.columns).sort("symbol", "ts").equals(want)
    assert lake.live.parts() == []
    assert [f.state for f in lake.followers()] == ["finished"]


def test_stopping_the_worker_stops_its_follower_mid_session(lake) -> None:
    lake, clock = lake
    clock.advance(datetime(2025, 1, 15, 16, 0, 30, tzinfo=UTC) - clock())
    log = Logged()
    worker = lake.worker(log=log, follow_options=QUICK)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    until(lambda: (read_state(lake.live) or {}).get("status") == "following", "subscribed")
    worker.stop()
    thread.join(60)
    assert not thread.is_alive()
    assert log.events("followed")[0]["stopped"] is True
    assert (read_state(lake.live) or {})["status"] == "stopped"
    # Caught up first: every minute closed before the follower started is stored.
    seen = lake.bars(SYMBOLS, interval="1min", start=SESSION, end=SESSION).collect()
    closed = truth(SYMBOLS, SESSION).filter(pl.col("ts") < datetime(2025, 1, 15, 16, tzinfo=UTC))
    assert (
        closed.select("symbol", "ts")
        .join(seen.select("symbol", "ts"), on=["symbol", "ts"], how="anti")
        .is_empty()
    )


def test_a_second_worker_of_the_lake_leaves_the_stream_to_the_first(lake) -> None:
    lake, clock = lake
    clock.advance(datetime(2025, 1, 15, 16, 0, 30, tzinfo=UTC) - clock())
    with ProviderLock(lake.root, "demo") as held:  # as another worker of this lake holds it
        assert held
        log = Logged()
        worker = lake.worker(log=log, follow_options=QUICK)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        try:
            for n, symbol in enumerate(["AAPL", "MSFT"], start=1):
                lake.queue.add(symbol, interval="1day", days=5)
                until(lambda: len(log.events("done")) == n, "a turn of the worker")  # noqa: B023
            assert log.events("following") == []
            assert read_state(lake.live) is None
        finally:
            worker.stop()
            thread.join(60)
    with ProviderLock(lake.root, "demo") as again:  # released with its holder
        assert again


def test_a_worker_on_another_machine_follows_only_with_the_catalogs_lease(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on two machines starting at the same moment both see no follower running;
    the catalog's lease (a PostgreSQL advisory lock) lets one follow. Here another machine's
    worker holds it: this one follows nothing, and once it lets go, this one follows."""
    from barlake.catalog.postgres import PostgresCatalog

    monkeypatch.setenv("LAKE_CATALOG_URL", postgres_url)
    lake, clock = lake_at(tmp_path)
    assert isinstance(lake.catalog, PostgresCatalog)
    clock.advance(datetime(2025, 1, 15, 16, 0, 30, tzinfo=UTC) - clock())
    other = PostgresCatalog(postgres_url)  # the other machine's catalog: another connection
    log = Logged()
    worker = lake.worker(log=log, follow_options=QUICK)
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        with other.lease("follow:demo") as held:
            assert held
            thread.start()
            for n, symbol in enumerate(["AAPL", "MSFT"], start=1):
                lake.queue.add(symbol, interval="1day", days=5)
                until(lambda: len(log.events("done")) == n, "a turn of the worker")  # noqa: B023
            assert log.events("following") == []
            assert read_state(lake.live) is None
        # Let go: this worker follows at its next look after the retry wait.
        until(lambda: bool(log.events("following")), "the follower started")
        until(lambda: (read_state(lake.live) or {}).get("status") == "following", "following")
    finally:
        worker.stop()
        thread.join(60)
    assert not thread.is_alive()


def test_a_worker_of_another_provider_follows_nothing(lake) -> None:
    lake, clock = lake
    clock.advance(datetime(2025, 1, 15, 16, 0, 30, tzinfo=UTC) - clock())
    assert lake.worker(provider="demo").following is not None
    assert lake.worker(provider="yahoo").following is None


def test_a_follower_waits_out_a_moments_hold_of_the_fill_lock(lake) -> None:
    """A worker takes the fill lock for a moment at each look at its queue: a follower
    starting then waits for it instead of failing."""
    from barlake.storage.lock import FillLock

    lake, clock = lake
    clock.advance(datetime(2025, 1, 15, 16, 0, 30, tzinfo=UTC) - clock())
    stop = threading.Event()
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(lake.follow(provider="demo", stop=stop, options=QUICK))
        except Exception as exc:  # handed to the test thread
            out.append(exc)

    with FillLock(lake.root):  # held by this thread while the follower starts
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        time.sleep(0.5)
        assert not out  # still waiting, not refused
    until(lambda: (read_state(lake.live) or {}).get("status") == "following", "subscribed")
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    assert not isinstance(out[0], Exception), out
