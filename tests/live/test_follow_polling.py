"""Following a provider without a stream: Yahoo's REST chart API polled once a minute of a
simulated session, failing now and then, ends exactly the vendor's record."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from tests.live.rig import QUICK, SESSION, truth, until

from barlake import Lake
from barlake.clock import ManualClock
from barlake.jobs.follow import FollowResult, read_state
from barlake.providers.emulators import YahooEmulator

SYMBOLS = [f"P{i:02d}" for i in range(8)]


@pytest.fixture
def yahoo(tmp_path: Path) -> Iterator[tuple[Lake, ManualClock, YahooEmulator]]:
    clock = ManualClock(datetime(2025, 1, 15, 15, 0, 30, tzinfo=UTC))
    with YahooEmulator(now=clock(), faults="5xx=0.05", seed=3) as rest:
        root = tmp_path / "lake"
        Lake.init(root)
        entry = {"base_url": rest.url, "rate_limit_per_min": 60000, "timeout_s": 5}
        (root / "lake.yaml").write_text(yaml.safe_dump({"providers": {"yahoo": entry}}))
        yield Lake.open(root, clock=clock), clock, rest


def test_polling_yahoo_through_a_session(yahoo: tuple[Lake, ManualClock, YahooEmulator]) -> None:
    lake, clock, rest = yahoo
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(lake.follow(SYMBOLS, provider="yahoo", options=QUICK))
        except Exception as exc:  # handed to the test thread
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: (read_state(lake.live) or {}).get("status") == "following" or bool(out), "up")
    for _ in range(390):
        assert not out, out
        now = rest.now = clock.advance(timedelta(minutes=1))
        stamp = now.isoformat()
        if now < datetime(2025, 1, 15, 21, tzinfo=UTC):
            until(
                lambda: (
                    (read_state(lake.live) or {}).get("last_message_at", "") >= stamp  # noqa: B023
                    or bool(out)
                ),
                "a poll taken",
            )
        if now == datetime(2025, 1, 15, 18, 0, 30, tzinfo=UTC):  # mid-session: no gap
            closed = truth(SYMBOLS, SESSION).filter(
                pl.col("ts") < datetime(2025, 1, 15, 18, tzinfo=UTC)
            )

            def caught_up() -> bool:
                seen = lake.bars(SYMBOLS, interval="1min", start=SESSION, end=SESSION).collect()
                return seen.select("symbol", "ts").equals(closed.select("symbol", "ts"))  # noqa: B023

            until(caught_up, "every closed minute visible")
    thread.join(60)
    result = out[0]
    assert isinstance(result, FollowResult), result
    assert result.state.bars > 0
    stored = lake.bars(SYMBOLS, interval="1min", start=SESSION, end=SESSION).collect()
    want = truth(SYMBOLS, SESSION)
    got = stored.select(want.columns)
    assert got.height == want.height
    assert got.select("symbol", "ts").is_duplicated().sum() == 0
    assert got.equals(want)
    assert lake.live.parts() == []
