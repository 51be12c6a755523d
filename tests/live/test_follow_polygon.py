"""The seams of following Polygon/Massive's stocks stream (``AM`` minute aggregates), on the
same simulated session as Alpaca's: history to live, every lost connection, live to final;
and the stream's refusals, which stop a follower with one line."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.live.rig import (
    FAULTS,
    KEY,
    START,
    SYMBOLS,
    Rig,
    connected,
    faulty_session,
    rig_of,
    until,
)

from barlake import Lake
from barlake.cli import cli
from barlake.cli.state import State
from barlake.clock import ManualClock
from barlake.config import ProviderConfig
from barlake.errors import AuthError, PermanentError
from barlake.providers.emulators import PolygonEmulator
from barlake.providers.emulators.polygon_stream import PolygonStreamEmulator
from barlake.providers.emulators.stream import StreamEmulator
from barlake.providers.polygon_stream import PolygonStream

WRONG = "pk-live-wrong-77"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock(START)
    rest = PolygonEmulator(api_key=KEY, now=clock())
    stream = PolygonStreamEmulator(clock, SYMBOLS, api_key=KEY, faults=FAULTS)

    def options(stream: StreamEmulator) -> dict[str, Any]:
        return {"api_key": KEY, "stream_url": stream.url}

    with rig_of(tmp_path, "polygon", rest, stream, options) as made:
        yield made


def source(rig: Rig, key: str = KEY) -> PolygonStream:
    return PolygonStream(ProviderConfig(options={"api_key": key, "stream_url": rig.stream.url}))


def test_a_faulty_session_ends_exactly_the_vendors_record(rig: Rig) -> None:
    faulty_session(rig)
    # Each reconnect found the old connection gone: none was evicted by the limit.
    assert isinstance(rig.stream, PolygonStreamEmulator) and rig.stream.evicted == 0


def test_the_wire_is_the_vendors(rig: Rig) -> None:
    """What a client reads: the statuses the vendor documents, and AM events whose fields
    give the lake's bar (``s`` the start in ms, ``e`` a minute later)."""
    import orjson
    from websockets.asyncio.client import connect

    async def talk() -> list[Any]:
        async with connect(f"{rig.stream.url}/stocks") as ws:
            frames = [orjson.loads(await ws.recv())]
            await ws.send(orjson.dumps({"action": "auth", "params": KEY}).decode())
            frames.append(orjson.loads(await ws.recv()))
            await ws.send(orjson.dumps({"action": "subscribe", "params": "AM.S01"}).decode())
            frames.append(orjson.loads(await ws.recv()))
            rig.stream.tick()
            rig.clock.advance(timedelta(minutes=1))
            rig.stream.tick()
            frames.append(orjson.loads(await ws.recv()))
            return frames

    connected_, authed, subscribed, bars = asyncio.run(talk())
    assert connected_ == [
        {"ev": "status", "status": "connected", "message": "Connected Successfully"}
    ]
    assert authed == [{"ev": "status", "status": "auth_success", "message": "authenticated"}]
    assert subscribed == [{"ev": "status", "status": "success", "message": "subscribed to: AM.S01"}]
    (am,) = [e for e in bars if e["ev"] == "AM"]
    assert set(am) == {"ev", "sym", "v", "av", "op", "vw", "o", "c", "h", "l", "a", "z", "s", "e"}
    assert am["sym"] == "S01" and am["e"] - am["s"] == 60_000
    assert am["s"] == int(START.replace(second=0).timestamp() * 1000)  # 15:00, closed at 15:01
    assert am["av"] >= am["v"] > 0 and am["l"] <= min(am["o"], am["c"]) <= am["h"]


def test_a_refused_key_is_an_auth_error_without_the_key(rig: Rig) -> None:
    async def attempt() -> None:
        follower = source(rig, WRONG)
        try:
            await follower.open(SYMBOLS)
        finally:
            await follower.aclose()

    with pytest.raises(AuthError) as raised:
        asyncio.run(attempt())
    text = str(raised.value)
    assert "authentication failed (auth_failed)" in text and "\n" not in text
    assert WRONG not in text and KEY not in text


def test_a_second_connection_evicts_the_first_with_a_permanent_error(rig: Rig) -> None:
    async def attempt() -> None:
        follower, other = source(rig), source(rig)
        try:
            await follower.open(SYMBOLS)
            await other.open(["S01"])  # another process, same key: the vendor closes ours
            await follower.receive()
        finally:
            await other.aclose()
            await follower.aclose()

    with pytest.raises(PermanentError) as raised:
        asyncio.run(attempt())
    text = str(raised.value)
    assert "Maximum number of websocket connections exceeded" in text
    assert "(max_connections)" in text and "\n" not in text and KEY not in text
    assert isinstance(rig.stream, PolygonStreamEmulator) and rig.stream.evicted == 1


def invoke_follow(root: Path) -> Result:
    args = ["--lake", str(root), "follow", "S01,S02", "--provider", "polygon"]
    return CliRunner().invoke(cli, args)


@pytest.mark.parametrize(
    ("refusal", "said"),
    [
        ("key", "authentication failed (auth_failed)"),
        ("taken", "Maximum number of websocket connections exceeded"),
    ],
)
def test_lake_follow_stops_with_exit_3_and_one_line(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, refusal: str, said: str
) -> None:
    root = rig.lake.root
    monkeypatch.setattr(State, "lake", lambda self: Lake.open(root, clock=rig.clock))
    if refusal == "key":  # the stream refuses the key the REST API takes
        rig.stream.api_key = WRONG
        result = invoke_follow(root)
    else:  # once the follower streams, another process opens the key's one connection
        done = threading.Event()

        def take() -> None:
            async def hold() -> None:
                other = source(rig)
                await other.open(["S03"])
                await asyncio.to_thread(done.wait, 60)
                await other.aclose()

            until(lambda: connected(rig) or done.is_set(), "the follower is subscribed")
            if not done.is_set():
                asyncio.run(hold())

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        try:
            result = invoke_follow(root)  # in the main thread: it handles signals
        finally:
            done.set()
            thread.join(60)
        assert isinstance(rig.stream, PolygonStreamEmulator) and rig.stream.evicted == 1
    assert result.exit_code == 3, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0]
    everything = result.output + result.stderr
    everything += "".join(p.read_text(errors="ignore") for p in root.rglob("*.json"))
    for secret in (KEY, WRONG):
        assert secret not in everything
