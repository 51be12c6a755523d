"""``lake queue`` and ``lake worker`` as processes: two workers on one lake, SIGKILL, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import pyarrow.dataset as pads
import pytest
import yaml
from click.testing import CliRunner
from tests.conftest import clock

from barlake.cli import cli, main
from barlake.lake import Lake

SPRING = ["--start", "2024-03-01", "--end", "2024-06-28"]
NAMES = "AAPL,MSFT,NVDA,SPY"


def lake_cmd(root, *args: str) -> list[str]:
    return [sys.executable, "-m", "barlake", "--lake", str(root), *args]


def run(root, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lake_cmd(root, *args), capture_output=True, text=True, timeout=120)


class Logged:
    """A ``lake worker --json-logs`` process and the events it has logged so far."""

    def __init__(self, root, *args: str) -> None:
        self.proc = subprocess.Popen(
            lake_cmd(root, "worker", "--json-logs", *args),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.events.append(json.loads(line))

    def wait_for(self, event: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for e in self.events:
                if e["event"] == event:
                    return e
            time.sleep(0.02)
        raise AssertionError(f"no {event!r} in {self.events}")

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def slow(lake_root):
    """A lake whose demo sleeps 800 ms a page: the 1min SPRING fill of NAMES is three pages, so
    its job runs for at least 2.4 s whatever the machine's load."""
    (lake_root / "lake.yaml").write_text(
        yaml.safe_dump({"providers": {"demo": {"options": {"latency_ms": 800}}}})
    )
    Lake.open(lake_root, clock=clock).add_symbols(NAMES)
    return lake_root


def wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_sigkilled_workers_request_is_finished_once_by_the_other(slow):
    workers = [Logged(slow, "--concurrency", "1"), Logged(slow, "--concurrency", "1")]
    try:
        for w in workers:
            w.wait_for("idle")
        added = run(slow, "queue", "add", "--symbols", NAMES, "--interval", "1min", *SPRING)
        assert added.returncode == 0, added.stderr
        request_id = added.stdout.strip()
        lake = Lake.open(slow)
        wait_until(lambda: lake.queue.get(request_id).job_id is not None)
        first = next(w for w in workers if any(e["event"] == "claimed" for e in w.events))
        second = next(w for w in workers if w is not first)
        time.sleep(1.0)  # into its second page
        first.proc.send_signal(signal.SIGKILL)
        assert first.finish() == -signal.SIGKILL
        wait_until(lambda: lake.queue.get(request_id).state == "done")
        second.proc.send_signal(signal.SIGTERM)
        assert second.finish() == 0
    finally:
        for w in workers:
            w.kill()

    done = lake.queue.get(request_id)
    assert done.attempts == 2, (first.events, second.events)
    assert done.worker == second.events[0]["worker"]
    assert [e["request"] for e in second.events if e["event"] == "requeued"] == [request_id]
    assert [e["event"] for e in second.events].count("done") == 1
    jobs = {j["job_id"]: j for j in lake.jobs().to_dicts()}
    assert len(jobs) == 2
    killed = next(j for j in jobs.values() if str(j["job_id"]) != done.job_id)
    assert killed["status"] == "interrupted"
    assert lake.status(done.job_id)["status"] == "done"
    # Only what was still missing was fetched again, and nothing twice.
    assert lake.gaps(NAMES, interval="1min", start=date(2024, 3, 1), end=date(2024, 6, 28)) == []
    bars = lake.bars(interval="1min").collect()
    assert bars.height == bars.unique(["symbol", "ts"]).height
    on_disk = pads.dataset(slow / "bars/interval=1min", partitioning="hive").count_rows()
    assert on_disk == bars.height


def test_two_workers_never_run_the_same_request(lake_root):
    names = [f"S{i:02d}" for i in range(4)]
    lake = Lake.open(lake_root, clock=clock)
    lake.add_symbols(names)
    spring = {"start": date(2024, 3, 1), "end": date(2024, 6, 28)}
    ids = [lake.queue.add(name, interval="1hour", **spring)[0].id for name in names]
    workers = [Logged(lake_root, "--once"), Logged(lake_root, "--once")]
    try:
        assert [w.finish() for w in workers] == [0, 0]
    finally:
        for w in workers:
            w.kill()
    lake = Lake.open(lake_root)
    claims = [e["request"] for w in workers for e in w.events if e["event"] == "claimed"]
    assert sorted(claims) == sorted(ids)
    assert {r.state for r in lake.queue.list()} == {"done"}
    assert {r.attempts for r in lake.queue.list()} == {1}
    assert lake.jobs(100).height == len(ids)


def test_sigterm_releases_the_request_in_flight_and_exits_0(slow):
    added = run(slow, "queue", "add", "--symbols", NAMES, "--interval", "1min", *SPRING)
    request_id = added.stdout.strip()
    lake = Lake.open(slow)
    worker = Logged(slow, "--concurrency", "1")
    try:
        worker.wait_for("claimed")
        wait_until(lambda: lake.queue.get(request_id).job_id is not None)
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.finish() == 0
    finally:
        worker.kill()
    assert [e["event"] for e in worker.events][-2:] == ["released", "stopped"]
    assert lake.queue.get(request_id).state == "queued"
    again = run(slow, "worker", "--once")
    assert again.returncode == 0, again.stderr
    assert lake.queue.get(request_id).state == "done"


def invoke(root, *args: str):
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)


def test_queue_commands_print_data_on_stdout_and_one_line_errors(lake_root):
    Lake.open(lake_root, clock=clock).add_symbols("AAPL")
    june = ["--start", "2024-06-03", "--end", "2024-06-28"]
    added = invoke(
        lake_root,
        "queue",
        "add",
        "--symbols",
        "AAPL",
        "--json",
        "--priority",
        "3",
        "--interval",
        "1day",
        *june,
    )
    assert added.exit_code == 0, added.stderr
    data = json.loads(added.stdout)
    assert (data["state"], data["priority"], data["new"], data["source"]) == (
        "queued",
        3,
        True,
        "cli",
    )
    listed = invoke(lake_root, "queue", "list")
    assert listed.exit_code == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "id",
        "state",
        "kind",
        "priority",
        "source",
        "provider",
        "what",
        "job_id",
        "created",
    ]
    assert row.startswith(data["id"][:8])
    assert "AAPL 1day 2024-06-03..2024-06-28" in row
    shown = invoke(lake_root, "queue", "show", data["id"][:8], "--json")
    assert json.loads(shown.stdout)["id"] == data["id"]
    worked = invoke(lake_root, "worker", "--once")
    assert worked.exit_code == 0, worked.stderr
    lines = worked.stderr.splitlines()
    assert [line.split()[1] for line in lines] == ["started", "claimed", "done", "stopped"]
    assert f"request={data['id'][:8]}" in lines[2]
    assert "bars_written=19" in lines[2]
    assert json.loads(invoke(lake_root, "queue", "list", "--json").stdout)[0]["state"] == "done"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("queue", "add", "--symbols", "NOPE"), "unknown symbol"),
        (("queue", "add", "--symbols", "AAPL", "--interval", "2day"), "2day"),
        (("queue", "add", "--symbols", "AAPL", "--provider", "nosuch"), "nosuch"),
        (
            ("queue", "add", "--symbols", "AAPL", "--start", "2024-06-28", "--end", "2024-06-03"),
            "before",
        ),
        (("queue", "add", "--symbols", "AAPL", "--policy", "nope"), "unknown policy"),
        (("queue", "show", "ffffffff"), "no single backfill request"),
        (("queue", "cancel", "ffffffff"), "no single backfill request"),
        (("queue", "list", "--state", "running"), "running"),
        (("worker", "--provider", "nosuch", "--once"), "nosuch"),
        (("worker", "--concurrency", "0"), "--concurrency"),
    ],
)
def test_bad_queue_and_worker_input_is_one_line_and_exit_2(lake_root, capsys, args, words):
    Lake.open(lake_root, clock=clock).add_symbols("AAPL")
    with pytest.raises(SystemExit) as exited:
        main(["--lake", str(lake_root), *args])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ")
    assert words in err
    assert Lake.open(lake_root).queue.list() == []
