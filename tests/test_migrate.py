"""``lake migrate``: a laptop lake's catalog moved into PostgreSQL and its bar files into a
bucket, verified, and the lake answering exactly as before; a failed move leaves the lake as it
was (and the database empty)."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from tests import pgserver
from tests.conftest import clock
from tests.s3support import Bucket
from tests.test_fill import lake as run

from barlake.catalog.postgres import PostgresCatalog
from barlake.errors import StorageError
from barlake.lake import Lake
from barlake.providers.demo import demo_listing_date
from barlake.storage.objectstore import ObjectStore

SPAN = {"start": date(2024, 1, 2), "end": date(2024, 6, 28)}
SYMBOLS = [f"M{i:03d}" for i in range(200)]
INTRADAY = [s for s in SYMBOLS if demo_listing_date(s) is None][:3]


def local_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "bars").rglob("*.parquet"))
    }


def answers(lake: Lake) -> tuple[object, ...]:
    gaps = [g.to_dict() for g in lake.gaps(SYMBOLS, interval="1day", start=date(2023, 6, 1))]
    plan = lake.plan(SYMBOLS, interval="1day", start=date(2023, 6, 1), end=SPAN["end"])
    daily = lake.bars(SYMBOLS, interval="1day", **SPAN).collect()
    hourly = lake.bars(INTRADAY, interval="1hour", **SPAN).collect()
    return gaps, plan.total_requests, daily, hourly


@pytest.fixture
def laptop(tmp_path: Path) -> Lake:
    lake = Lake.init(tmp_path / "lake", clock=clock)
    lake.add_symbols(SYMBOLS)
    assert lake.fill(SYMBOLS, interval="1day", **SPAN).ok
    assert lake.fill(INTRADAY, interval="1hour", **SPAN).ok
    return lake


def test_a_migrated_lake_answers_as_the_source_did(laptop: Lake, bucket: Bucket) -> None:
    before = answers(laptop)
    assert before[0] and before[1] > 0  # gaps before 2024 and requests to fill them
    files = local_files(laptop.root)
    assert not (laptop.root / "lake.yaml").exists()
    proc = run(
        laptop.root, "migrate", "--storage", bucket.url, "--endpoint-url", bucket.server.endpoint,
        "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["storage"]
    assert report["files"] == len(files) and report["rows"] > 200 * 100
    # Every file in the bucket, byte for byte; the local ones untouched.
    assert sorted(k for k in bucket.listing("bars/")) == sorted(files)
    assert {k: hashlib.sha256(bucket.get(k)).hexdigest() for k in files} == files
    assert local_files(laptop.root) == files
    assert (laptop.root / "lake.yaml").read_text() == (
        f"storage:\n  url: {bucket.url}\n  endpoint_url: {bucket.server.endpoint}\n"
    )

    moved = Lake.open(laptop.root, clock=clock)
    assert isinstance(moved.store.fs, ObjectStore)
    after = answers(moved)
    assert after[:2] == before[:2]
    assert after[2].equals(before[2]) and after[3].equals(before[3])
    # Reads come from the bucket: the local copies can go.
    for p in (laptop.root / "bars").rglob("*.parquet"):
        p.unlink()
    again = answers(Lake.open(laptop.root, clock=clock))
    assert again[:2] == before[:2] and again[2].equals(before[2])


def test_a_copy_that_reads_back_different_changes_nothing(
    laptop: Lake, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = local_files(laptop.root)
    real_open = ObjectStore.open

    def corrupt(self: ObjectStore, path: object) -> io.BytesIO:  # one byte flipped in transit
        data = bytearray(real_open(self, path).read())  # type: ignore[arg-type]
        if str(path).endswith("year=2024/data.parquet"):
            data[len(data) // 2] ^= 0xFF
        return io.BytesIO(bytes(data))

    monkeypatch.setattr(ObjectStore, "open", corrupt)
    with pytest.raises(StorageError, match=r"year=2024/data.parquet differs once copied"):
        laptop.move_storage(bucket.url, endpoint_url=bucket.server.endpoint)
    assert not (laptop.root / "lake.yaml").exists()
    assert local_files(laptop.root) == files
    assert Lake.open(laptop.root, clock=clock).store.fs.local_path(laptop.root) is not None


def test_a_server_that_is_down_or_a_bucket_in_use_changes_nothing(
    laptop: Lake, bucket: Bucket
) -> None:
    files = local_files(laptop.root)
    down = run(
        laptop.root, "migrate", "--storage", bucket.url, "--endpoint-url", "http://127.0.0.1:9"
    )
    assert down.returncode == 4 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "cannot reach object storage" in down.stderr
    bucket.server.client.put_object(
        Bucket=bucket.name,
        Key=f"{bucket.prefix}/bars/interval=1day/year=2020/data.parquet",
        Body=b"x",
    )
    used = run(
        laptop.root, "migrate", "--storage", bucket.url, "--endpoint-url", bucket.server.endpoint
    )
    assert used.returncode == 4, used.stderr
    assert "already holds bar files" in used.stderr
    assert not (laptop.root / "lake.yaml").exists()
    assert local_files(laptop.root) == files


# -- the catalog --------------------------------------------------------------------------

TABLES = ("symbols", "jobs", "ledger", "backfill_progress", "events")


def counts(lake: Lake) -> dict[str, int]:
    return {t: int(lake.catalog.query(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in TABLES}


def test_a_lake_moved_into_postgresql_and_s3_answers_as_the_source_did(
    laptop: Lake, bucket: Bucket, postgres_url: str
) -> None:
    laptop.set_layers(SYMBOLS[:5], 2)  # events, numbered by a sequence
    before, rows = answers(laptop), counts(laptop)
    source = hashlib.sha256((laptop.root / "catalog.duckdb").read_bytes()).hexdigest()
    files = local_files(laptop.root)
    proc = run(
        laptop.root, "migrate", "--catalog", postgres_url, "--storage", bucket.url,
        "--endpoint-url", bucket.server.endpoint, "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["catalog"]["rows"] >= sum(rows.values()) and report["storage"]["files"] == len(
        files
    )
    assert (laptop.root / "lake.yaml").read_text() == (
        f"catalog:\n  url: {postgres_url}\nstorage:\n  url: {bucket.url}\n"
        f"  endpoint_url: {bucket.server.endpoint}\n"
    )
    moved = Lake.open(laptop.root, clock=clock)
    assert isinstance(moved.catalog, PostgresCatalog) and isinstance(moved.store.fs, ObjectStore)
    assert counts(moved) == rows
    after = answers(moved)
    assert after[:2] == before[:2]
    assert after[2].equals(before[2]) and after[3].equals(before[3])
    assert moved.events().drop("id").equals(laptop.events().drop("id"))
    assert moved.events()["id"].to_list() == laptop.events()["id"].to_list()
    # The source is as it was, and the moved lake goes on: new events continue the numbering.
    assert hashlib.sha256((laptop.root / "catalog.duckdb").read_bytes()).hexdigest() == source
    assert local_files(laptop.root) == files
    moved.set_layers(SYMBOLS[5:7], 2)
    ids = moved.events()["id"].to_list()
    assert len(ids) == len(set(ids)) == rows["events"] + 6  # qualified 1, 2, promoted
    assert moved.fill_events(policy="scanner_layers").ok


def test_a_failed_file_copy_leaves_the_database_empty_and_a_rerun_succeeds(
    laptop: Lake, bucket: Bucket, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = ObjectStore.open

    def corrupt(self: ObjectStore, path: object) -> io.BytesIO:
        data = bytearray(real_open(self, path).read())  # type: ignore[arg-type]
        if str(path).endswith("year=2024/data.parquet"):
            data[len(data) // 2] ^= 0xFF
        return io.BytesIO(bytes(data))

    with monkeypatch.context() as patched:
        patched.setattr(ObjectStore, "open", corrupt)
        with pytest.raises(StorageError, match="differs once copied"):
            laptop.migrate(
                catalog=postgres_url, storage=bucket.url, endpoint_url=bucket.server.endpoint
            )
    assert not (laptop.root / "lake.yaml").exists()
    target = PostgresCatalog(postgres_url)
    assert all(target.query(f"SELECT count(*) AS n FROM {t}")["n"][0] == 0 for t in TABLES)
    assert isinstance(Lake.open(laptop.root, clock=clock).catalog, type(laptop.catalog))
    for key in bucket.listing("bars/"):  # what the failed move left in the bucket
        bucket.server.client.delete_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{key}")
    laptop.migrate(catalog=postgres_url)
    assert counts(Lake.open(laptop.root, clock=clock)) == counts(laptop)


def test_a_database_in_use_a_wrong_password_or_a_server_down_change_nothing(
    laptop: Lake, tmp_path: Path, postgres_server: str, postgres_url: str
) -> None:
    secret = "mig-Pw!41x"
    role = f"mover_{abs(hash(tmp_path)) % 10_000}"
    db = postgres_url.rsplit("/", 1)[1]
    pgserver.admin(
        postgres_server,
        f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'",
        f"GRANT ALL ON DATABASE {db} TO {role}",
    )
    pgserver.admin(postgres_url, f"GRANT ALL ON SCHEMA public TO {role}")
    host = postgres_url.split("@", 1)[1]
    wrong = f"postgresql://{role}:{secret}-no@{host}"
    down = f"postgresql://{role}:{secret}@127.0.0.1:1/{db}"
    for url in (wrong, down):
        proc = run(laptop.root, "migrate", "--catalog", url)
        assert proc.returncode == 4, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and secret not in proc.stderr
        assert not (laptop.root / "lake.yaml").exists()

    other = Lake.init(tmp_path / "other", clock=clock)  # a database that holds a lake already
    other.add_symbols("ZZZ")
    other.migrate(catalog=postgres_url)
    used = run(laptop.root, "migrate", "--catalog", postgres_url)
    assert used.returncode == 4 and "already holds rows" in used.stderr, used.stderr
    assert not (laptop.root / "lake.yaml").exists()

    good = f"postgresql://{role}:{secret}@{host}"
    fresh = pgserver.with_database(postgres_server, f"{db}_b")
    pgserver.admin(postgres_server, f"CREATE DATABASE {db}_b OWNER {role}")
    try:
        proc = run(laptop.root, "migrate", "--catalog", good.replace(f"/{db}", f"/{db}_b"))
        assert proc.returncode == 0, proc.stderr
        assert secret not in proc.stdout + proc.stderr
        assert "password is not in lake.yaml" in proc.stderr
        text = (laptop.root / "lake.yaml").read_text()
        assert secret not in text and f"{role}@" in text
        moved = Lake(laptop.root, clock=clock)
        assert moved.catalog_url is not None and secret not in moved.catalog_url
        ledger = PostgresCatalog(fresh).query("SELECT count(*) AS n FROM ledger")
        assert ledger["n"][0] == counts(laptop)["ledger"]
        assert pl.read_parquet(next((laptop.root / "bars").rglob("*.parquet"))).height > 0
    finally:
        from barlake.catalog.postgres.engine import POOLS

        POOLS.close(fresh)
        pgserver.admin(postgres_server, f"DROP DATABASE IF EXISTS {db}_b WITH (FORCE)")
