"""Bars in an S3 bucket: writers that share a file never lose each other's rows, the usual
readers read the bucket, and the credentials never show, whatever fails.

The server is moto's, on a loopback port (see ``tests/s3support.py``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pads
import pytest
from pyarrow import fs as pafs
from tests.conftest import clock
from tests.s3support import ACCESS_KEY, SECRET_KEY, Bucket, S3Server, configure

from barlake.errors import StorageError
from barlake.lake import Lake
from barlake.retention.prune import Pruned, prune
from barlake.storage.filesystem import MemoryFileSystem, Staged, WriteConflict
from barlake.storage.objectstore import ObjectStore, scrub, secrets
from barlake.storage.store import Store

YEAR_FILE = "bars/interval=1day/year=2024/data.parquet"
LAKE = [sys.executable, "-m", "barlake"]


def daily(symbol: str, days: list[int], close: float = 10.0) -> pl.DataFrame:
    n = len(days)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": [datetime(2024, 6, d, tzinfo=UTC) for d in days],
            "open": [close] * n,
            "high": [close] * n,
            "low": [close] * n,
            "close": [close] * n,
            "volume": [100.0] * n,
        }
    )


class Interleaved:
    """Runs ``before`` once, right before the first commit of the wrapped file system: another
    writer's whole write lands between this writer's read and its PUT."""

    def __init__(self, fs: ObjectStore | MemoryFileSystem, before: Callable[[], None]) -> None:
        self.fs, self.before = fs, before
        self.commits = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.fs, name)

    def commit(self, staged: list[Staged]) -> None:
        self.commits += 1
        if self.commits == 1:
            self.before()
        self.fs.commit(staged)


@pytest.fixture(params=["memory", pytest.param("s3", marks=pytest.mark.s3)])
def two_machines(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Callable[[], ObjectStore | MemoryFileSystem], Path]]:
    """A factory of file systems that share one set of files, as two machines' would."""
    root = tmp_path / "lake"
    if request.param == "memory":
        shared = MemoryFileSystem()
        yield (lambda: shared), root
        return
    bucket: Bucket = request.getfixturevalue("bucket")
    yield (lambda: ObjectStore(bucket.url, root, endpoint_url=bucket.server.endpoint)), root


def test_two_writers_of_one_daily_year_file_keep_both_symbols(two_machines) -> None:
    new_fs, root = two_machines
    Store(root, fs=new_fs(), day_index=True).write("1day", daily("OLD", [3]))
    second = Store(root, fs=new_fs(), day_index=True)
    # The first writer has read the year file (OLD only) and merged AAPL into it when the
    # second writer's MSFT lands; its PUT, conditional on the version it read, is refused.
    racing = Interleaved(new_fs(), lambda: second.write("1day", daily("MSFT", [3, 4], 20.0)))
    first = Store(root, fs=racing, day_index=True)  # type: ignore[arg-type]
    assert first.write("1day", daily("AAPL", [3, 4, 5], 30.0)) == 3
    assert racing.commits == 2  # refused once, merged again, committed
    reader = Store(root, fs=new_fs(), day_index=True)
    stored = reader.read("1day")
    assert stored.group_by("symbol").len().sort("symbol").rows() == [
        ("AAPL", 3),
        ("MSFT", 2),
        ("OLD", 1),
    ]
    assert stored.filter(pl.col("symbol") == "MSFT")["close"].to_list() == [20.0, 20.0]
    # The day index answers for the merged file, not for either writer's own version.
    days = reader.days_by_symbol("1day", None, _june())
    assert {s: len(d) for s, d in days.items()} == {"AAPL": 3, "MSFT": 2, "OLD": 1}


def test_a_writer_that_keeps_losing_gives_up_with_one_line(two_machines, monkeypatch) -> None:
    new_fs, root = two_machines
    monkeypatch.setattr("barlake.storage.store.MERGE_ATTEMPTS", 3)
    other = Store(root, fs=new_fs())
    n = iter(range(100))

    class AlwaysLate(Interleaved):
        def commit(self, staged: list[Staged]) -> None:
            self.commits += 1
            other.write("1day", daily("MSFT", [next(n) % 20 + 3]))
            self.fs.commit(staged)

    racing = AlwaysLate(new_fs(), lambda: None)
    with pytest.raises(StorageError, match=r"another writer kept replacing .*year=2024"):
        Store(root, fs=racing).write("1day", daily("AAPL", [3]))  # type: ignore[arg-type]
    assert racing.commits == 3
    assert "AAPL" not in Store(root, fs=new_fs()).read("1day")["symbol"].to_list()


def test_a_prune_that_races_a_writer_fails_without_losing_its_rows(two_machines) -> None:
    new_fs, root = two_machines
    Store(root, fs=new_fs()).write("1day", daily("AAPL", [3, 4, 5]))
    other = Store(root, fs=new_fs())
    racing = Interleaved(new_fs(), lambda: other.write("1day", daily("MSFT", [4])))
    pruning = Store(root, fs=racing)  # type: ignore[arg-type]
    cutoffs = {"AAPL": date(2024, 6, 5)}
    with pytest.raises(WriteConflict):
        prune(pruning, "1day", cutoffs, {}, Pruned(dry_run=False))
    stored = Store(root, fs=new_fs()).read("1day")
    assert stored.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 3), ("MSFT", 1)]
    prune(pruning, "1day", cutoffs, {}, report := Pruned(dry_run=False))  # run again: done
    assert report.bars_removed == 2
    stored = Store(root, fs=new_fs()).read("1day")
    assert stored.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 1), ("MSFT", 1)]


def test_a_prune_that_would_delete_a_file_another_writer_filled_keeps_it(two_machines) -> None:
    new_fs, root = two_machines
    Store(root, fs=new_fs()).write("1day", daily("AAPL", [3, 4]))
    other = Store(root, fs=new_fs())

    class LateDelete(Interleaved):
        def remove(self, path: str, **kw: object) -> None:
            self.before()  # MSFT lands after the prune read the file (AAPL only)
            self.fs.remove(path, **kw)  # type: ignore[arg-type]

    racing = LateDelete(new_fs(), lambda: other.write("1day", daily("MSFT", [4])))
    with pytest.raises(WriteConflict):
        prune(Store(root, fs=racing), "1day", {"AAPL": None}, {}, Pruned(dry_run=False))  # type: ignore[arg-type]
    stored = Store(root, fs=new_fs()).read("1day")
    assert stored.group_by("symbol").len().sort("symbol").rows() == [("AAPL", 2), ("MSFT", 1)]


def _june():
    from barlake.domain.ranges import DateRange

    return DateRange(date(2024, 6, 1), date(2024, 7, 1))


# -- readers over the bucket ------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path, bucket: Bucket) -> tuple[Lake, Bucket]:
    root = tmp_path / "lake"
    configure(root, bucket)
    lake = Lake.init(root, clock=clock)
    lake.add_symbols("AAPL,MSFT,BRK/B")
    assert lake.fill(interval=["1day", "1hour"], start=date(2024, 5, 1), end=date(2024, 7, 31)).ok
    assert not list((root / "bars").rglob("*.parquet"))  # nothing on local disk
    return lake, bucket


def sorted_bars(frame: pl.DataFrame) -> pl.DataFrame:
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]
    return frame.select(
        pl.col("symbol").cast(pl.String), pl.col("ts").dt.convert_time_zone("UTC"), *cols[2:]
    ).sort("symbol", "ts")


def test_readers_over_the_bucket_see_what_lake_bars_returns(filled) -> None:
    lake, bucket = filled
    expected = sorted_bars(
        lake.bars("AAPL,MSFT,BRK/B", interval="1day", start=date(2024, 5, 1)).collect()
    )
    assert expected.height > 100 and expected["symbol"].n_unique() == 3
    assert bucket.listing("bars/interval=1day/") == ["bars/interval=1day/year=2024/data.parquet"]
    url = f"{bucket.url}/bars/interval=1day/"

    # polars: object_store's S3 client, with the credentials and the endpoint as options.
    scanned = pl.scan_parquet(url + "**/*.parquet", storage_options=bucket.storage_options())
    assert sorted_bars(scanned.collect()).equals(expected)

    # pyarrow: its S3FileSystem and a hive-partitioned dataset (``year`` from the path).
    s3 = pafs.S3FileSystem(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        endpoint_override=bucket.server.endpoint,
        region="us-east-1",
    )
    dataset = pads.dataset(
        f"{bucket.name}/{bucket.prefix}/bars/interval=1day", filesystem=s3, partitioning="hive"
    )
    table = dataset.to_table()
    assert "year" in table.column_names
    assert sorted_bars(pl.DataFrame(table)).equals(expected)

    # DuckDB: the same pyarrow dataset, scanned with filters pushed down to it.
    con = duckdb.connect()
    con.register("daily", dataset)
    counts = con.sql(
        "SELECT symbol, count(*) FROM daily WHERE year = 2024 GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert counts == sorted(expected.group_by("symbol").len().rows())

    # A glob with an escaped symbol (BRK%2FB) in its fixed part finds nothing in polars: glob
    # the interval and filter, or name the files.
    hourly = pl.scan_parquet(
        f"{bucket.url}/bars/interval=1hour/**/*.parquet", storage_options=bucket.storage_options()
    ).filter(pl.col("symbol") == "BRK/B")
    one = lake.bars("BRK/B", interval="1hour", start=date(2024, 5, 1)).collect()
    assert one.height > 100
    assert sorted_bars(hourly.collect()).equals(sorted_bars(one))


# -- credentials ------------------------------------------------------------------------------


def forms_of_the_secret() -> list[str]:
    raw = SECRET_KEY.encode()
    return [
        SECRET_KEY,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        urllib.parse.quote(SECRET_KEY, safe=""),
        urllib.parse.quote_plus(SECRET_KEY),
    ]


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for form in forms_of_the_secret():
            assert form not in text, form


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAKE, "--lake", str(root), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def test_scrub_hides_every_form_of_the_secret(s3_server: S3Server) -> None:
    assert set(forms_of_the_secret()) <= set(secrets())
    text = " ".join(f"[{f}]" for f in forms_of_the_secret())
    assert scrub(text) == " ".join(["[***]"] * len(forms_of_the_secret()))


@pytest.fixture
def auth_checked(s3_server: S3Server) -> Iterator[None]:
    """moto checks every request's access key against its (empty) IAM users meanwhile."""

    def reset(count: str) -> None:
        url = f"{s3_server.endpoint}/moto-api/reset-auth"
        plain = {"Content-Type": "text/plain"}  # a form body would be parsed away
        urllib.request.urlopen(urllib.request.Request(url, count.encode(), plain, method="POST"))

    reset("0")
    try:
        yield
    finally:
        reset("inf")


def lake_in(tmp_path: Path, bucket: Bucket, endpoint: str | None = None) -> Path:
    root = tmp_path / "lake"
    configure(root, bucket)
    if endpoint is not None:
        (root / "lake.yaml").write_text(
            f"storage:\n  url: {bucket.url}\n  endpoint_url: {endpoint}\n"
        )
    assert run(root, "init").returncode == 0
    assert run(root, "symbols", "add", "AAPL").returncode == 0
    return root


@pytest.mark.parametrize("command", [["fill", "--days", "5"], ["gaps", "--days", "5"]])
def test_a_server_that_is_down_is_one_line_exit_4_without_the_secret(
    tmp_path: Path, bucket: Bucket, command: list[str]
) -> None:
    root = lake_in(tmp_path, bucket, endpoint="http://127.0.0.1:9")  # nothing listens there
    proc = run(root, *command)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot reach object storage at http://127.0.0.1:9" in lines[0]
    assert "Traceback" not in proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)
    assert_no_secret(*(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()))


@pytest.mark.parametrize("command", [["fill", "--days", "5"], ["gaps", "--days", "5"]])
def test_a_refused_key_is_one_line_exit_4_without_the_secret(
    tmp_path: Path, bucket: Bucket, auth_checked: None, command: list[str]
) -> None:
    root = lake_in(tmp_path, bucket)
    proc = run(root, *command)
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "refused the credentials" in lines[0] and "InvalidAccessKeyId" in lines[0]
    assert_no_secret(proc.stdout, proc.stderr)
    assert_no_secret(*(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()))


def test_config_show_and_the_catalog_hold_no_secret(tmp_path: Path, bucket: Bucket) -> None:
    root = lake_in(tmp_path, bucket)
    assert run(root, "fill", "--days", "5").returncode == 0
    shown = run(root, "config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    assert bucket.url in shown.stdout
    assert_no_secret(shown.stdout, shown.stderr)
    assert_no_secret(*(p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()))
    objects = [bucket.get(k).decode("latin-1") for k in bucket.listing()]
    assert objects and all(ACCESS_KEY not in o for o in objects)
    assert_no_secret(*objects)


def test_credentials_in_the_url_are_refused_without_being_repeated(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    assert run(root, "init").returncode == 0
    (root / "lake.yaml").write_text(f"storage:\n  url: s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/x\n")
    proc = run(root, "gaps", "--days", "5")
    assert proc.returncode == 2, proc.stderr
    assert "storage.url must not hold credentials" in proc.stderr
    assert ACCESS_KEY not in proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)
    assert json.loads(json.dumps(proc.stderr))  # one plain line
