"""A real S3 server for tests: moto's ``ThreadedMotoServer`` on a loopback port, one bucket per
test, and fake credentials that exist only in the test process's environment.

Tests that use it are marked ``s3``; without moto[server] installed they are skipped with the
reason (CI installs it with the test extras, so there they always run).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

#: Fake credentials: moto accepts any. The secret has characters that base64 and URL encoding
#: change, so that tests can look for every form of it.
ACCESS_KEY = "AKIATESTBARLAKE00001"
SECRET_KEY = "wJalr/XUtnFEMI+K7MDENG/bPxRfiCYs3cr3t=="
ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_REGION": "us-east-1",
    # moto, like several S3-compatible servers, does not decode aws-chunked checksum trailers.
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
    # No instance-metadata lookups for credentials on a machine that is not in a cloud.
    "AWS_EC2_METADATA_DISABLED": "true",
}
_buckets = itertools.count(1)


@dataclass
class S3Server:
    endpoint: str
    client: Any

    def bucket(self) -> str:
        """A new, empty bucket."""
        name = f"lake-{os.getpid()}-{next(_buckets)}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto server for the session (it starts in well under a second)."""
    server = pytest.importorskip(
        "moto.server", reason="needs moto[server] for a local S3 server: pip install 'moto[server]'"
    )
    boto3 = pytest.importorskip("boto3", reason="needs boto3: pip install boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        moto = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto.start()
        try:
            host, port = moto.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            yield S3Server(endpoint, boto3.client("s3", endpoint_url=endpoint))
        finally:
            moto.stop()


@dataclass
class Bucket:
    """A test's bucket on the server, and the lake.yaml section that puts a lake in it."""

    server: S3Server
    name: str
    prefix: str = "lake"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def yaml(self) -> str:
        return f"storage:\n  url: {self.url}\n  endpoint_url: {self.server.endpoint}\n"

    def listing(self, under: str = "") -> list[str]:
        """The keys below the lake's prefix (relative to it)."""
        prefix = f"{self.prefix}/{under}"
        return [k[len(self.prefix) + 1 :] for k in self.server.keys(self.name, prefix)]

    def get(self, relative: str) -> bytes:
        return self.server.get(self.name, f"{self.prefix}/{relative}")

    def storage_options(self) -> dict[str, str]:
        """What polars' ``scan_parquet`` needs to read the bucket."""
        return {
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "aws_endpoint_url": self.server.endpoint,
            "aws_region": "us-east-1",
            "aws_allow_http": "true",
        }


@pytest.fixture
def bucket(s3_server: S3Server) -> Bucket:
    return Bucket(s3_server, s3_server.bucket())


def configure(root: Path, bucket: Bucket, extra: str = "") -> None:
    """Point the lake at ``root`` (made if need be) at ``bucket`` through its lake.yaml."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "lake.yaml").write_text(bucket.yaml() + extra)
