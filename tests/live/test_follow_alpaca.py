"""The seams of following Alpaca's stream, on a simulated session fast-forwarded by a manual
clock: history to live, every lost connection, live to final."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.live.rig import FAULTS, KEY, SECRET, START, SYMBOLS, Rig, faulty_session, rig_of

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
