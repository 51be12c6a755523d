"""Following the demo offline, through its own in-process stream: a simulated session ends
exactly the demo's record, with nothing to correct at the final fetch."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.live.rig import QUICK, SESSION, START, YESTERDAY, truth, until

from barlake import Lake
from barlake.clock import ManualClock, fixed
from barlake.jobs.follow import FollowResult, read_state
from barlake.providers import open_stream
from barlake.providers.demo.stream import DemoStream

SYMBOLS = ["AAPL", "MSFT", "DEMO1", "ZZTOP"]
CLOSE = datetime(2025, 1, 15, 21, tzinfo=UTC)


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Lake, ManualClock]:
    root = tmp_path / "lake"
    Lake.init(root)
    history = Lake.open(root, clock=fixed(datetime(2025, 1, 14, 23, tzinfo=UTC)))
    history.fill(SYMBOLS, interval="1min", start=YESTERDAY, end=YESTERDAY, provider="demo")
    clock = ManualClock(START)
    return Lake.open(root, clock=clock), clock


def test_the_demo_stream_sends_each_minute_once_it_closes() -> None:
    clock = ManualClock(START)  # 15:00:30: the 15:00 minute is in progress
    stream = open_stream("demo", clock=clock)
    assert isinstance(stream, DemoStream)
    want = truth(["AAPL", "MSFT"], SESSION)

    async def run() -> list[pl.DataFrame]:
        await stream.open(["AAPL", "MSFT"])
        got = []
        clock.advance(timedelta(minutes=1))
        got.append((await stream.receive()).bars)  # 15:00
        clock.advance(timedelta(minutes=3))
        got.append((await stream.receive()).bars)  # 15:01-15:03, as one batch
        with pytest.raises(TimeoutError):  # nothing more until a minute closes
            await asyncio.wait_for(stream.receive(), 0.1)
        clock.advance(timedelta(minutes=5))
        await stream.open(["AAPL"])  # a reopen resumes at the minute in progress: 15:09
        clock.advance(timedelta(minutes=1))
        got.append((await stream.receive()).bars)
        await stream.aclose()
        return got

    first, three, reopened = asyncio.run(run())
    at = datetime(2025, 1, 15, 15, tzinfo=UTC)

    def minutes(start: int, stop: int, symbols: list[str]) -> pl.DataFrame:
        window = (pl.col("ts") >= at + timedelta(minutes=start)) & (
            pl.col("ts") < at + timedelta(minutes=stop)
        )
        return want.filter(window & pl.col("symbol").is_in(symbols))

    cols = want.columns
    assert first.select(cols).sort("symbol", "ts").equals(minutes(0, 1, ["AAPL", "MSFT"]))
    assert three.select(cols).sort("symbol", "ts").equals(minutes(1, 4, ["AAPL", "MSFT"]))
    assert reopened.select(cols).sort("symbol", "ts").equals(minutes(9, 10, ["AAPL"]))
    assert set(first["source"]) == {"demo"}


def test_following_the_demo_through_a_session(demo: tuple[Lake, ManualClock]) -> None:
    lake, clock = demo
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(lake.follow(SYMBOLS, provider="demo", options=QUICK))
        except Exception as exc:  # handed to the test thread
            out.append(exc)

    def state() -> dict[str, Any]:
        return read_state(lake.live) or {}

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    until(lambda: state().get("status") == "following" or bool(out), "subscribed")
    grace = timedelta(minutes=lake.config.backfill.provisional_grace_minutes)
    final_at = CLOSE + max(QUICK.close_grace, grace)  # the final fetch is due then
    while clock() < final_at:
        assert not out, out
        now = clock.advance(timedelta(minutes=1))
        stamp = now.isoformat()
        if now < final_at:
            until(lambda: state().get("last_message_at", "") >= stamp, "a minute taken")  # noqa: B023
        if now == datetime(2025, 1, 15, 18, 0, 30, tzinfo=UTC):  # mid-session: no gap
            closed = truth(SYMBOLS, SESSION).filter(
                pl.col("ts") < datetime(2025, 1, 15, 18, tzinfo=UTC)
            )

            def caught_up() -> bool:
                seen = lake.bars(SYMBOLS, interval="1min", start=SESSION, end=SESSION).collect()
                return seen.select("symbol", "ts").equals(closed.select("symbol", "ts"))  # noqa: B023

            until(caught_up, "every closed minute visible")
            assert lake.live.parts() != []  # ...from the live area
    until(lambda: bool(out), "the session made final")
    thread.join(60)
    result = out[0]
    assert isinstance(result, FollowResult), result
    assert result.state.reconnects == 0 and result.state.backfilled == 0  # the stream, all of it
    streamed = truth(SYMBOLS, SESSION).filter(pl.col("ts") >= START.replace(second=0))
    assert result.state.bars == streamed.height  # each minute from the one in progress at start
    assert result.differences == 0 and result.missing_live == 0  # the stream is the record
    stored = lake.bars(SYMBOLS, interval="1min", start=YESTERDAY, end=SESSION).collect()
    want = pl.concat([truth(SYMBOLS, YESTERDAY), truth(SYMBOLS, SESSION)]).sort("symbol", "ts")
    got = stored.select(want.columns).sort("symbol", "ts")
    assert got.height == want.height
    assert got.select("symbol", "ts").is_duplicated().sum() == 0
    assert got.equals(want)
    assert lake.live.parts() == []
