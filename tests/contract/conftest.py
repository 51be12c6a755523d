"""The contract suite's axes: every test here runs once per backend combination.

A combination is a catalog (``duckdb``: the file in the lake's folder; ``postgres``: a new
database on the test PostgreSQL server, through lake.yaml's ``catalog`` section) and a storage
(``local``: the lake folder; ``s3``: a bucket of the test S3 server, through lake.yaml's
``storage`` section). ``COMBINATIONS`` lists them; ``new_lake`` makes a lake on the one under
test, and ``storage`` reads its bar files straight from where they live.
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


@dataclass
class Backend:
    """Where a lake's catalog and bars live."""

    catalog: str  # duckdb | postgres
    storage: Storage
    catalog_url: str | None = None

    @property
    def name(self) -> str:
        return f"{self.catalog}+{self.storage.name}"

    def yaml(self) -> str:
        """The lake.yaml sections that put a lake's catalog and bars here."""
        catalog = f"catalog:\n  url: {self.catalog_url}\n" if self.catalog_url else ""
        return catalog + self.storage.yaml()


CATALOGS = {"duckdb": [], "postgres": [pytest.mark.postgres]}
STORAGES = {"local": [], "s3": [pytest.mark.s3]}
COMBINATIONS = [
    pytest.param((c, s), id=f"{c}+{s}", marks=[*CATALOGS[c], *STORAGES[s]])
    for c in CATALOGS
    for s in STORAGES
]


@pytest.fixture(params=COMBINATIONS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    catalog, where = request.param
    monkeypatch.delenv("LAKE_CATALOG_URL", raising=False)
    storage = Storage("local")
    if where == "s3":
        bucket: Bucket = request.getfixturevalue("bucket")
        bucket.server.client.put_bucket_versioning(
            Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
        )
        storage = Storage("s3", bucket)
    url = request.getfixturevalue("postgres_url") if catalog == "postgres" else None
    return Backend(catalog, storage, url)


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage


@pytest.fixture
def new_lake(backend: Backend, tmp_path: Path) -> Callable[..., Lake]:
    """``new_lake(config="")``: a new lake on ``backend`` with ``config`` in its lake.yaml."""

    def make(config: str = "", name: str = "lake") -> Lake:
        root = tmp_path / name
        root.mkdir()
        (root / "lake.yaml").write_text(backend.yaml() + config)
        return Lake.init(root, clock=clock)

    return make
