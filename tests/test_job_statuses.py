"""A job's status is read from the catalog again only when it can have changed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from barlake.catalog.embedded import Catalog
from barlake.jobs.history import Statuses
from barlake.liveness import HOST, LEASE


class Counting(Catalog):
    """The catalog, counting the reads of progress counts (one per status read)."""

    reads = 0

    def progress_counts(self, job_id: str) -> tuple[dict[str, int], int]:
        self.reads += 1
        return super().progress_counts(job_id)


def insert_job(catalog: Catalog, *, host: str = HOST, pid: int | None = None) -> str:
    job_id = str(uuid.uuid4())
    progress = pl.DataFrame(
        {"symbol": ["AAA"], "data_type": ["bars"], "interval": ["1day"], "status": ["pending"]}
    )
    pid = os.getpid() if pid is None else pid
    catalog.create_job(job_id, progress, host=host, pid=pid, provider="demo")
    catalog.record(job_id, job={"heartbeat_at": datetime.now(UTC)})
    return job_id


@pytest.fixture
def catalog(lake_root: Path) -> Counting:
    return Counting(lake_root)


def test_a_job_this_process_runs_is_read_again_after_this_process_writes(
    catalog: Counting,
) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog)
    first = statuses.status(job)
    assert [statuses.status(job)["requests_made"] for _ in range(5)] == [first["requests_made"]] * 5
    assert catalog.reads == 1
    catalog.record(job, job={"requests_made": 7, "heartbeat_at": datetime.now(UTC)})
    assert statuses.status(job)["requests_made"] == 7
    assert catalog.reads == 2


def test_a_job_of_another_process_is_read_every_time(catalog: Counting, lake_root: Path) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog, host="worker-2", pid=1)
    assert statuses.status(job)["requests_made"] in (None, 0)
    # Its owner writes from elsewhere: this process's writes do not see that happen.
    script = (
        "import sys; from barlake.catalog.embedded import Catalog; "
        "Catalog(sys.argv[1]).record(sys.argv[2], job={'requests_made': 3})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script, str(lake_root), job], check=True, env=env)
    assert statuses.status(job)["requests_made"] == 3
    assert catalog.reads == 2


def test_a_finished_job_is_read_once(catalog: Counting) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog, host="worker-2", pid=1)
    catalog.record(job, job={"status": "done", "finished_at": datetime.now(UTC)})
    answers = [statuses.status(job)["status"] for _ in range(3)]
    assert (answers, catalog.reads) == (["done"] * 3, 1)


def test_a_job_of_ours_silent_for_half_a_lease_is_read_again(catalog: Counting) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog)
    old = datetime.now(UTC) - LEASE / 2 - timedelta(seconds=1)
    catalog.record(job, job={"heartbeat_at": old})
    statuses.status(job)
    statuses.status(job)
    assert catalog.reads == 2


def test_a_prefix_is_resolved_every_time(catalog: Counting) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog)
    got: list[dict[str, Any]] = [statuses.status(job[:8]) for _ in range(2)]
    assert [str(g["job_id"]) for g in got] == [job, job]
    assert catalog.reads == 2


def test_a_caller_changing_the_answer_does_not_change_the_next(catalog: Counting) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog)
    statuses.status(job)["progress"]["done"] = 99
    assert "done" not in statuses.status(job)["progress"]


def test_kept_answers_without_the_catalog_only_while_current(catalog: Counting) -> None:
    statuses = Statuses(catalog)
    job = insert_job(catalog)
    assert statuses.kept(job) is None  # never read yet
    read = statuses.status(job)
    assert statuses.kept(job) == read
    catalog.record(job, job={"requests_made": 2, "heartbeat_at": datetime.now(UTC)})
    assert statuses.kept(job) is None  # this process wrote since: only a read can say
    assert statuses.status(job)["requests_made"] == 2
    assert catalog.reads == 2
