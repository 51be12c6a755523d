"""The ``FileSystem`` seam: every implementation stages invisibly, commits atomically, discards
without a trace, and changes a file's version whenever it writes the file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from barlake.errors import StorageError
from barlake.storage.filesystem import (
    TMP_MARK,
    FileSystem,
    LocalFileSystem,
    MemoryFileSystem,
    Sink,
    WriteConflict,
)
from barlake.storage.objectstore import ObjectStore


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def fs(request: pytest.FixtureRequest, root: Path) -> FileSystem:
    if request.param == "s3":  # the lake folder's files at the same keys in a bucket
        bucket = request.getfixturevalue("bucket")
        return ObjectStore(bucket.url, root, endpoint_url=bucket.server.endpoint)
    return LocalFileSystem() if request.param == "local" else MemoryFileSystem()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


def writer(data: bytes) -> Callable[[Sink], None]:
    """A ``stage`` writer of ``data``, whatever sink the file system hands it."""

    def write(sink: Sink) -> None:
        if isinstance(sink, str):
            Path(sink).write_bytes(data)
        else:
            sink.write(data)

    return write


def read(fs: FileSystem, path: Path) -> bytes:
    with fs.open(path) as fh:
        return fh.read()


def every_file(fs: FileSystem, root: Path) -> list[str]:
    """Every file the file system holds under ``root``, temporary ones included."""
    if isinstance(fs, MemoryFileSystem):
        return fs.paths()
    if isinstance(fs, ObjectStore):  # as the paths they stand for below ``root``
        pages = fs.client.get_paginator("list_objects_v2").paginate(Bucket=fs.location.bucket)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        return sorted(str(root / k.removeprefix(fs.location.prefix + "/")) for k in keys)
    return sorted(str(p) for p in root.rglob("*") if p.is_file())


def test_a_staged_file_is_invisible_until_committed(fs, root):
    path = root / "a" / "data.parquet"
    staged = fs.stage(path, writer(b"new"))
    assert not fs.exists(path)
    assert fs.glob(root, "*/data.parquet") == []
    assert fs.listdir(root / "a") == []
    with pytest.raises(FileNotFoundError):
        fs.version(path)
    with pytest.raises(FileNotFoundError):
        fs.open(path)
    fs.commit([staged])
    assert fs.exists(path)
    assert read(fs, path) == b"new"
    assert fs.version(path) == staged.version
    assert every_file(fs, root) == [str(path)]


def test_a_rewrite_shows_the_old_content_until_committed(fs, root):
    path = root / "data.parquet"
    fs.commit([fs.stage(path, writer(b"old"))])
    staged = fs.stage(path, writer(b"new"))
    assert read(fs, path) == b"old"
    fs.commit([staged])
    assert read(fs, path) == b"new"


def test_many_files_commit_together(fs, root):
    paths = [root / f"s={i}" / "data.parquet" for i in range(12)]  # past the syncfs batch
    staged = [fs.stage(p, writer(str(i).encode())) for i, p in enumerate(paths)]
    assert not any(fs.exists(p) for p in paths)
    fs.commit(staged)
    assert [read(fs, p) for p in paths] == [str(i).encode() for i in range(12)]
    assert sorted(fs.glob(root, "*/data.parquet")) == sorted(str(p) for p in paths)


def test_discard_leaves_nothing(fs, root):
    path = root / "data.parquet"
    fs.commit([fs.stage(path, writer(b"old"))])
    fs.discard([fs.stage(path, writer(b"new")), fs.stage(root / "other", writer(b"x"))])
    assert every_file(fs, root) == [str(path)]
    assert read(fs, path) == b"old"


@pytest.mark.parametrize(
    ("error", "raised"),
    [(RuntimeError("boom"), RuntimeError), (OSError(28, "No space left"), StorageError)],
)
def test_a_failing_writer_leaves_every_file_as_it_was(fs, root, error, raised):
    path = root / "data.parquet"
    fs.commit([fs.stage(path, writer(b"old"))])
    before = fs.version(path)

    def half_then_fail(sink: Sink) -> None:
        writer(b"ne")(sink)
        raise error

    with pytest.raises(raised):
        fs.stage(path, half_then_fail)
    assert every_file(fs, root) == [str(path)]
    assert read(fs, path) == b"old"
    assert fs.version(path) == before


def test_remove(fs, root):
    path = root / "interval=1min" / "symbol=A" / "month=2024-06" / "data.parquet"
    keep = root / "interval=1min" / "symbol=B" / "month=2024-06" / "data.parquet"
    fs.commit([fs.stage(path, writer(b"a")), fs.stage(keep, writer(b"b"))])
    fs.remove(path, up_to=root)
    assert not fs.exists(path)
    with pytest.raises(FileNotFoundError):
        fs.version(path)
    assert fs.listdir(root / "interval=1min") == ["symbol=B"]
    fs.remove(path, up_to=root)  # already gone: nothing to do
    fs.remove(keep, up_to=root)
    assert every_file(fs, root) == []
    assert fs.listdir(root) == []
    if isinstance(fs, LocalFileSystem):  # folders go with their last file, the root stays
        assert root.is_dir()
        assert list(root.iterdir()) == []


def test_glob_and_listdir(fs, root):
    names = ["interval=1day/year=2023", "interval=1day/year=2024", "interval=1min/symbol=A"]
    fs.commit([fs.stage(root / n / "data.parquet", writer(b"x")) for n in names])
    fs.put(root / "interval=1min" / "symbol=A" / "month=2024-06.days", b"entry")
    assert sorted(fs.glob(root / "interval=1day", "*/data.parquet")) == [
        str(root / n / "data.parquet") for n in names[:2]
    ]
    assert fs.glob(root, "*/data.parquet") == []  # a pattern is matched whole, not its tail
    assert sorted(fs.glob(root, "*/*/*.parquet")) == [str(root / n / "data.parquet") for n in names]
    assert sorted(fs.listdir(root)) == ["interval=1day", "interval=1min"]
    assert sorted(fs.listdir(root / "interval=1min" / "symbol=A")) == [
        "data.parquet",
        "month=2024-06.days",
    ]
    assert fs.listdir(root / "missing") == []
    assert fs.glob(root / "missing", "*") == []


def test_the_version_changes_with_every_write_even_of_the_same_bytes(fs, root):
    if isinstance(fs, ObjectStore):
        pytest.skip("an object's version is its ETag, the MD5 of its content: see the next test")
    path = root / "data.parquet"
    seen = []
    for _ in range(3):
        staged = fs.stage(path, writer(b"same"))
        fs.commit([staged])
        assert fs.version(path) == staged.version
        assert fs.version(path) == fs.version(path)  # stable while untouched
        seen.append(fs.version(path))
    fs.put(path, b"same")
    seen.append(fs.version(path))
    assert len(set(seen)) == len(seen)
    assert all(isinstance(part, int | str) for v in seen for part in v)


def test_the_version_is_known_when_staged_and_names_the_content(fs, root):
    """What the day index needs: the staged version is the committed one, and a version
    never names two contents (object storage: the ETag, known before the PUT)."""
    path = root / "data.parquet"
    seen = {}
    for data in (b"one", b"two", b"one", b"three"):
        staged = fs.stage(path, writer(data))
        fs.commit([staged])
        assert fs.version(path) == staged.version
        seen.setdefault(fs.version(path), set()).add(data)
    assert all(len(contents) == 1 for contents in seen.values())
    assert len(seen) >= 3


def test_a_write_based_on_a_stale_read_is_refused_and_named(fs, root):
    """Two writers read the same version; the second commit finds the first one's file and
    leaves it (local disk does not check: its writers take the fill lock)."""
    path, other = root / "year=2024" / "data.parquet", root / "year=2025" / "data.parquet"
    fs.commit([fs.stage(path, writer(b"base"))])
    read_by_both = fs.version(path)
    fs.commit([fs.stage(path, writer(b"first"), base=read_by_both)])
    late = [
        fs.stage(path, writer(b"second"), base=read_by_both),
        fs.stage(other, writer(b"new file"), base=None),
    ]
    if isinstance(fs, LocalFileSystem):
        fs.commit(late)
        assert read(fs, path) == b"second"
        return
    with pytest.raises(WriteConflict) as raised:
        fs.commit(late)
    assert raised.value.paths == [str(path)]
    assert read(fs, path) == b"first"  # the other writer's rows are kept
    assert read(fs, other) == b"new file"  # the rest of the commit went through
    with pytest.raises(WriteConflict):  # a file that must be new, and is not
        fs.commit([fs.stage(other, writer(b"again"), base=None)])
    fs.commit([fs.stage(path, writer(b"merged"), base=fs.version(path))])
    assert read(fs, path) == b"merged"
    with pytest.raises(WriteConflict):  # a delete of the version read, and it was replaced
        fs.remove(path, base=read_by_both)
    assert read(fs, path) == b"merged"
    fs.remove(path, base=fs.version(path))
    assert not fs.exists(path)
    fs.remove(path, base=read_by_both)  # gone already: nothing to do


def test_put_replaces_a_file_whole(fs, root):
    path = root / "index" / "entry.days"
    fs.put(path, b"one")
    fs.put(path, b"two")
    assert read(fs, path) == b"two"
    assert every_file(fs, root) == [str(path)]


def test_local_paths_only_where_there_are_local_files(fs, root):
    path = root / "data.parquet"
    fs.commit([fs.stage(path, writer(b"x"))])
    local = fs.local_path(path)
    if isinstance(fs, LocalFileSystem):
        assert local == str(path)
        assert Path(local).read_bytes() == b"x"
    else:
        assert local is None
        assert not root.exists()  # nothing on disk


def test_local_temporaries_are_hidden_and_left_by_no_one(root):
    fs = LocalFileSystem()
    path = root / "data.parquet"
    staged = fs.stage(path, writer(b"x"))
    (tmp,) = os.listdir(root)
    assert tmp.startswith(".") and TMP_MARK in tmp
    assert fs.listdir(root) == []
    fs.commit([staged])
    assert os.listdir(root) == ["data.parquet"]
