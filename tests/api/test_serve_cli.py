"""``lake serve`` as a process: its URL on stdout, a refused binding, the CLI reading the same
lake while the service fills it, a clean stop on SIGTERM, and the token in no log line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from barlake.lake import Lake

from .support import SYMBOLS, TOKEN, eventually

ENV = {**os.environ, "LAKE_API_TOKEN": TOKEN}


def lake_cli(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "barlake", "--lake", str(root), *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=120,
        check=False,
    )


def lake_cli_all(root: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run ``lake`` commands at the same time; their results in order."""
    running = [
        (
            args,
            subprocess.Popen(
                [sys.executable, "-m", "barlake", "--lake", str(root), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=ENV,
            ),
        )
        for args in commands
    ]
    done = []
    for args, proc in running:
        out, err = proc.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return done


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _root(tmp_path)


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    Lake.init(root).add_symbols(SYMBOLS[:20])
    # Slow pages keep the job running while the CLI looks at the lake.
    (root / "lake.yaml").write_text("providers:\n  demo:\n    options:\n      latency_ms: 1000\n")
    return root


def test_another_address_without_a_token_is_refused(root: Path) -> None:
    env = {k: v for k, v in ENV.items() if k != "LAKE_API_TOKEN"}
    done = lake_cli(root, "serve", "--host", "0.0.0.0", "--port", "0", env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: refusing to serve 0.0.0.0 without a token: set LAKE_API_TOKEN "
        "(or bind 127.0.0.1, the default)"
    ]


def test_the_cli_works_while_the_service_fills_the_lake(root: Path) -> None:
    assert _serve_and_fill(root) == []  # the embedded catalog's worker is a thread


@pytest.mark.postgres
def test_on_postgresql_the_workers_are_processes_of_their_own(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with the catalog on PostgreSQL: the worker is a ``lake worker`` child of the
    service (another interpreter than the API's), which ends with it."""
    monkeypatch.setenv("LAKE_CATALOG_URL", postgres_url)
    ENV["LAKE_CATALOG_URL"] = postgres_url
    try:
        children = _serve_and_fill(_root(tmp_path))
    finally:
        del ENV["LAKE_CATALOG_URL"]
    assert len(children) == 1
    assert all(not child.exists() for child in children)  # stopped with the service


def _children(pid: int) -> list[Path]:
    """The /proc folders of ``pid``'s child processes."""
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [Path(f"/proc/{child}") for child in found]


def _serve_and_fill(root: Path) -> list[Path]:
    """``lake serve`` fills a request while the CLI reads the lake; its child processes."""
    server = subprocess.Popen(
        [sys.executable, "-m", "barlake", "--lake", str(root), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    children: list[Path] = []
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=30) as client:
            eventually(lambda: client.get("/health").status_code == 200, "the service starting")
            assert (
                client.post(
                    "/backfills",
                    json={"days": 5},
                    headers={"Authorization": "Bearer wrong-" + TOKEN[::-1]},
                ).status_code
                == 401
            )
            # Past dates: on the wall clock, a session still trading would stay a gap.
            june = {"start": "2024-06-03", "end": "2024-06-28"}
            body = {"interval": ["1day", "1hour", "5min"], **june}
            queued = client.post(
                "/backfills", json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            ).json()

            def running() -> bool:
                return client.get(f"/backfills/{queued['id']}").json()["job_id"] is not None

            eventually(running, "the worker starting a job for the request")
            children = [c for c in _children(server.pid) if "worker" in _command(c)]
            health = client.get("/health").json()["workers"]
            # Its worker is a process of its own, registered in the catalog like any other.
            assert health == {
                "configured": 1,
                "alive": 1,
                "registered": 1,
                "registered_alive": 1,
            }
            # The three commands at once, while the worker holds its request.
            status, jobs, gaps = lake_cli_all(
                root,
                ["status", "--json"],
                ["jobs", "--json"],
                [
                    "gaps",
                    "--json",
                    "--interval",
                    "1day",
                    "--start",
                    june["start"],
                    "--end",
                    june["end"],
                ],
            )
            assert status.returncode == 0, status.stderr
            assert json.loads(status.stdout)["status"] in ("running", "done")
            assert jobs.returncode == 0, jobs.stderr
            assert len(json.loads(jobs.stdout)) == 1
            assert gaps.returncode in (0, 1), gaps.stderr
            assert isinstance(json.loads(gaps.stdout), list)

            def finished() -> bool:
                return client.get(f"/backfills/{queued['id']}").json()["state"] == "done"

            eventually(finished, "the request finishing")
            assert client.get("/gaps", params={"interval": "1day", **june}).json() == []
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert TOKEN not in out + err and TOKEN[::-1] not in out + err
    assert "POST /backfills" in err  # the access log is on, and holds no header
    assert any(" claimed " in line for line in err.splitlines()), err  # the worker logs too
    return children


def _command(proc: Path) -> str:
    return proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
