"""The seam test rig the stream tests share: a lake whose history ends the day before, a
vendor's REST emulator and its stream emulator on one manual clock, a follower in a thread, and
the session stepped a minute at a time until it is final."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from barlake.jobs.follow import FollowOptions, FollowResult, read_state
from barlake.providers.demo import generate
from barlake.providers.emulators import Emulator
from barlake.providers.emulators.stream import StreamEmulator, StreamFaults

KEY, SECRET = "pk-live-5c1e", "sk-live-90ad3b"
SESSION = date(2025, 1, 15)  # a Wednesday: XNYS 14:30-21:00 UTC
YESTERDAY = date(2025, 1, 14)
START = datetime(2025, 1, 15, 15, 0, 30, tzinfo=UTC)
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
OPEN, CLOSE = datetime(2025, 1, 15, 14, 30, tzinfo=UTC), datetime(2025, 1, 15, 21, tzinfo=UTC)
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
    rest: Emulator
    stream: StreamEmulator
    provider: str
    #: What the follower's thread ended with: its result, or the error it raised.
    out: list[Any] = field(default_factory=list)


def write_yaml(root: Path, provider: str, rest: Emulator, options: dict[str, Any]) -> None:
    entry = {"base_url": rest.url, "rate_limit_per_min": 60000, "options": options}
    (root / "lake.yaml").write_text(yaml.safe_dump({"providers": {provider: entry}}))


@contextmanager
def rig_of(
    tmp_path: Path,
    provider: str,
    rest: Emulator,
    stream: StreamEmulator,
    options: Callable[[StreamEmulator], dict[str, Any]],
) -> Iterator[Rig]:
    """A lake with ``provider`` (lake.yaml: ``rest``'s URL and the options that
    ``options(stream)`` gives once it listens) and yesterday's minute bars filled from
    ``rest``; both emulators start here, ``stream`` on the manual clock ``stream.clock``."""
    clock = stream.clock
    assert isinstance(clock, ManualClock)
    with rest, stream:
        root = tmp_path / "lake"
        Lake.init(root)
        write_yaml(root, provider, rest, options(stream))
        history = Lake.open(root, clock=fixed(datetime(2025, 1, 14, 23, tzinfo=UTC)))
        rest.now = history.clock()
        history.fill(SYMBOLS, interval="1min", start=YESTERDAY, end=YESTERDAY, provider=provider)
        rest.now = clock()
        yield Rig(Lake.open(root, clock=clock), clock, rest, stream, provider)


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
            out.append(rig.lake.follow(SYMBOLS, provider=rig.provider, options=options, **kwargs))
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
        # Read before the clock moves: the follower may notice a silence at once after.
        before = state(rig)
        silences, reconnects = before.get("silences", 0), before.get("reconnects", 0)
        dropped = rig.stream.dropped
        now = rig.rest.now = rig.clock.advance(timedelta(minutes=1))
        sent = rig.stream.tick()
        open_ = OPEN < now < CLOSE
        quiet = 0 if sent or not open_ else quiet + 1
        newest, stamp = rig.stream.newest, now.isoformat()
        if sent and rig.stream.dropped == dropped and newest is not None and newest < CLOSE:
            # Read up to the newest bar sent: a batch of a minute before, read only now,
            # would leave the follower a minute behind the clock.
            until(lambda: read_up_to(rig, newest, reconnects, stamp), "bars taken")  # noqa: B023
        elif sent:
            # The tick cut the connection (its bars may never arrive: the reconnect's REST
            # backfill has them), or sent only bars from the close on, which are no
            # session's: the follower heard them, or it reconnected.
            until(lambda: state(rig).get("last_message_at", "") >= stamp, "heard or reconnected")  # noqa: B023
        elif quiet >= 2 and silent_by_now(rig, now):
            until(lambda: state(rig).get("silences", 0) > silences, "silence noticed")  # noqa: B023


def read_up_to(rig: Rig, newest: datetime, reconnects: int, stamp: str) -> bool:
    """Whether the follower has read the stream up to the bar starting at ``newest``, or
    reconnected since the clock moved to ``stamp`` (bars sent to the connection it left are
    its REST backfill's)."""
    now = state(rig)
    if (now.get("last_bar") or "") >= newest.isoformat():
        return True
    return bool(now.get("reconnects", 0) > reconnects and now.get("last_message_at", "") >= stamp)


def silent_by_now(rig: Rig, now: datetime) -> bool:
    """Whether the follower has heard nothing for longer than its silence allows (a minute
    plus its grace) by ``now``: then it must notice. A reconnect that ended after the clock
    moved heard the stream later than the last bars did, and notices a minute later."""
    heard = state(rig).get("last_message_at")
    quiet = timedelta(seconds=60 + QUICK.grace_s)
    return heard is not None and now - datetime.fromisoformat(heard) > quiet


def minutes_seen(lake: Lake, day: date) -> pl.DataFrame:
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    return lake.bars(SYMBOLS, interval="1min", start=day, end=day).collect().select(cols)


def faulty_session(rig: Rig) -> FollowResult:
    """Follow ``SYMBOLS`` through the whole session, checking mid-session that every closed
    minute is visible (history included), and after it that the stored minutes are the
    vendor's record exactly, the live area is empty and the ledger final; the result."""
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
    return result
