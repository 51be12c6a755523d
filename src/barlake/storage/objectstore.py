"""The lake's files in an S3-compatible bucket: the ``FileSystem`` seam over object storage.

``storage: {url: s3://bucket/prefix}`` in lake.yaml puts the files the store and the day index
write below the lake folder (``bars/...``, ``dayindex/...``) at the same relative keys below
``prefix`` in the bucket; the catalog, lake.yaml and the fill lock stay in the lake folder.

Each file is written with one PUT, which object storage makes visible whole or not at all. A
file's version is its ETag: for a single PUT without KMS encryption, the MD5 of its content, so a
staged file knows its version before it is sent (the day index is stamped with it). A write that
read version V of a file sends ``If-Match: V`` (``If-None-Match: *`` when it read no file): if
another writer's PUT came in between, the server refuses it (412) and the store reads the file
again and merges (``WriteConflict``). That is what lets writers on several machines share the
daily year file, which holds every symbol.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_PROFILE``); they are never stored, and errors are one line built
from the operation, the object's URL and the server's error code, never from the server's text.

boto3 rather than pyarrow's ``S3FileSystem`` or s3fs: it is the one that sends conditional PUTs
(``IfMatch``, ``IfNoneMatch``) and reports their refusal as such.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import quote, urlsplit

from barlake.errors import StorageError
from barlake.storage.filesystem import (
    ANY,
    TMP_MARK,
    FilePath,
    FileSystem,
    Sink,
    Staged,
    Version,
    WriteConflict,
    matches,
    written,
)

#: A boto3 S3 client (boto3 has no type hints of its own).
S3Client = Any

T = TypeVar("T")

#: PUTs sent at once by a commit of many files.
PUT_THREADS = 8
#: The server's answers to a conditional PUT that lost to another writer: the version read is
#: no longer there (412), another conditional write of the key is under way (409), or the file
#: read was deleted (404 to ``If-Match``).
_LOST = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_REFUSED = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "403",
}
#: Environment variables whose values are secrets: never in a message, in any encoding.
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class Location:
    """A bucket and a key prefix (no leading or trailing slash; may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Location:
        """``s3://bucket/prefix`` as a location; StorageError for anything else (the message
        never repeats a URL that holds credentials)."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            msg = f"storage.url must be s3://BUCKET/PREFIX, not {_safe_url(url)}"
            raise StorageError(msg)
        if "@" in url:  # anywhere: a secret key may hold a "/", which ends the host early
            msg = (
                "storage.url must not hold credentials: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment instead"
            )
            raise StorageError(msg)
        if not parts.netloc or parts.query or parts.fragment:
            msg = f"storage.url must be s3://BUCKET/PREFIX, not {_safe_url(url)}"
            raise StorageError(msg)
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key or self.prefix}".rstrip("/")


class ObjectStore:
    """Files below the local folder ``root`` kept at ``location`` in a bucket.

    ``endpoint_url`` names an S3-compatible server (MinIO, Ceph, a test server) instead of
    AWS; ``client`` hands in a ready boto3 client. Safe to use from several threads.
    """

    def __init__(
        self,
        location: Location | str,
        root: FilePath,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: S3Client | None = None,
    ) -> None:
        self.location = location if isinstance(location, Location) else Location.parse(location)
        self.root = os.path.normpath(os.fspath(root))
        self.endpoint_url = endpoint_url
        self.region = region
        self._client = client
        self._client_lock = threading.Lock()
        self._staged: dict[str, bytes] = {}
        self._staged_lock = threading.Lock()

    # -- writes --------------------------------------------------------------------------------

    def stage(
        self, path: FilePath, write: Callable[[Sink], None], *, base: Version | None = ANY
    ) -> Staged:
        """Write the content into memory; its version is the ETag the PUT will give it."""
        data = written(path, write)
        handle = f"{self._key(path)}{TMP_MARK}{uuid.uuid4().hex}"
        with self._staged_lock:
            self._staged[handle] = data
        return Staged(os.fspath(path), handle, (_etag(data),), base)

    def commit(self, staged: Sequence[Staged]) -> None:
        """PUT each staged file (in parallel threads), conditionally when it has a ``base``."""
        with self._staged_lock:
            content = [self._staged.pop(s.handle, None) for s in staged]
        for s, data in zip(staged, content, strict=True):
            if data is None:
                msg = f"could not write {self._url(s.path)}: it was not staged, or was discarded"
                raise StorageError(msg)
        jobs = [(s, data) for s, data in zip(staged, content, strict=True) if data is not None]
        if len(jobs) == 1:
            lost = [s.path for s, data in jobs if not self._put(s, data)]
        else:
            with ThreadPoolExecutor(max_workers=PUT_THREADS) as pool:
                done = list(pool.map(lambda job: self._put(*job), jobs))
            lost = [s.path for (s, _), ok in zip(jobs, done, strict=True) if not ok]
        if lost:
            raise WriteConflict(lost)

    def _put(self, staged: Staged, data: bytes) -> bool:
        """PUT one file; False when its condition failed (another writer got there first)."""
        condition: dict[str, str] = {}
        if staged.base is None:
            condition["IfNoneMatch"] = "*"
        elif staged.base != ANY:
            condition["IfMatch"] = f'"{staged.base[0]}"'
        key = self._key(staged.path)
        try:
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=data, **condition)
        except Exception as exc:
            if condition and _code(exc) in _LOST:
                return False
            raise self._error(exc, "write", key) from None
        return True

    def discard(self, staged: Sequence[Staged]) -> None:
        with self._staged_lock:
            for s in staged:
                self._staged.pop(s.handle, None)

    def put(self, path: FilePath, data: bytes) -> None:
        key = self._key(path)
        self._call(
            "write", key, lambda c: c.put_object(Bucket=self.location.bucket, Key=key, Body=data)
        )

    def remove(self, path: FilePath, *, up_to: FilePath | None = None, base: Version = ANY) -> None:
        """Delete the object (folders are only key prefixes: nothing else to remove); with
        ``base``, by a DELETE conditional on that ETag."""
        key = self._key(path)
        condition = {} if base == ANY else {"IfMatch": f'"{base[0]}"'}
        try:
            self.client.delete_object(Bucket=self.location.bucket, Key=key, **condition)
        except Exception as exc:
            code = _code(exc)
            if condition and code in _MISSING:
                return  # gone already
            if condition and code in _LOST:
                raise WriteConflict([os.fspath(path)]) from None
            raise self._error(exc, "delete", key) from None

    # -- reads ---------------------------------------------------------------------------------

    def open(self, path: FilePath) -> BinaryIO:
        """The whole object in memory (lake files are at most tens of megabytes)."""
        key = self._key(path)

        def get(client: S3Client) -> bytes:
            response = client.get_object(Bucket=self.location.bucket, Key=key)
            body: bytes = response["Body"].read()
            return body

        return io.BytesIO(self._call("read", key, get, missing=str(path)))

    def exists(self, path: FilePath) -> bool:
        try:
            self.version(path)
        except FileNotFoundError:
            return False
        return True

    def version(self, path: FilePath) -> Version:
        key = self._key(path)
        head = self._call(
            "read",
            key,
            lambda c: c.head_object(Bucket=self.location.bucket, Key=key),
            missing=str(path),
        )
        return (str(head["ETag"]).strip('"'),)

    def glob(self, root: FilePath, pattern: str) -> list[str]:
        folder = os.fspath(root).rstrip(os.sep)
        prefix = self._folder(folder)
        wanted = pattern.split("/")
        out = []
        for key in self._keys(prefix):
            relative = key[len(prefix) :]
            parts = relative.split("/")
            if TMP_MARK not in parts[-1] and matches(parts, wanted):
                out.append(os.path.join(folder, *parts))
        return out

    def listdir(self, folder: FilePath) -> list[str]:
        prefix = self._folder(folder)
        names: set[str] = set()
        for page in self._pages(prefix, delimiter="/"):
            names.update(
                p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])
            )
            names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
        return sorted(n for n in names if n and TMP_MARK not in n)

    def local_path(self, path: FilePath) -> str | None:
        return None

    def url(self, path: FilePath) -> str:
        """Where ``path`` lives: ``s3://bucket/prefix/bars/...``."""
        return self._url(path)

    # -- the client and its errors -------------------------------------------------------------

    @property
    def client(self) -> S3Client:
        """A boto3 client, made at first use (importing boto3 costs a few tenths of a second,
        which commands that read no bar file must not pay)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> S3Client:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            msg = "bars on object storage need boto3: pip install 'barlake[s3]'"
            raise StorageError(msg) from None
        config = Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # Integrity comes from the ETag check; checksums in aws-chunked trailers are what
            # S3-compatible servers most often fail to decode.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Custom endpoints (MinIO, test servers) rarely serve buckets as host names.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
            max_pool_connections=max(PUT_THREADS, 10),
        )
        try:
            return boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region or os.environ.get("AWS_REGION") or "us-east-1",
                config=config,
            )
        except Exception as exc:
            raise self._error(exc, "connect to", "") from None

    def _call(
        self, what: str, key: str, call: Callable[[S3Client], T], *, missing: str | None = None
    ) -> T:
        try:
            return call(self.client)
        except StorageError:
            raise
        except Exception as exc:
            if missing is not None and _code(exc) in _MISSING:
                raise FileNotFoundError(2, "No such object", missing) from None
            raise self._error(exc, what, key) from None

    def _error(self, exc: Exception, what: str, key: str) -> StorageError:
        """One line for a failed call: built from its code, never from the server's text."""
        code = _code(exc)
        where = self.location.url(key)
        server = _safe_url(self.endpoint_url) if self.endpoint_url else "AWS S3"
        kind = type(exc).__name__
        if kind in ("NoCredentialsError", "PartialCredentialsError"):
            msg = (
                f"no credentials for object storage ({where}): set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        elif code in _REFUSED:
            msg = (
                f"object storage refused the credentials to {what} {where} ({code}); check "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY and the bucket's permissions"
            )
        elif code == "NoSuchBucket":
            msg = (
                f"bucket {self.location.bucket} does not exist at {server}; create it or "
                "fix storage.url"
            )
        elif kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
            msg = (
                f"cannot reach object storage at {server} to {what} {where}; check that it "
                "runs and storage.endpoint_url"
            )
        elif kind in ("ReadTimeoutError",):
            msg = f"object storage at {server} did not answer in time to {what} {where}; try again"
        elif code:
            msg = f"object storage failed to {what} {where} ({code})"
        else:
            msg = f"object storage failed to {what} {where} ({kind})"
        return StorageError(scrub(msg))

    def _folder(self, folder: FilePath) -> str:
        """The key prefix of the objects below ``folder``."""
        key = self._key(folder)
        return f"{key}/" if key else ""

    def _key(self, path: FilePath) -> str:
        text = os.fspath(path)
        if text.rstrip(os.sep) == self.root:
            return self.location.prefix
        if not text.startswith(self.root + os.sep):
            text = os.path.normpath(text)
            if not text.startswith(self.root + os.sep):
                msg = f"{text} is outside the lake folder {self.root}, which the bucket holds"
                raise StorageError(msg)
        return self.location.key(text[len(self.root) + 1 :].replace(os.sep, "/"))

    def _url(self, path: FilePath) -> str:
        try:
            return self.location.url(self._key(path))
        except StorageError:
            return os.fspath(path)

    def _keys(self, prefix: str) -> Iterator[str]:
        for page in self._pages(prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def _pages(self, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        """The pages of a listing of ``prefix`` (one request per thousand keys)."""
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
            if delimiter:
                args["Delimiter"] = delimiter
            if token:
                args["ContinuationToken"] = token
            page: dict[str, Any] = self._call("list", prefix, _lister(args))
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return


def _lister(args: dict[str, Any]) -> Callable[[S3Client], dict[str, Any]]:
    def call(client: S3Client) -> dict[str, Any]:
        page: dict[str, Any] = client.list_objects_v2(**args)
        return page

    return call


def _etag(data: bytes) -> str:
    """The ETag object storage gives a single-PUT object: the hex MD5 of its content."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _code(exc: BaseException) -> str:
    """The error code of a boto3 ``ClientError`` (``PreconditionFailed``, ``404``), else ''."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    if code:
        return code
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(status or "")


def _safe_url(url: str | None) -> str:
    """``url`` without user, password or query (where credentials hide)."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if _port(parts) else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "(not a URL)"


def _port(parts: Any) -> int | None:
    try:
        port: int | None = parts.port
    except ValueError:
        return None
    return port


def secrets(environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """The secret credential values in the environment and the forms they may be printed in
    (as they are, base64, URL-encoded)."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    for name in _SECRET_VARIABLES:
        value = env.get(name)
        if not value or len(value) < 4:
            continue
        raw = value.encode()
        out += [value, base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()]
        out += [quote(value, safe=""), quote(value)]
    return sorted(set(out), key=len, reverse=True)


def scrub(text: str) -> str:
    """``text`` with every secret of the environment (in any form of ``secrets``) as ***."""
    for secret in secrets():
        text = text.replace(secret, "***")
    return re.sub(r"\s+", " ", text).strip()


if TYPE_CHECKING:  # mypy checks that the object store keeps to the protocol
    _store: FileSystem = ObjectStore(Location("bucket", ""), "/lake")
