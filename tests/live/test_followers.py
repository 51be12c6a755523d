"""How a reader judges followers from their state files (``Lake.followers``), and the clock a
``lake`` process takes from ``LAKE_CLOCK``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from barlake import Lake
from barlake.clock import ENV, SharedClock, from_environment
from barlake.jobs.followers import FollowerFiles, judge
from barlake.liveness import HOST
from barlake.storage.filesystem import LocalFileSystem

OPEN = datetime(2025, 1, 15, 14, 30, tzinfo=UTC)
CLOSE = datetime(2025, 1, 15, 21, tzinfo=UTC)
WALL = datetime(2026, 12, 3, 12, tzinfo=UTC)


def state(id: str = "f1", **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": id,
        "provider": "alpaca",
        "symbols": ["AAA", "BBB"],
        "host": HOST,
        "pid": os.getpid(),
        "beat_s": 1.0,
        "grace_s": 30.0,
        "started_at": OPEN,
        "heartbeat_at": WALL - timedelta(seconds=1),
        "last_bar": datetime(2025, 1, 15, 15, 59, tzinfo=UTC),
        "last_message_at": datetime(2025, 1, 15, 16, 0, 2, tzinfo=UTC),
        "session_open": OPEN,
        "session_close": CLOSE,
        "reconnects": 3,
        "status": "following",
    }
    return {**base, **changes}


NOW = datetime(2025, 1, 15, 16, 0, 40, tzinfo=UTC)


def test_a_follower_is_judged_running_stale_dead_or_finished() -> None:
    assert judge(state(), NOW, WALL) == "running"
    # Nothing heard for longer than a minute plus its 30 s grace while the session is open.
    assert judge(state(), NOW + timedelta(seconds=53), WALL) == "stale"
    assert judge(state(), NOW + timedelta(seconds=49), WALL) == "running"
    # The same silence after the close is not stale: there is nothing to hear.
    late = state(last_message_at=CLOSE - timedelta(seconds=1))
    assert judge(late, CLOSE + timedelta(minutes=10), WALL) == "running"
    # A heartbeat older than five beats, or a pid gone on this host, is dead.
    assert judge(state(heartbeat_at=WALL - timedelta(seconds=6)), NOW, WALL) == "dead"
    assert judge(state(heartbeat_at=WALL - timedelta(seconds=4)), NOW, WALL) == "running"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert judge(state(pid=int(gone.stdout)), NOW, WALL) == "dead"
    # On another host only the heartbeat tells.
    assert judge(state(host="elsewhere", pid=int(gone.stdout)), NOW, WALL) == "running"
    assert judge(state(finished_at=WALL, heartbeat_at=WALL - timedelta(hours=1)), NOW, WALL) == (
        "finished"
    )


def test_lake_followers_reads_every_file_with_its_lag(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake", clock=lambda: NOW)
    files = FollowerFiles(lake.root, LocalFileSystem())
    now_wall = datetime.now(UTC)
    files.save(state("a", heartbeat_at=now_wall))
    files.save(state("b", heartbeat_at=now_wall - timedelta(minutes=5), symbols=["CCC"]))
    reports = {f.id: f for f in lake.followers()}
    assert set(reports) == {"a", "b"}
    a = reports["a"]
    assert (a.state, a.lag_s, a.reconnects) == ("running", 100.0, 3)
    assert reports["b"].state == "dead" and reports["b"].unwell and not reports["a"].unwell
    # A new follower of CCC takes over the dead one's file; the running one of AAA stays.
    taken = files.take_over(state("c", symbols=["CCC", "AAA"]))
    assert taken == ["b"]
    assert [f.id for f in lake.followers()] == ["a"]


def test_lake_clock_pins_or_follows_a_file(tmp_path: Path) -> None:
    assert from_environment({})().tzinfo is not None
    pinned = from_environment({ENV: "2025-01-15T15:00:00Z"})
    assert pinned() == datetime(2025, 1, 15, 15, tzinfo=UTC)
    shared = SharedClock(tmp_path / "now", datetime(2025, 1, 15, 15, tzinfo=UTC))
    follows = from_environment({ENV: str(tmp_path / "now")})
    assert follows() == datetime(2025, 1, 15, 15, tzinfo=UTC)
    shared.advance(timedelta(minutes=7))
    assert follows() == datetime(2025, 1, 15, 15, 7, tzinfo=UTC)
    with pytest.raises(ValueError, match="LAKE_CLOCK='tomorrow' is neither an ISO time"):
        from_environment({ENV: "tomorrow"})


def test_a_bad_lake_clock_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    Lake.init(root)
    base = [sys.executable, "-m", "barlake", "--lake", str(root)]
    bad = subprocess.run([*base, "status"], capture_output=True, text=True,
                         env={**os.environ, ENV: "not-a-time"})  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.count("\n") == 1 and "LAKE_CLOCK" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_lake_status_shows_the_followers(tmp_path: Path) -> None:
    import json

    root = tmp_path / "lake"
    lake = Lake.init(root)
    lake.add_symbols("AAA")
    assert lake.fill("AAA", interval="1day", days=5).ok
    files = FollowerFiles(root, LocalFileSystem())
    symbols = [f"S{i}" for i in range(5)]
    files.save(state("f1", symbols=symbols, heartbeat_at=datetime.now(UTC)))
    base = [sys.executable, "-m", "barlake", "--lake", str(root), "status"]
    env = {**os.environ, ENV: NOW.isoformat()}
    shown = subprocess.run([*base, "--json"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stderr
    (follower,) = json.loads(shown.stdout)["followers"]
    assert (follower["id"], follower["state"], follower["lag_s"]) == ("f1", "running", 100.0)
    assert follower["symbols"] == symbols and follower["reconnects"] == 3
    text = subprocess.run(base, capture_output=True, text=True, env=env)
    assert text.returncode == 0, text.stderr
    row = next(line for line in text.stdout.splitlines() if line.startswith("f1"))
    assert row.split()[:4] == ["f1", "alpaca", "running", "5:"]
    assert "S0,S1,S2,..." in row and row.split()[-2:] == ["100", "3"]
