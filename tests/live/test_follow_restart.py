"""A ``lake follow`` process SIGKILLed mid-session and started again: the minutes it missed
are backfilled, nothing is duplicated, and a restart after the close makes the session final.

The follower runs as a real ``lake follow`` process; its clock is the test's, shared through
``LAKE_CLOCK`` (a file the test's ``SharedClock`` rewrites as it advances).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from tests.live.rig import (
    KEY,
    SECRET,
    SESSION,
    START,
    SYMBOLS,
    Rig,
    connected,
    minutes_seen,
    rig_of,
    step,
    truth,
    until,
)

from barlake import Lake
from barlake.clock import ENV, SharedClock
from barlake.coverage.ledger import cover
from barlake.domain.ranges import DateRange
from barlake.providers.emulators import AlpacaEmulator
from barlake.providers.emulators.alpaca_stream import AlpacaStreamEmulator
from barlake.providers.emulators.stream import StreamEmulator


def follow(rig: Rig, clock_file: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "barlake", "--lake", str(rig.lake.root), "follow",
           ",".join(SYMBOLS), "--provider", "alpaca", "--json"]  # fmt: skip
    env = {**os.environ, ENV: str(clock_file)}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def closed_minutes(lake: Lake, before: datetime) -> pl.DataFrame:
    return minutes_seen(lake, SESSION).filter(pl.col("ts") < before)


def test_a_killed_follower_restarts_backfills_what_it_missed_and_ends_final(
    tmp_path: Path,
) -> None:
    clock_file = tmp_path / "now"
    clock = SharedClock(clock_file, START)
    rest = AlpacaEmulator(api_key=KEY, api_secret=SECRET, now=clock())
    stream = AlpacaStreamEmulator(clock, SYMBOLS, api_key=KEY, api_secret=SECRET)

    def options(stream: StreamEmulator) -> dict[str, Any]:
        return {"api_key": KEY, "api_secret": SECRET, "stream_url": stream.url}

    procs: list[subprocess.Popen[str]] = []
    try:
        with rig_of(tmp_path, "alpaca", rest, stream, options) as rig:
            first = follow(rig, clock_file)
            procs.append(first)
            until(lambda: connected(rig), "the first follower is subscribed")
            stream.tick()
            step(rig, 5)  # to 15:05:30, live
            live_before = rig.lake.live.read()
            assert live_before.height > 0  # it wrote live bars before it died
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            until(lambda: not stream.connections, "the killed follower's connection closed")
            for _ in range(10):  # ten minutes pass while nobody follows: to 15:15:30
                rest.now = clock.advance(timedelta(minutes=1))
                stream.tick()
            killed = next(f for f in rig.lake.followers() if f.pid == first.pid)
            assert killed.state == "dead"

            second = follow(rig, clock_file)
            procs.append(second)
            until(lambda: connected(rig), "the restarted follower is subscribed")
            stream.tick()
            step(rig, 3)  # to 15:18:30
            upto = datetime(2025, 1, 15, 15, 17, tzinfo=UTC)
            want = truth(SYMBOLS, SESSION).filter(pl.col("ts") < upto)

            def caught_up() -> bool:
                seen = closed_minutes(rig.lake, upto)
                return seen.select("symbol", "ts").equals(want.select("symbol", "ts"))

            until(caught_up, "the minutes missed while it was down are visible")
            seen = closed_minutes(rig.lake, upto)
            assert seen.select("symbol", "ts").is_duplicated().sum() == 0
            assert seen.equals(want)
            reports = {f.pid: f for f in rig.lake.followers()}
            assert first.pid not in reports  # the restart took over the dead one's file
            assert reports[second.pid].state == "running"

            # Stopped, then started again after the close: it catches up and makes it final.
            second.send_signal(signal.SIGTERM)
            assert second.wait(60) == 130  # stopped: the exit of an interrupted command
            until(lambda: not stream.connections, "the stopped follower's connection closed")
            rest.now = clock.set(datetime(2025, 1, 15, 22, tzinfo=UTC))
            third = follow(rig, clock_file)
            procs.append(third)
            out, err = third.communicate(timeout=180)
            assert third.returncode == 0, err
            result = json.loads(out)
            assert result["session"] == SESSION.isoformat()

            stored = minutes_seen(rig.lake, SESSION)
            everything = truth(SYMBOLS, SESSION)
            assert stored.select("symbol", "ts").is_duplicated().sum() == 0
            assert stored.equals(everything)  # 0 missing, 0 extra, the vendor's values
            assert rig.lake.live.parts() == []
            traded = set(everything["symbol"])
            gaps = rig.lake.gaps(SYMBOLS, interval="1min", start=SESSION, end=SESSION)
            assert [g for g in gaps if g.symbol in traded] == []
            window = DateRange(SESSION, SESSION + timedelta(1))
            covers = cover(rig.lake.catalog.ledger("1min", window, SYMBOLS), SYMBOLS)
            assert covers and all(not c.refetch for c in covers.values())  # the ledger final
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
