"""The Parquet store: merge semantics, the on-disk layout, crash safety and outside readers."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barlake.calendars.calendar import get_calendar
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.errors import StorageError, UsageError
from barlake.lake import Lake
from barlake.retention.prune import Pruned, prune
from barlake.storage import rowgroups
from barlake.storage.filesystem import TMP_MARK, MemoryFileSystem
from barlake.storage.store import Store

SYMBOLS = ["AAPL", "BRK/B", "BF.B"]
DAY0 = datetime(2023, 12, 28, tzinfo=UTC)  # daily keys span two year files
MINUTE0 = datetime(2024, 5, 31, 23, 55, tzinfo=UTC)  # minute keys span two month files
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)


def frame(rows: list[tuple[str, datetime, float]]) -> pl.DataFrame:
    """Bars with every price equal to ``value`` (so a value identifies the write)."""
    symbols, ts, values = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    return pl.DataFrame(
        {
            "symbol": symbols,
            "ts": ts,
            "open": values,
            "high": values,
            "low": values,
            "close": values,
            "volume": [1.0] * len(values),
        },
        schema={
            "symbol": pl.String,
            "ts": pl.Datetime("us", "UTC"),
            **dict.fromkeys(("open", "high", "low", "close", "volume"), pl.Float64),
        },
    )


def triples(df: pl.DataFrame) -> list[tuple[str, int, float]]:
    """(symbol, epoch microseconds, close), sorted: comparable across readers and time zones."""
    out = df.select(
        pl.col("symbol").cast(pl.String), pl.col("ts").dt.epoch("us"), pl.col("close")
    ).rows()
    return sorted(out)


def data_files(root: Path) -> list[Path]:
    return sorted(root.rglob("data.parquet"))


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- merge semantics (property) ----------------------------------------------------------------

batches_st = st.lists(
    st.lists(st.tuples(st.sampled_from(SYMBOLS), st.integers(0, 10)), max_size=12),
    min_size=1,
    max_size=5,
)


def check_round_trip(
    interval: str, step: timedelta, t0: datetime, batches, fs: MemoryFileSystem | None = None
) -> None:
    model: dict[tuple[str, datetime], float] = {}
    value = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp), fs=fs)
        for batch in batches:
            rows = []
            for symbol, k in batch:
                value += 1
                rows.append((symbol, t0 + k * step, value))
                model[(symbol, t0 + k * step)] = value
            written = store.write(interval, frame(rows))
            assert written == len({(s, k) for s, k in batch})
        got = store.read(interval)
        expected = sorted(
            (s, int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)), v)
            for (s, t), v in model.items()
        )
        assert triples(got) == expected
        assert got.columns == list(bars.SCHEMA)
        files = data_files(Path(tmp)) if fs is None else fs.paths()
        for path in files:
            with store.fs.open(path) as fh:
                one = pl.read_parquet(fh, hive_partitioning=False)
            keys = one.select(bars.KEY)
            assert keys.equals(keys.sort(bars.KEY)), f"{path} is not sorted"
            assert not keys.is_duplicated().any(), f"{path} has duplicate keys"
        if fs is not None:
            assert not any(Path(tmp).iterdir()), "a store in memory wrote to disk"


@settings(max_examples=25, deadline=None)
@given(batches_st)
def test_daily_writes_merge_to_the_union_last_write_wins(batches):
    check_round_trip("1day", timedelta(days=1), DAY0, batches)


@settings(max_examples=25, deadline=None)
@given(batches_st)
def test_minute_writes_merge_to_the_union_last_write_wins(batches):
    check_round_trip("1min", timedelta(minutes=1), MINUTE0, batches)


@settings(max_examples=15, deadline=None)
@given(
    batches_st,
    st.sampled_from([("1day", timedelta(days=1), DAY0), ("1min", timedelta(minutes=1), MINUTE0)]),
)
def test_writes_to_memory_merge_alike(batches, case):
    check_round_trip(*case, batches, fs=MemoryFileSystem())


def test_duplicate_keys_inside_one_batch_keep_the_last(tmp_path):
    store = Store(tmp_path)
    t = datetime(2024, 6, 3, tzinfo=UTC)
    assert store.write("1day", frame([("AAPL", t, 1.0), ("AAPL", t, 2.0)])) == 1
    assert store.read("1day")["close"].to_list() == [2.0]


def test_write_order_does_not_matter_for_disjoint_batches(tmp_path):
    t = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)
    a = frame([("AAPL", t + timedelta(minutes=i), float(i)) for i in range(5)])
    b = frame([("AAPL", t + timedelta(minutes=i), float(i)) for i in range(5, 9)])
    one, two = Store(tmp_path / "one"), Store(tmp_path / "two")
    one.write("1min", a)
    one.write("1min", b)
    two.write("1min", b)
    two.write("1min", a)
    assert one.read("1min").equals(two.read("1min"))
    assert one.read("1min")["close"].to_list() == [float(i) for i in range(9)]


# -- the queries gap detection makes --------------------------------------------------------


def midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def test_session_counts_count_sessions_inside_each_symbols_own_window(tmp_path):
    store = Store(tmp_path)
    # 2024-06-01/02 are a weekend; a stray Saturday bar on 06-08 is not a session.
    days = [
        date(2024, 5, 31),
        date(2024, 6, 3),
        date(2024, 6, 4),
        date(2024, 6, 5),
        date(2024, 6, 8),
    ]
    store.write("1day", frame([(s, midnight(d), 1.0) for s in ("A", "B", "C") for d in days]))
    sessions = get_calendar("XNYS").sessions_in(DateRange(date(2024, 5, 31), date(2024, 6, 10)))
    windows = pl.DataFrame(
        {
            "symbol": ["A", "B", "Z"],
            "start": [date(2024, 6, 4), date(2024, 5, 31), date(2024, 5, 31)],
            "end": [date(2024, 6, 10)] * 3,
        }
    )
    # A has bars before its window; B's window is the whole span; Z has no bars; C is not asked.
    assert store.session_counts("1day", windows, sessions) == {"A": 2, "B": 4}
    assert store.session_counts("1day", windows.head(0), sessions) == {}


def test_intraday_session_counts_and_days_use_the_day_shift(tmp_path):
    store = Store(tmp_path)
    # A bar at 00:30 UTC on 06-04 is 19:30 in New York on 06-03: session date 06-03.
    late = datetime(2024, 6, 4, 0, 30, tzinfo=UTC)
    opening = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)
    store.write("1min", frame([("A", opening, 1.0), ("A", late, 1.0), ("B", opening, 1.0)]))
    sessions = get_calendar("XNYS").sessions_in(DateRange(date(2024, 6, 3), date(2024, 6, 5)))
    windows = pl.DataFrame(
        {"symbol": ["A"], "start": [date(2024, 6, 3)], "end": [date(2024, 6, 5)]}
    )
    shift = timedelta(hours=-5)
    assert store.session_counts("1min", windows, sessions, shift) == {"A": 1}
    assert store.session_counts("1min", windows, sessions) == {"A": 2}
    window = DateRange(date(2024, 6, 3), date(2024, 6, 5))
    got = pl.from_arrow(store.session_days("1min", ["A"], window, shift))
    assert got.sort("day").rows() == [("A", date(2024, 6, 3))]
    got = pl.from_arrow(store.session_days("1min", None, window))
    assert sorted(got.rows()) == [
        ("A", date(2024, 6, 3)),
        ("A", date(2024, 6, 4)),
        ("B", date(2024, 6, 3)),
    ]


# -- layout ------------------------------------------------------------------------------------


def test_partition_layout(tmp_path):
    store = Store(tmp_path)
    days = [datetime(2023, 12, 29, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]
    store.write("1day", frame([(s, t, 1.0) for s in SYMBOLS for t in days]))
    hours = [datetime(2023, 12, 29, 15, tzinfo=UTC), datetime(2024, 6, 3, 15, tzinfo=UTC)]
    store.write("1hour", frame([("BRK/B", t, 1.0) for t in hours]))
    minutes = [datetime(2024, 5, 31, 19, 59, tzinfo=UTC), datetime(2024, 6, 3, 13, 30, tzinfo=UTC)]
    store.write("1min", frame([(s, t, 1.0) for s in ("BRK/B", "BF.B") for t in minutes]))
    store.write("5min", frame([("AAPL", minutes[1], 1.0)]))
    assert all_files(tmp_path) == [
        "bars/interval=1day/year=2023/data.parquet",
        "bars/interval=1day/year=2024/data.parquet",
        "bars/interval=1hour/symbol=BRK%2FB/year=2023/data.parquet",
        "bars/interval=1hour/symbol=BRK%2FB/year=2024/data.parquet",
        "bars/interval=1min/symbol=BF.B/month=2024-05/data.parquet",
        "bars/interval=1min/symbol=BF.B/month=2024-06/data.parquet",
        "bars/interval=1min/symbol=BRK%2FB/month=2024-05/data.parquet",
        "bars/interval=1min/symbol=BRK%2FB/month=2024-06/data.parquet",
        "bars/interval=5min/symbol=AAPL/month=2024-06/data.parquet",
    ]
    # A daily year file holds every symbol, and every file names its own symbols.
    year = pl.read_parquet(tmp_path / "bars/interval=1day/year=2024/data.parquet")
    assert year["symbol"].to_list() == ["AAPL", "BF.B", "BRK/B"]
    one = pl.read_parquet(tmp_path / "bars/interval=1min/symbol=BRK%2FB/month=2024-06/data.parquet")
    assert one["symbol"].to_list() == ["BRK/B"]


def test_files_have_the_lake_schema(tmp_path):
    store = Store(tmp_path)
    store.write("1day", frame([("AAPL", datetime(2024, 6, 3, tzinfo=UTC), 1.0)]))
    schema = pq.read_schema(tmp_path / "bars/interval=1day/year=2024/data.parquet")
    assert schema.names == list(bars.SCHEMA)
    assert str(schema.field("ts").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("symbol").type) == "string"
    assert str(schema.field("trades").type) == "int64"


@pytest.mark.parametrize("name", ["..", ".", "/etc", "\\etc", "AA\x00PL", "", "   ", "A\nB"])
@pytest.mark.parametrize("interval", ["1day", "1min"])
def test_names_that_could_escape_are_refused_and_nothing_is_written(tmp_path, name, interval):
    store = Store(tmp_path)
    t = datetime(2024, 6, 3, 14, 30, tzinfo=UTC)
    with pytest.raises(UsageError, match="symbol"):
        store.write(interval, frame([("AAPL", t, 1.0), (name, t, 1.0)]))
    assert all_files(tmp_path) == []


# -- crash safety ------------------------------------------------------------------------------


def half_grouped_then(exc: BaseException):
    """A stand-in for ``rowgroups.write`` (it writes the daily files) that writes half a file,
    then fails."""
    real = rowgroups.write

    def write(frame, table, sink, options):  # type: ignore[no-untyped-def]
        buffer = io.BytesIO()
        real(frame, table, buffer, options)
        Path(sink).write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise exc

    return write


@pytest.mark.parametrize(
    ("error", "raised"),
    [(RuntimeError("boom"), RuntimeError), (OSError(28, "No space left"), StorageError)],
)
def test_a_failing_write_leaves_the_old_file(tmp_path, monkeypatch, error, raised):
    store = Store(tmp_path)
    t = datetime(2024, 6, 3, tzinfo=UTC)
    store.write("1day", frame([("AAPL", t, 1.0), ("MSFT", t, 2.0)]))
    path = tmp_path / "bars/interval=1day/year=2024/data.parquet"
    before = path.read_bytes()
    monkeypatch.setattr("barlake.storage.store.rowgroups.write", half_grouped_then(error))
    with pytest.raises(raised):
        store.write("1day", frame([("AAPL", t, 9.0), ("NVDA", t, 9.0)]))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert triples(pl.read_parquet(path))[0][2] == 1.0
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]


def minute_files(store: Store, value: float, n: int = 12) -> pl.DataFrame:
    t = datetime(2024, 6, 3, 13, 30, tzinfo=UTC)
    return frame([(f"S{i:02d}", t + timedelta(minutes=k), value) for i in range(n) for k in (0, 1)])


@pytest.mark.parametrize("syncfs", [True, False])
def test_a_write_of_many_files_is_all_or_nothing_when_one_fails(tmp_path, monkeypatch, syncfs):
    if not syncfs:  # a system without syncfs: file-by-file fsyncs
        monkeypatch.setattr("barlake.storage.filesystem._syncfs_call", lambda: None)
    store = Store(tmp_path)
    store.write("1min", minute_files(store, 1.0))
    files = data_files(tmp_path)
    assert len(files) == 12
    before = {p: p.read_bytes() for p in files}
    real = pq.write_table
    calls = []

    def sixth_fails(table, where, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(where)
        if len(calls) == 6:
            raise OSError(28, "No space left")
        return real(table, where, **kwargs)

    monkeypatch.setattr("barlake.storage.store.pq.write_table", sixth_fails)
    with pytest.raises(StorageError, match="No space left"):
        store.write("1min", minute_files(store, 9.0))
    assert {p: p.read_bytes() for p in data_files(tmp_path)} == before
    assert not [p for p in tmp_path.rglob("*") if TMP_MARK in p.name]
    monkeypatch.setattr("barlake.storage.store.pq.write_table", real)
    assert store.write("1min", minute_files(store, 9.0)) == 24
    assert {v for _, _, v in triples(store.read("1min"))} == {9.0}


def test_many_files_are_flushed_with_two_file_system_syncs(tmp_path, monkeypatch):
    import barlake.storage.filesystem as fs_

    synced: list[Path] = []
    real = fs_._syncfs
    monkeypatch.setattr(fs_, "_syncfs", lambda d: synced.append(d) or real(d))
    store = Store(tmp_path)
    store.write("1min", minute_files(store, 1.0))
    assert len(synced) == (2 if fs_._syncfs_call() is not None else 1)
    store.write("1min", minute_files(store, 1.0, n=3))  # few files: fsync each
    assert len(synced) <= 2


def test_readers_see_the_old_file_while_a_write_is_in_progress(tmp_path, monkeypatch):
    store = Store(tmp_path)
    t = datetime(2024, 6, 3, tzinfo=UTC)
    store.write("1day", frame([("AAPL", t, 1.0)]))
    base = tmp_path / "bars/interval=1day"
    real = rowgroups.write
    seen = {}

    def slow_write(frame, table, where, options):  # type: ignore[no-untyped-def]
        buffer = io.BytesIO()
        real(frame, table, buffer, options)
        Path(where).write_bytes(buffer.getvalue()[:100])  # partial, as a reader could catch it
        seen["pyarrow"] = pads.dataset(base, partitioning="hive").to_table().num_rows
        seen["pandas"] = len(pd.read_parquet(base))
        seen["duckdb"] = duckdb.sql(
            f"select count(*) from read_parquet('{base}/**/*.parquet', hive_partitioning=true)"
        ).fetchall()[0][0]
        Path(where).write_bytes(buffer.getvalue())

    monkeypatch.setattr("barlake.storage.store.rowgroups.write", slow_write)
    store.write("1day", frame([("MSFT", t, 2.0)]))
    assert seen == {"pyarrow": 1, "pandas": 1, "duckdb": 1}
    assert pads.dataset(base, partitioning="hive").to_table().num_rows == 2


def test_a_dead_writers_temporary_file_is_hidden_and_removed_by_the_next_write(tmp_path):
    store = Store(tmp_path)
    t = datetime(2024, 6, 3, tzinfo=UTC)
    store.write("1day", frame([("AAPL", t, 1.0)]))
    year = tmp_path / "bars/interval=1day/year=2024"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    stray = year / f".data.parquet{TMP_MARK}{int(dead.stdout)}-deadbeef"
    stray.write_bytes((year / "data.parquet").read_bytes()[:50])
    assert len(pd.read_parquet(tmp_path / "bars/interval=1day")) == 1
    store.write("1day", frame([("MSFT", t, 1.0)]))
    assert sorted(p.name for p in year.iterdir()) == ["data.parquet"]


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, polars as pl
    from barlake.storage.store import Store

    store = Store(sys.argv[1])
    start = np.datetime64("2024-06-03T00:00:00", "us")
    day0 = np.datetime64("2024-01-01", "us")
    for k in range(150):
        n = 20_000 + 5_000 * k  # seconds of June: one month file
        ts = start + np.arange(n) * np.timedelta64(1, "s")
        store.write("1min", pl.DataFrame({"symbol": "BRK/B", "ts": ts, "open": float(k),
            "high": float(k), "low": float(k), "close": float(k), "volume": 1.0}))
        m = 50 + 10 * k  # symbols x 100 days in the 2024 daily file
        sym = np.repeat(np.array([f"S{i:05d}" for i in range(m)]), 100)
        days = np.tile(day0 + np.arange(100) * np.timedelta64(1, "D"), m)
        store.write("1day", pl.DataFrame({"symbol": sym, "ts": days, "open": float(k),
            "high": float(k), "low": float(k), "close": float(k), "volume": 1.0}))
        if k == 0:
            print("ready", flush=True)
    time.sleep(60)
    """
)


def check_state(path: Path) -> None:
    """``path`` is readable and equals the state after one of the child's writes."""
    table = pl.read_parquet(path, hive_partitioning=False)
    keys = table.select(bars.KEY)
    assert keys.equals(keys.sort(bars.KEY))
    assert not keys.is_duplicated().any()
    closes = table["close"].unique().to_list()
    assert len(closes) == 1, f"{path} mixes writes {closes}"
    k = int(closes[0])
    if "interval=1min" in str(path):
        assert table.height == 20_000 + 5_000 * k
        assert table["symbol"].unique().to_list() == ["BRK/B"]
    else:
        assert table.height == (50 + 10 * k) * 100


def test_sigkill_during_writes_leaves_readable_files(tmp_path):
    rng = random.Random(20250115)
    roots = [tmp_path / f"trial{i}" for i in range(5)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(r)], stdout=subprocess.PIPE, text=True, env=env
        )
        for r in roots
    ]
    timers = []
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
            timer = threading.Timer(rng.uniform(0.0, 0.8), p.send_signal, [signal.SIGKILL])
            timer.start()
            timers.append(timer)
        for p in procs:
            assert p.wait(timeout=60) == -signal.SIGKILL
    finally:
        for timer in timers:
            timer.cancel()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    for root in roots:
        files = data_files(root)
        assert len(files) == 2
        for path in files:
            check_state(path)
        # Outside readers are not confused by temporary files a killed writer left behind.
        assert pads.dataset(root / "bars/interval=1day", partitioning="hive").count_rows() > 0
        assert len(pd.read_parquet(root / "bars/interval=1min", partitioning=None)) > 0


# -- the store on another file system ----------------------------------------------------------


def some_bars() -> dict[str, list[pl.DataFrame]]:
    """Writes per interval that span two files, overlap (the later wins) and reach many files."""
    days = [DAY0 + timedelta(days=i) for i in range(10)]
    minutes = [MINUTE0 + timedelta(minutes=i) for i in range(10)]
    return {
        "1day": [
            frame([(s, t, 1.0) for s in SYMBOLS for t in days]),
            frame([(s, t, 2.0) for s in SYMBOLS[:2] for t in days[3:6]]),
        ],
        "1min": [
            frame([(s, t, 1.0) for s in SYMBOLS for t in minutes]),
            frame([(s, t, 2.0) for s in ("AAPL", "BF.B") for t in minutes[4:]]),
            frame([(f"S{i:02d}", t, 3.0) for i in range(12) for t in minutes[:2]]),
        ],
    }


@pytest.fixture
def twins(tmp_path):
    """The same writes to a store on disk and one in memory (rooted at a path never created)."""
    memory = MemoryFileSystem()
    on_disk, in_memory = Store(tmp_path / "disk"), Store(tmp_path / "memory", fs=memory)
    for interval, batches in some_bars().items():
        for batch in batches:
            assert on_disk.write(interval, batch) == in_memory.write(interval, batch)
    return on_disk, in_memory, memory


def test_a_store_in_memory_reads_back_what_one_on_disk_does(twins, tmp_path):
    on_disk, in_memory, memory = twins
    for interval in ("1day", "1min"):
        assert in_memory.read(interval).equals(on_disk.read(interval))
        window = DateRange(date(2023, 12, 31), date(2024, 1, 3))
        some = ["AAPL", "S03"]
        assert triples(in_memory.scan(interval, some, window).collect()) == triples(
            on_disk.scan(interval, some, window).collect()
        )
    assert in_memory.read("1day").filter(pl.col("close") == 2.0).height == 6
    layout = [str(Path(p).relative_to(tmp_path / "memory")) for p in memory.paths()]
    assert layout == all_files(tmp_path / "disk")
    assert not (tmp_path / "memory").exists()


def test_a_store_in_memory_answers_gap_queries_by_reading_through_it(twins):
    on_disk, in_memory, _ = twins
    window = DateRange(date(2023, 12, 28), date(2024, 1, 7))
    sessions = get_calendar("XNYS").sessions_in(window)
    windows = pl.DataFrame(
        {"symbol": ["AAPL", "BF.B", "S01"], "start": [window.start] * 3, "end": [window.end] * 3}
    )
    for interval in ("1day", "1min"):
        for names in (None, ["AAPL", "S01"]):
            assert sorted(in_memory.session_days(interval, names, window).to_pylist(), key=str) == (
                sorted(on_disk.session_days(interval, names, window).to_pylist(), key=str)
            )
        assert in_memory.session_counts(interval, windows, sessions) == on_disk.session_counts(
            interval, windows, sessions
        )
    assert in_memory.liquidity(SYMBOLS, window, 5).equals(on_disk.liquidity(SYMBOLS, window, 5))


def test_prune_in_memory_removes_through_the_file_system(twins, tmp_path):
    on_disk, in_memory, memory = twins
    cutoffs = {"AAPL": date(2024, 6, 1), "BF.B": None}
    reports = [Pruned(dry_run=False), Pruned(dry_run=False)]
    for store, report in zip((on_disk, in_memory), reports, strict=True):
        prune(store, "1min", cutoffs, {}, report)
    assert reports[0].to_dict() == reports[1].to_dict()
    assert reports[1].files_deleted == 3
    assert in_memory.read("1min").equals(on_disk.read("1min"))
    layout = [str(Path(p).relative_to(tmp_path / "memory")) for p in memory.paths()]
    assert layout == all_files(tmp_path / "disk")


# -- outside readers (the README one-liners) --------------------------------------------------


@pytest.fixture
def written_lake(tmp_path):
    lake = Lake.init(tmp_path / "lake", clock=lambda: CLOCK)
    days = [datetime(2023, 12, 28, tzinfo=UTC) + timedelta(days=i) for i in range(10)]
    daily = frame(
        [(s, t, 100.0 * j + i) for j, s in enumerate(SYMBOLS) for i, t in enumerate(days)]
    )
    minutes = [datetime(2024, 5, 31, 19, 55, tzinfo=UTC) + timedelta(minutes=i) for i in range(3)]
    minutes += [datetime(2024, 6, 3, 13, 30, tzinfo=UTC) + timedelta(minutes=i) for i in range(4)]
    minute = frame(
        [(s, t, 10.0 * j + i) for j, s in enumerate(SYMBOLS) for i, t in enumerate(minutes)]
    )
    lake.store.write("1day", daily)
    lake.store.write("1min", minute)
    return lake.root, triples(daily), triples(minute)


def test_duckdb_reads_the_daily_bars(written_lake):
    root, daily, _ = written_lake
    rel = duckdb.sql(
        f"select * from read_parquet('{root}/bars/interval=1day/**/*.parquet', "
        "hive_partitioning=true)"
    )
    got = pl.from_arrow(rel.to_arrow_table())
    assert triples(got) == daily
    assert set(got["year"].to_list()) == {2023, 2024}


def test_duckdb_reads_the_minute_bars_with_decoded_symbols(written_lake):
    root, _, minute = written_lake
    rel = duckdb.sql(
        f"select * from read_parquet('{root}/bars/interval=1min/**/*.parquet', "
        "hive_partitioning=true)"
    )
    assert triples(pl.from_arrow(rel.to_arrow_table())) == minute


def test_polars_scans_the_minute_bars(written_lake):
    root, _, minute = written_lake
    got = pl.scan_parquet(f"{root}/bars/interval=1min/**/*.parquet", hive_partitioning=True)
    got = got.collect()
    assert sorted(set(got["symbol"].to_list())) == ["AAPL", "BF.B", "BRK/B"]
    assert triples(got) == minute
    assert sorted(set(got["month"].to_list())) == ["2024-05", "2024-06"]


def test_pyarrow_dataset_reads_the_daily_bars(written_lake):
    root, daily, _ = written_lake
    table = pads.dataset(f"{root}/bars/interval=1day", partitioning="hive").to_table()
    assert triples(pl.from_arrow(table)) == daily


def test_pandas_reads_daily_and_minute_bars(written_lake):
    root, daily, minute = written_lake
    got = pd.read_parquet(f"{root}/bars/interval=1day")
    assert triples(pl.from_pandas(got[["symbol", "ts", "close"]])) == daily
    got = pd.read_parquet(f"{root}/bars/interval=1min", partitioning=None)
    assert sorted(got["symbol"].unique()) == ["AAPL", "BF.B", "BRK/B"]
    assert triples(pl.from_pandas(got[["symbol", "ts", "close"]])) == minute


@pytest.mark.parametrize("indexed", [True, False], ids=["day index", "query"])
def test_a_row_without_prices_covers_no_session(tmp_path: Path, indexed: bool) -> None:
    store = Store(tmp_path, day_index=indexed)
    days = [datetime(2024, 6, d, tzinfo=UTC) for d in (3, 4, 5)]
    written = frame([("AAA", d, 10.0) for d in days])
    blank = pl.col("ts") == days[1]
    written = written.with_columns(
        [pl.when(blank).then(None).otherwise(pl.col(p)).alias(p) for p in bars.PRICES]
    )
    path = tmp_path / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    path.parent.mkdir(parents=True)
    bars.conform(written).write_parquet(path)  # behind the store's back, as another tool would
    june = DateRange(date(2024, 6, 3), date(2024, 6, 6))
    found = store.days_by_symbol("1day", ["AAA"], june)
    assert [str(d) for d in found["AAA"]] == ["2024-06-03", "2024-06-05"]
    windows = pl.DataFrame({"symbol": ["AAA"], "start": [june.start], "end": [june.end]})
    sessions = [date(2024, 6, d) for d in (3, 4, 5)]
    assert store.session_counts("1day", windows, sessions) == {"AAA": 2}
