"""Only dead jobs are interrupted: a job whose owner is alive (on this host or another) keeps
running, whoever calls ``interrupt_stale``; a killed owner's job is interrupted at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from barlake.catalog.embedded import Catalog
from barlake.cli import cli
from barlake.liveness import HOST, LEASE

LAKE = [sys.executable, "-m", "barlake"]


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAKE, "--lake", str(root), *args], capture_output=True, text=True, timeout=120, check=True
    )


def running_job(root: Path, timeout: float = 60) -> str:
    """The id of the first job the catalog shows running."""
    catalog = Catalog(root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = catalog.jobs(5)
        live = jobs.filter(pl.col("status") == "running")
        if live.height:
            return str(live["job_id"][0])
        time.sleep(0.1)
    raise AssertionError("no job started running")


def status_of(root: Path, job_id: str) -> str:
    return str(Catalog(root).job(job_id)["status"])


def test_a_live_fill_in_another_process_is_never_interrupted(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    run(root, "init")
    (root / "lake.yaml").write_text("providers:\n  demo:\n    options:\n      latency_ms: 500\n")
    run(root, "symbols", "add", "AAA,BBB,CCC")
    fill = subprocess.Popen(
        [
            *LAKE,
            "--lake",
            str(root),
            "fill",
            "--start",
            "2024-01-02",
            "--end",
            "2024-03-28",
            "--interval",
            "1min",
            "--parallel",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job_id = running_job(root)
        # This process is another process on the same host: the owner is alive.
        assert Catalog(root).interrupt_stale() == 0
        assert status_of(root, job_id) == "running"
        row = Catalog(root).job(job_id)
        assert row["host"] == HOST
        assert row["pid"] == fill.pid
    finally:
        fill.send_signal(signal.SIGKILL)
        fill.communicate(timeout=60)
    # The owner is gone: its job is interrupted at the next look, with its open progress rows.
    assert Catalog(root).interrupt_stale() == 1
    assert status_of(root, job_id) == "interrupted"
    progress = Catalog(root).progress(job_id)
    assert set(progress["status"].to_list()) <= {"done", "failed", "interrupted"}
    # And the next fill completes the work.
    (root / "lake.yaml").write_text("")
    done = subprocess.run(
        [
            *LAKE,
            "--lake",
            str(root),
            "--quiet",
            "fill",
            "--start",
            "2024-01-02",
            "--end",
            "2024-03-28",
            "--interval",
            "1min",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert json.loads(done.stdout)["status"] == "done", done.stderr


def insert_job(catalog: Catalog, *, host: str, pid: int, beat: datetime) -> str:
    job_id = str(uuid.uuid4())
    progress = pl.DataFrame(
        {"symbol": ["AAA"], "data_type": ["bars"], "interval": ["1day"], "status": ["pending"]}
    )
    catalog.create_job(job_id, progress, host=host, pid=pid, provider="demo")
    catalog.record(job_id, job={"heartbeat_at": beat})
    return job_id


def test_other_hosts_jobs_live_by_their_heartbeat(lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    now = datetime.now(UTC)
    fresh = insert_job(catalog, host="worker-2", pid=1, beat=now)
    silent = insert_job(catalog, host="worker-3", pid=1, beat=now - LEASE - timedelta(seconds=5))
    # A pid that is alive here but whose heartbeat stopped long ago (a reused pid, or a wedged
    # owner) counts as gone too.
    wedged = insert_job(catalog, host=HOST, pid=os.getpid(), beat=now - 2 * LEASE)
    mine = insert_job(catalog, host=HOST, pid=os.getpid(), beat=now)
    assert catalog.interrupt_stale() == 2
    assert {j: status_of(lake_root, j) for j in (fresh, silent, wedged, mine)} == {
        fresh: "running",
        silent: "interrupted",
        wedged: "interrupted",
        mine: "running",
    }
    assert catalog.progress(silent)["status"].to_list() == ["interrupted"]
    assert catalog.progress(fresh)["status"].to_list() == ["pending"]


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_job_whose_owner_died_reads_as_interrupted_at_once(lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    job_id = insert_job(catalog, host=HOST, pid=dead_pid(), beat=datetime.now(UTC))
    alive = insert_job(catalog, host=HOST, pid=os.getpid(), beat=datetime.now(UTC))
    runner = CliRunner()

    def lake_json(*args: str) -> object:
        out = runner.invoke(cli, ["--lake", str(lake_root), *args, "--json"])
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    status = lake_json("status", job_id)
    assert status["status"] == "interrupted"  # type: ignore[index]
    assert status["progress"] == {"interrupted": 1}  # type: ignore[index]
    listed = {j["job_id"]: j["status"] for j in lake_json("jobs")}  # type: ignore[attr-defined]
    assert listed == {job_id: "interrupted", alive: "running"}
    assert lake_json("status", alive)["status"] == "running"  # type: ignore[index]
    # Shown, not written: reads took no write lock. The next fill's clean-up records it.
    raw = catalog.rows("SELECT status FROM jobs WHERE job_id = ?", [job_id])
    assert raw == [{"status": "running"}]
    assert catalog.interrupt_stale() == 1
    assert catalog.rows("SELECT status FROM jobs WHERE job_id = ?", [job_id]) == [
        {"status": "interrupted"}
    ]
    assert catalog.progress(job_id)["status"].to_list() == ["interrupted"]
