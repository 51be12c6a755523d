"""A team's lake: a PostgreSQL catalog and queue shared by `lake worker` processes, one rate
limit per provider account across them, and no credential of the database anywhere.

Every test here needs a PostgreSQL server (``tests/pgserver.py``); the rate-limit one takes
two minutes of wall time and is marked ``long``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
import yaml
from tests.conftest import xnys

import pgserver
from barlake.catalog.postgres import PostgresCatalog
from barlake.catalog.repositories import Claim
from barlake.lake import Lake
from barlake.providers.demo import demo_halted, demo_listing_date
from providers.support import CREDENTIAL_ENV, KEY, SECRET, provider_entry
from test_ratelimit_shared import TimedAlpaca
from test_worker_process import Logged, wait_until

pytestmark = pytest.mark.postgres

SPRING = {"start": date(2024, 3, 1), "end": date(2024, 5, 31)}


def team_env(url: str, cache: Path) -> dict[str, str]:
    """A worker process's environment: the team's catalog, Alpaca's key, its own cache (as a
    machine of its own has)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    env.update(
        LAKE_CATALOG_URL=url,
        APCA_API_KEY_ID=KEY,
        APCA_API_SECRET_KEY=SECRET,
        BARLAKE_CACHE_DIR=str(cache),
    )
    return env


def team_lake(
    root: Path,
    em: Any,
    *,
    per_minute: float,
    worker: dict[str, Any],
    storage: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    entry = provider_entry("alpaca", em, credentials=False, **options)
    entry.update(rate_limit_per_min=per_minute)
    config = {
        "default_provider": "alpaca",
        "backfill": {"backoff_base_s": 0.01, "fetch_actions": False},
        "providers": {"alpaca": entry},
        "worker": worker,
        **({"storage": storage} if storage else {}),
    }
    (root / "lake.yaml").write_text(yaml.safe_dump(config))


class Worker(Logged):
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        cmd = [sys.executable, "-m", "barlake", "--lake", str(root), "worker", "--json-logs"]
        self.proc = subprocess.Popen(
            [*cmd, "--concurrency", "1"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.events = []
        import threading

        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def test_claims_are_fenced_by_worker_and_attempt(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("LAKE_CATALOG_URL", postgres_url)
    lake = Lake.init(tmp_path / "lake")
    lake.add_symbols(["AAA"])
    request, _ = lake.queue.add("AAA", interval="1day", **SPRING)
    catalog = lake.catalog
    first = catalog.claim("w1", "elsewhere", 1)
    assert first is not None and first["attempts"] == 1
    assert catalog.claim("w2", "elsewhere", 2) is None  # one holder at a time
    # w1's host is not this one: only the lease says it is gone
    time.sleep(0.3)
    assert catalog.requeue_abandoned(timedelta(seconds=0.1)) == [request.id]
    again = catalog.claim("w1", "elsewhere", 3)
    assert again is not None and again["attempts"] == 2
    # The first delivery (attempt 1) may no longer beat, record or finish; the second may.
    assert not catalog.heartbeat(request.id, "w1", attempt=1)
    ledger = pl.DataFrame(
        {
            "provider": ["alpaca"],
            "symbol": ["AAA"],
            "interval": ["1day"],
            "start_date": [SPRING["start"]],
            "end_date": [SPRING["end"]],
            "bars": [3],
            "fetched_at": [lake.clock()],
            "final": [True],
        }
    )
    catalog.record("00000000-0000-0000-0000-000000000001", ledger=ledger,
                   claim=Claim(request.id, "w1", 1))  # fmt: skip
    assert catalog.ledger("1day", window()).is_empty()
    assert not catalog.finish(request.id, "w1", "done", attempt=1)
    assert catalog.heartbeat(request.id, "w1", attempt=2)
    catalog.record("00000000-0000-0000-0000-000000000002", ledger=ledger,
                   claim=Claim(request.id, "w1", 2))  # fmt: skip
    assert catalog.ledger("1day", window())["bars"].to_list() == [3]
    assert catalog.finish(request.id, "w1", "done", attempt=2)
    assert lake.queue.get(request.id).state == "done"


def window():
    from barlake.domain.ranges import DateRange

    return DateRange.inclusive(SPRING["start"], SPRING["end"])


def test_three_workers_serve_30_requests_once_and_outlive_a_sigkill(postgres_url, bucket, tmp_path):
    em = TimedAlpaca(api_key=KEY, api_secret=SECRET, latency_s=0.4).start()
    root = tmp_path / "lake"
    storage = {"url": bucket.url, "endpoint_url": bucket.server.endpoint}
    team_lake(root, em, per_minute=60000, worker={"lease_s": 3, "poll_s": 0.1}, storage=storage)
    env = team_env(postgres_url, tmp_path / "cache")
    # Symbols that traded all spring: one listed later would fail, rightly, with "no bars".
    names = [n for n in (f"S{i:02d}" for i in range(40)) if demo_listing_date(n) is None][:30]
    workers: list[Worker] = []
    try:
        run = dict(capture_output=True, text=True, env=env, timeout=120)
        base = [sys.executable, "-m", "barlake", "--lake", str(root)]
        assert subprocess.run([*base, "init"], **run).returncode == 0  # type: ignore[call-overload]
        os.environ["LAKE_CATALOG_URL"] = postgres_url
        try:
            lake = Lake.open(root)
            lake.add_symbols(names)
            ids = [lake.queue.add(n, interval="1day", **SPRING)[0].id for n in names]
        finally:
            del os.environ["LAKE_CATALOG_URL"]
        workers = [Worker(root, env) for _ in range(3)]
        # SIGKILL the first worker to claim its second request, while that request runs.
        victim = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            for w in workers:
                if sum(e["event"] == "claimed" for e in w.events) >= 2:
                    victim = w
            time.sleep(0.01)
        assert victim is not None
        killed = [e["request"] for e in victim.events if e["event"] == "claimed"][-1]
        victim.proc.send_signal(signal.SIGKILL)
        victim.finish()
        os.environ["LAKE_CATALOG_URL"] = postgres_url
        try:
            lake = Lake.open(root)
            try:
                wait_until(lambda: lake.queue.depth()["done"] == 30, timeout=120)
            except AssertionError:
                tails = [[e for e in w.events if e["event"] != "progress"][-4:] for w in workers]
                failed = [(r.id, r.attempts, r.error) for r in lake.queue.list(state="failed")]
                raise AssertionError((lake.queue.depth(), failed, tails)) from None
            rows = {r.id: r for r in lake.queue.list(limit=100)}
            bars = lake.bars(interval="1day").collect()
        finally:
            del os.environ["LAKE_CATALOG_URL"]
    finally:
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.finish(timeout=30)
            finally:
                w.kill()
        em.stop()
    assert {rows[i].state for i in ids} == {"done"}
    done = [e["request"] for w in workers for e in w.events if e["event"] == "done"]
    assert sorted(done) == sorted(ids)  # each request done exactly once
    survivors = [w for w in workers if w is not victim]
    if killed not in [e["request"] for e in victim.events if e["event"] == "done"]:
        assert rows[killed].attempts == 2
        assert killed in [e["request"] for w in survivors for e in w.events if e["event"] == "done"]
    assert {s for s, _ in em.log} == {200}
    assert bars.height == bars.unique(["symbol", "ts"]).height  # 0 duplicate rows
    assert sorted(bars["symbol"].unique()) == names
    per_symbol = dict(bars.group_by("symbol").len().iter_rows())
    spring = xnys(SPRING["start"], SPRING["end"])
    assert len(spring) == 64
    # every session of March to May 2024 the symbol traded (the vendor's halts have none)
    assert per_symbol == {n: sum(not demo_halted(n, d) for d in spring) for n in names}
    keys = bucket.listing("bars/")
    assert keys and not list((root / "bars").rglob("*.parquet"))  # the files are in the bucket
    for key in keys:
        pl.read_parquet(bucket.get(key))  # every file readable


def test_credentials_appear_nowhere(postgres_server, postgres_url, tmp_path):
    secret = "pw-Qx7!zz9"
    role = f"guarded_{os.getpid()}"
    pgserver.admin(
        postgres_server,
        f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'",
        f"GRANT ALL ON DATABASE {postgres_url.rsplit('/', 1)[1]} TO {role}",
    )
    host = postgres_url.split("@", 1)[1]
    db = host.rsplit("/", 1)[1]
    pgserver.admin(
        pgserver.with_database(postgres_server, db), f"GRANT ALL ON SCHEMA public TO {role}"
    )
    good = f"postgresql://{role}:{secret}@{host}"
    wrong = f"postgresql://{role}:{secret}-no@{host}"
    down = f"postgresql://{role}:{secret}@127.0.0.1:1/{db}"
    root = tmp_path / "lake"
    base = [sys.executable, "-m", "barlake", "--lake", str(root)]

    def lake(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LAKE_CATALOG_URL": url}
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120)

    outputs = []
    for url in (wrong, down):
        for args in (("init",), ("status",), ("symbols", "list")):
            proc = lake(url, *args)
            outputs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 4, proc.stderr
            assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error"), proc.stderr
            assert "***" in proc.stderr or role in proc.stderr
    assert "password authentication failed" in outputs[0]
    for args in (("init",), ("symbols", "add", "AAA,BBB"), ("config", "show"),
                 ("fill", "--start", "2024-06-03", "--end", "2024-06-28", "--interval", "1day"),
                 ("status", "--json"), ("jobs",), ("info",)):  # fmt: skip
        proc = lake(good, *args)
        assert proc.returncode == 0, (args, proc.stderr)
        outputs.append(proc.stdout + proc.stderr)
    assert "catalog.url" in outputs[-5] and "postgresql://***@" in outputs[-5]
    for text in outputs:
        assert secret not in text
    for f in root.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    with psycopg.connect(postgres_url) as conn:
        listed = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        tables = [r[0] for r in conn.execute(listed)]
        for table in tables:
            for row in conn.execute(f"SELECT CAST(t AS TEXT) FROM {table} t"):
                assert secret not in row[0], table
    assert PostgresCatalog(good).where == f"postgresql://{role}:***@{host}"


@pytest.mark.long
def test_three_workers_share_one_rate_limit_across_machines(postgres_url, tmp_path):
    """Three 'machines' (a lake folder and cache each, one catalog) fill from one Alpaca key of
    60 requests a minute for two minutes: the emulator never sees more than 60 in a minute."""
    em = TimedAlpaca(api_key=KEY, api_secret=SECRET, rate_limit=60, window_s=60).start()
    names = [f"R{i:02d}" for i in range(30)]
    workers: list[Worker] = []
    try:
        roots = []
        for n in range(3):
            root = tmp_path / f"machine{n}"
            team_lake(root, em, per_minute=60, worker={"lease_s": 30, "poll_s": 0.2}, page_limit=1)
            env = team_env(postgres_url, tmp_path / f"cache{n}")
            proc = subprocess.run([sys.executable, "-m", "barlake", "--lake", str(root), "init"],
                                  capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            roots.append((root, env))
        os.environ["LAKE_CATALOG_URL"] = postgres_url
        try:
            lake = Lake.open(roots[0][0])
            lake.add_symbols(names)
            # 20 one-bar pages a request: 600 pages, far more than two minutes allow
            for n in names:
                lake.queue.add(n, interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 28))
        finally:
            del os.environ["LAKE_CATALOG_URL"]
        started = time.time()
        workers = [Worker(root, env) for root, env in roots]
        time.sleep(120)
    finally:
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.finish(timeout=60)
            finally:
                w.kill()
        em.stop()
    times = sorted(t for t, _ in em.served)
    assert {s for s, _ in em.log} == {200}  # no 429
    assert len(times) >= 100  # the workers did fill, together, for the two minutes
    busiest = max(sum(1 for t in times[i:] if t < start + 60) for i, start in enumerate(times))
    assert busiest <= 60, busiest
    served_by = [sum(e["event"] == "claimed" for e in w.events) for w in workers]
    assert all(n > 0 for n in served_by), served_by  # all three machines took part
    assert times[0] >= started


def test_an_idle_worker_claims_a_request_queued_elsewhere_before_its_poll(postgres_url, tmp_path):
    """The queue rings PostgreSQL's bell (NOTIFY): a worker polling every 30 s claims a request
    queued by another process within seconds, not at its next poll."""
    em = TimedAlpaca(api_key=KEY, api_secret=SECRET).start()
    root = tmp_path / "lake"
    team_lake(root, em, per_minute=60000, worker={"lease_s": 30, "poll_s": 30})
    env = team_env(postgres_url, tmp_path / "cache")
    worker: Worker | None = None
    try:
        run = dict(capture_output=True, text=True, env=env, timeout=120)
        base = [sys.executable, "-m", "barlake", "--lake", str(root)]
        assert subprocess.run([*base, "init"], **run).returncode == 0  # type: ignore[call-overload]
        worker = Worker(root, env)
        worker.wait_for("idle")  # it has looked at the empty queue: its next poll is 30 s off
        time.sleep(1)
        os.environ["LAKE_CATALOG_URL"] = postgres_url
        try:
            lake = Lake.open(root)
            lake.add_symbols(["AAA"])
            queued_at = time.monotonic()
            request, _ = lake.queue.add("AAA", interval="1day", **SPRING)
        finally:
            del os.environ["LAKE_CATALOG_URL"]
        claimed = worker.wait_for("claimed", timeout=20)
        took = time.monotonic() - queued_at
        assert claimed["request"] == request.id
        assert took < 10, took  # the poll would have taken up to 30 s
        worker.wait_for("done", timeout=60)
    finally:
        if worker is not None:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                assert worker.finish(timeout=30) == 0
            finally:
                worker.kill()
        em.stop()
