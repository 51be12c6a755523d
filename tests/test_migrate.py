"""``lake migrate --storage``: a local lake's bar files moved into a bucket, verified, and the
lake answering exactly as before; a failed move leaves the lake as it was."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from pathlib import Path

import pytest
from tests.conftest import clock
from tests.s3support import Bucket
from tests.test_fill import lake as run

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
    report = json.loads(proc.stdout)
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
