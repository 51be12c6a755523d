"""The seams of following Alpaca's stream, on a simulated session fast-forwarded by a manual
clock: history to live, every lost connection, live to final."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.live.rig import (
    FAULTS,
    KEY,
    QUICK,
    SECRET,
    SESSION,
    START,
    SYMBOLS,
    Rig,
    connected,
    faulty_session,
    follow_in_thread,
    minutes_seen,
    rig_of,
    state,
    step,
    truth,
    until,
)

from barlake import Lake
from barlake.clock import ManualClock
from barlake.errors import AuthError, PermanentError
from barlake.providers.emulators import AlpacaEmulator
from barlake.providers.emulators.alpaca_stream import AlpacaStreamEmulator
from barlake.providers.emulators.stream import StreamEmulator


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock(START)
    rest = AlpacaEmulator(api_key=KEY, api_secret=SECRET, now=clock())
    stream = AlpacaStreamEmulator(clock, SYMBOLS, api_key=KEY, api_secret=SECRET, faults=FAULTS)

    def options(stream: StreamEmulator) -> dict[str, Any]:
        return {"api_key": KEY, "api_secret": SECRET, "stream_url": stream.url}

    with rig_of(tmp_path, "alpaca", rest, stream, options) as made:
        yield made


def test_a_faulty_session_ends_exactly_the_vendors_record(rig: Rig) -> None:
    faulty_session(rig)


@pytest.mark.parametrize(
    ("setup", "kind", "said"),
    [
        ({"api_secret": "wrong"}, AuthError, "auth failed (error 402)"),
        ({"taken": True}, PermanentError, "connection limit exceeded (error 406)"),
        ({"feed": "sip"}, PermanentError, "insufficient subscription (error 409)"),
    ],
)
def test_refusals_stop_with_one_clear_line(
    rig: Rig, setup: dict[str, Any], kind: type[Exception], said: str
) -> None:
    import asyncio

    from barlake.config import ProviderConfig
    from barlake.providers.alpaca_stream import AlpacaStream

    opts = {"api_key": KEY, "api_secret": SECRET, "stream_url": rig.stream.url}
    opts.update({k: v for k, v in setup.items() if k != "taken"})
    source = AlpacaStream(ProviderConfig(options=opts))

    async def attempt() -> None:
        holder = AlpacaStream(ProviderConfig(options={**opts}))
        if setup.get("taken"):  # another process holds the key's one connection
            await holder.open(["S01"])
        try:
            await source.open(SYMBOLS)
        finally:
            await holder.aclose()
            await source.aclose()

    with pytest.raises(kind) as raised:
        asyncio.run(attempt())
    text = str(raised.value)
    assert said in text and "\n" not in text
    assert KEY not in text and SECRET not in text and "wrong" not in text


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"refuse": True}, "auth failed (error 402)"),
        ({"taken": True}, "connection limit exceeded (error 406)"),
    ],
)
def test_lake_follow_stops_with_exit_3_and_one_line(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], said: str
) -> None:
    import asyncio

    from click.testing import CliRunner

    from barlake.cli import cli
    from barlake.cli.state import State
    from barlake.config import ProviderConfig
    from barlake.providers.alpaca_stream import AlpacaStream

    root = rig.lake.root
    taken = options.get("taken", False)
    if options.get("refuse"):  # the stream refuses the key the REST API takes
        rig.stream.api_secret = "sk-live-wrong-77"
    monkeypatch.setattr(State, "lake", lambda self: Lake.open(root, clock=rig.clock))
    ok = {"api_key": KEY, "api_secret": SECRET, "stream_url": rig.stream.url}
    holder = AlpacaStream(ProviderConfig(options=ok))
    loop = asyncio.new_event_loop()
    try:
        if taken:  # another process holds the key's one connection
            loop.run_until_complete(holder.open(["S01"]))
        result = CliRunner().invoke(
            cli, ["--lake", str(root), "follow", "S01,S02", "--provider", "alpaca"]
        )
    finally:
        loop.run_until_complete(holder.aclose())
        loop.close()
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0]
    everything = result.output + result.stderr
    everything += "".join(p.read_text(errors="ignore") for p in root.rglob("*.json"))
    for secret in (KEY, SECRET, "sk-live-wrong-77"):
        assert secret not in everything


def following(rig: Rig, minutes: int) -> tuple[threading.Thread, threading.Event]:
    """A follower in a thread, subscribed, ``minutes`` into the session; its stop."""
    stop = threading.Event()
    thread, _ = follow_in_thread(rig, stop=stop)
    until(lambda: connected(rig), "subscribed")
    rig.stream.tick()
    step(rig, minutes)
    return thread, stop


def stop_following(rig: Rig, thread: threading.Thread, stop: threading.Event) -> None:
    """Set ``stop`` and cut the connection, so that a follower waiting on its stream ends."""
    stop.set()
    rig.stream.drop()
    thread.join(60)
    assert not thread.is_alive()


def test_received_bars_are_written_without_waiting_for_the_next_frame(rig: Rig) -> None:
    # A poll of an hour: bars that waited for the next frame or the poll's end would never
    # show while the stream is quiet; they are written once their flush is due.
    options = dataclasses.replace(QUICK, poll_s=3600, flush_s=0.5)
    stop = threading.Event()
    thread, _ = follow_in_thread(rig, options, stop=stop)
    until(lambda: connected(rig), "subscribed")
    rig.stream.tick()
    rig.rest.now = rig.clock.advance(timedelta(minutes=1))
    assert rig.stream.tick() > 0  # the bars of 15:00, one frame, then nothing
    minute = datetime(2025, 1, 15, 15, tzinfo=UTC)

    def visible() -> bool:
        return rig.lake.live.read().filter(pl.col("ts") == minute).height > 0

    until(visible, "the minute's bars in the live area while the stream is quiet")
    stop_following(rig, thread, stop)


def test_a_reconnect_writes_only_what_the_stream_missed(rig: Rig) -> None:
    # The start's catch-up stored the session through 15:00:30; a reconnect's backfill must
    # not copy those minutes into the live area again.
    thread, stop = following(rig, minutes=2)
    reconnects = state(rig).get("reconnects", 0)
    rig.stream.drop()
    until(lambda: state(rig).get("reconnects", 0) > reconnects, "reconnected")
    step(rig, 1)  # taken after the reconnect
    live = rig.lake.live.read()
    started = datetime(2025, 1, 15, 15, tzinfo=UTC)
    assert live.height > 0
    assert live.filter(pl.col("ts") < started).height == 0
    assert live.select("symbol", "ts").is_duplicated().sum() == 0
    # Stored and live together: every minute of the session so far, once.
    seen = minutes_seen(rig.lake, SESSION).filter(pl.col("ts") < rig.clock() - timedelta(minutes=2))
    want = truth(SYMBOLS, SESSION).filter(pl.col("ts") < rig.clock() - timedelta(minutes=2))
    assert seen.select("symbol", "ts").equals(want.select("symbol", "ts"))
    stop_following(rig, thread, stop)


def test_a_slow_backfill_after_a_reconnect_does_not_hold_the_stream(rig: Rig) -> None:
    # The REST pages of the session so far take 10 s after this drop: the stream's next
    # minute must be written meanwhile, not after them.
    thread, stop = following(rig, minutes=1)
    backfilled = state(rig).get("backfilled", 0)
    accepted = rig.stream.accepted
    rig.rest.latency_s = 10.0
    rig.stream.drop()
    until(lambda: rig.stream.accepted > accepted and connected(rig), "subscribed again")
    now = rig.rest.now = rig.clock.advance(timedelta(minutes=1))
    sent_at = time.monotonic()
    assert rig.stream.tick() > 0
    minute = now.replace(second=0) - timedelta(minutes=1)

    def visible() -> bool:
        return rig.lake.live.read().filter(pl.col("ts") == minute).height > 0

    until(visible, "the stream's new minute in the live area")
    # Before the REST answer could have come (10 s after the fetch began, itself before the
    # tick): the stream's bars did not wait for it.
    assert time.monotonic() - sent_at < rig.rest.latency_s
    assert state(rig).get("backfilled", 0) == backfilled
    rig.rest.latency_s = 0.0
    stop_following(rig, thread, stop)
    assert state(rig)["status"] == "stopped"
