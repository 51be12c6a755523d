"""The contract suite's axes: every test here runs once per storage backend.

``storage`` is where a lake keeps its bar files: ``local`` (the lake folder) or ``s3`` (a bucket
of the test S3 server, through lake.yaml's ``storage`` section). ``new_lake`` makes a lake on it;
another axis (a catalog backend) combines with this one by parametrising a fixture of its own
and writing its lake.yaml section in ``new_lake`` beside ``storage.yaml()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from tests.conftest import clock
from tests.s3support import Bucket

from barlake.lake import Lake


@dataclass
class Storage:
    name: str
    bucket: Bucket | None = None

    def yaml(self) -> str:
        """The lake.yaml section that puts a lake's bars here ('' for the lake folder)."""
        return self.bucket.yaml() if self.bucket else ""

    def versions(self, root: Path) -> dict[str, object]:
        """Every bar file (its path inside the lake) and its version: what a rewrite changes."""
        if self.bucket is None:
            return {
                str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino)
                for p in (root / "bars").rglob("*.parquet")
            }
        # The bucket keeps versions (see ``storage``): every PUT makes a new one.
        client, prefix = self.bucket.server.client, self.bucket.prefix
        return {
            key: client.head_object(Bucket=self.bucket.name, Key=f"{prefix}/{key}")["VersionId"]
            for key in self.bucket.listing("bars/")
        }

    def frames(self, root: Path, interval: str) -> list[pl.DataFrame]:
        """Each bar file of ``interval``, read straight from where it lives."""
        if self.bucket is None:
            files = sorted((root / "bars" / f"interval={interval}").rglob("*.parquet"))
            return [pl.read_parquet(f) for f in files]
        keys = self.bucket.listing(f"bars/interval={interval}/")
        return [pl.read_parquet(self.bucket.get(k)) for k in keys]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest) -> Storage:
    if request.param == "s3":
        bucket: Bucket = request.getfixturevalue("bucket")
        bucket.server.client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
        )
        return Storage("s3", bucket)
    return Storage("local")


@pytest.fixture
def new_lake(storage: Storage, tmp_path: Path) -> Callable[..., Lake]:
    """``new_lake(config="")``: a new lake on ``storage`` with ``config`` in its lake.yaml."""

    def make(config: str = "", name: str = "lake") -> Lake:
        root = tmp_path / name
        root.mkdir()
        (root / "lake.yaml").write_text(storage.yaml() + config)
        return Lake.init(root, clock=clock)

    return make
