"""The seams of following Alpaca's stream, on a simulated session fast-forwarded by a manual
clock: history to live, every lost connection, live to final."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from barlake import Lake
from barlake.clock import ManualClock, fixed
from barlake.coverage.ledger import cover
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, PermanentError
from barlake.jobs.follow import FollowOptions, FollowResult, read_state
from barlake.providers.demo import generate
from barlake.providers.emulators import AlpacaEmulator
from barlake.providers.emulators.alpaca_stream import AlpacaStreamEmulator
from barlake.providers.emulators.stream import StreamFaults

KEY, SECRET = "pk-live-5c1e", "sk-live-90ad3b"
SESSION = date(2025, 1, 15)  # a Wednesday: XNYS 14:30-21:00 UTC
YESTERDAY = date(2025, 1, 14)
QUICK = FollowOptions(
    poll_s=0.02,
    grace_s=30,
    backoff_s=0.01,
    backoff_cap_s=0.05,
    flush_s=0.0,
    close_grace=timedelta(minutes=5),
)
FAULTS = StreamFaults(drops=10, corrections=0.02, duplicates=0.02, late=0.02, silence=3, seed=7)
SYMBOLS = [f"S{i:02d}" for i in range(50)]
#: The close (21:00 UTC) plus QUICK's close grace: the follower fetches the final record then.
FINAL_AT = datetime(2025, 1, 15, 21, 5, tzinfo=UTC)


def truth(symbols: list[str], day: date) -> pl.DataFrame:
    """The regular session's minute bars the vendor serves once the session is over."""
    frame = generate(symbols, "1min", DateRange(day, day + timedelta(days=1)))
    return frame.select("symbol", "ts", "open", "high", "low", "close", "volume").sort(
        "symbol", "ts"
    )


@dataclass
class Rig:
    lake: Lake
    clock: ManualClock
    rest: AlpacaEmulator
    stream: AlpacaStreamEmulator
    #: What the follower's thread ended with: its result, or the error it raised.
    out: list[Any] = field(default_factory=list)


def write_yaml(root: Path, rest: AlpacaEmulator, stream: AlpacaStreamEmulator, **opts: Any) -> None:
    options = {"api_key": KEY, "api_secret": SECRET, "stream_url": stream.url, **opts}
    entry = {"base_url": rest.url, "rate_limit_per_min": 60000, "options": options}
    (root / "lake.yaml").write_text(yaml.safe_dump({"providers": {"alpaca": entry}}))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock(datetime(2025, 1, 15, 15, 0, 30, tzinfo=UTC))
    with (
        AlpacaEmulator(api_key=KEY, api_secret=SECRET, now=clock()) as rest,
        AlpacaStreamEmulator(
            clock, SYMBOLS, api_key=KEY, api_secret=SECRET, faults=FAULTS
        ) as stream,
    ):
        root = tmp_path / "lake"
        Lake.init(root)
        write_yaml(root, rest, stream)
        history = Lake.open(root, clock=fixed(datetime(2025, 1, 14, 23, tzinfo=UTC)))
        rest.now = history.clock()
        history.fill(SYMBOLS, interval="1min", start=YESTERDAY, end=YESTERDAY, provider="alpaca")
        rest.now = clock()
        yield Rig(Lake.open(root, clock=clock), clock, rest, stream)


def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a background thread to reach ``condition`` (a bound against hanging only)."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


def follow_in_thread(
    rig: Rig, options: FollowOptions = QUICK, **kwargs: Any
) -> tuple[threading.Thread, list[Any]]:
    out = rig.out

    def run() -> None:
        try:
            out.append(rig.lake.follow(SYMBOLS, provider="alpaca", options=options, **kwargs))
        except Exception as exc:  # handed to the test thread
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def connected(rig: Rig) -> bool:
    return any(c.authenticated and c.symbols for c in rig.stream.connections)


def state(rig: Rig) -> dict[str, Any]:
    return read_state(rig.lake.live) or {}


def step(rig: Rig, minutes: int = 1) -> None:
    """Move the session on a minute at a time, each once the follower has taken the last one
    in (or, after two silent minutes, noticed the silence)."""
    quiet = 0
    for _ in range(minutes):
        until(lambda: connected(rig) or bool(rig.out), "the follower is subscribed")
        if rig.out and isinstance(rig.out[0], FollowResult) and rig.clock() > FINAL_AT:
            return  # the session was made final: the follower is done
        assert not rig.out, rig.out
        now = rig.rest.now = rig.clock.advance(timedelta(minutes=1))
        sent = rig.stream.tick()
        open_ = (
            datetime(2025, 1, 15, 14, 30, tzinfo=UTC) < now < datetime(2025, 1, 15, 21, tzinfo=UTC)
        )
        quiet = 0 if sent or not open_ else quiet + 1
        if sent:
            stamp = now.isoformat()
            until(lambda: state(rig).get("last_message_at", "") >= stamp, "bars taken")  # noqa: B023
        elif quiet == 2:
            silences = state(rig).get("silences", 0)
            until(lambda: state(rig).get("silences", 0) > silences, "silence noticed")  # noqa: B023


def minutes_seen(lake: Lake, day: date) -> pl.DataFrame:
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    return lake.bars(SYMBOLS, interval="1min", start=day, end=day).collect().select(cols)


def test_a_faulty_session_ends_exactly_the_vendors_record(rig: Rig) -> None:
    thread, out = follow_in_thread(rig)
    until(lambda: connected(rig), "subscribed")
    rig.stream.tick()  # the stream starts publishing now

    # Mid-session, no gap: every closed minute is visible, history included.
    step(rig, 120)  # to 17:00:30
    expected_now = truth(SYMBOLS, SESSION).filter(
        pl.col("ts") < datetime(2025, 1, 15, 16, 59, tzinfo=UTC)
    )

    def caught_up() -> bool:
        seen = minutes_seen(rig.lake, SESSION).filter(
            pl.col("ts") < datetime(2025, 1, 15, 16, 59, tzinfo=UTC)
        )
        return seen.select("symbol", "ts").equals(expected_now.select("symbol", "ts"))

    until(caught_up, "every closed minute is visible")
    assert minutes_seen(rig.lake, YESTERDAY).equals(truth(SYMBOLS, YESTERDAY))

    step(rig, 270 + 6)  # past the close (21:00) and its grace
    thread.join(60)
    assert not thread.is_alive()
    result = out[0]
    assert isinstance(result, FollowResult), result

    assert rig.stream.dropped >= 10  # every drop fault cut the follower's connection
    assert result.state.reconnects >= 11  # ten drops and one silence
    assert result.state.silences >= 1
    assert result.state.corrections > 0
    assert result.state.backfilled > 0
    # Before the final fetch, every minute of the session was already visible live.
    assert result.missing_live == 0
    assert result.final_bars == truth(SYMBOLS, SESSION).height

    stored = minutes_seen(rig.lake, SESSION)
    want = truth(SYMBOLS, SESSION)
    assert stored.height == want.height  # 0 missing, 0 extra
    assert stored.select("symbol", "ts").is_duplicated().sum() == 0
    assert stored.equals(want)  # the vendor's values, exactly
    assert rig.lake.live.parts() == []  # compacted away
    traded = set(want["symbol"])  # a symbol the demo halted both days has no bars to cover
    gaps = rig.lake.gaps(SYMBOLS, interval="1min", start=YESTERDAY, end=SESSION)
    assert [g for g in gaps if g.symbol in traded] == []
    ledger = rig.lake.catalog.ledger("1min", DateRange(SESSION, SESSION + timedelta(1)), SYMBOLS)
    assert ledger.filter(~pl.col("final")).height >= len(SYMBOLS)  # the live range, provisional
    covers = cover(ledger, SYMBOLS)
    assert all(not c.refetch for c in covers.values())  # ...settled by the final fetch


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
    stop = threading.Event()
    thread, _ = follow_in_thread(rig, stop=stop)
    until(lambda: connected(rig), "subscribed")
    rig.stream.tick()
    step(rig, 2)
    reconnects = state(rig).get("reconnects", 0)
    rig.stream.drop()
    until(lambda: state(rig).get("reconnects", 0) > reconnects, "reconnected")
    step(rig, 1)  # taken after the reconnect's backfill
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
