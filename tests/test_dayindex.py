"""The day index: its answers equal the Parquet query's, stale or damaged entries are rebuilt,
a writer killed between the data file and its entry leaves gaps exact, and the lake's readers
never see it."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import threading
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from barlake.calendars.calendar import get_calendar
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.lake import Lake
from barlake.retention.prune import Pruned, prune
from barlake.storage import dayindex
from barlake.storage.filesystem import FileSystem, LocalFileSystem, MemoryFileSystem, Sink
from barlake.storage.store import Partition, Store

SYMBOLS = ["AAPL", "BRK/B", "BF.B"]
DAY0 = datetime(2023, 12, 20, tzinfo=UTC)  # daily bars span two year files
MINUTE0 = datetime(2024, 5, 30, 12, tzinfo=UTC)  # minute bars span two month files
# Session-date shifts: New York, Tokyo, Kolkata (half hour), Kathmandu (quarter hour), UTC,
# and one no exchange has, which the index cannot answer (the query does).
SHIFTS = [
    timedelta(hours=-5),
    timedelta(hours=9),
    timedelta(hours=5, minutes=30),
    timedelta(hours=5, minutes=45),
    timedelta(0),
    timedelta(minutes=7),
]
JUNE = DateRange.inclusive(date(2024, 6, 3), date(2024, 6, 28))
JUNE_GAPS = [("AAPL", "2024-06-18", "2024-06-20", 2)]  # 06-19 is a holiday
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)


def frame(rows: list[tuple[str, datetime]]) -> pl.DataFrame:
    prices = {c: [1.0] * len(rows) for c in ("open", "high", "low", "close", "volume")}
    return pl.DataFrame(
        {"symbol": [s for s, _ in rows], "ts": [t for _, t in rows], **prices},
        schema_overrides={"symbol": pl.String, "ts": pl.Datetime("us", "UTC")},
    )


def as_pairs(table: Any) -> set[tuple[str, date]]:
    return set(pl.DataFrame(pl.from_arrow(table)).select("symbol", "day").iter_rows())


def answers(store: Store, interval: Any, window: DateRange, shift: timedelta) -> tuple[Any, ...]:
    """Everything gap detection asks of a store, for every symbol and for some."""
    days = [window.start + timedelta(days=k) for k in range((window.end - window.start).days)]
    sessions = [d for d in days if d.weekday() != 2]  # some days are not sessions
    later, earlier = window.start + timedelta(days=2), window.end - timedelta(days=1)
    windows = pl.DataFrame(
        {  # whole and narrower (maybe empty) windows
            "symbol": ["AAPL", "BRK/B", "BF.B"],
            "start": [window.start, later, window.start],
            "end": [window.end, window.end, earlier],
        }
    )
    # A symbol with two windows (counted over both), and one without bars.
    split = pl.DataFrame(
        {
            "symbol": ["BRK/B", "BRK/B", "NONE"],
            "start": [window.start, later, window.start],
            "end": [later, window.end, window.end],
        }
    )
    by_symbol = store.days_by_symbol(interval, SYMBOLS[:2], window, shift)
    return (
        as_pairs(store.session_days(interval, None, window, shift)),
        as_pairs(store.session_days(interval, SYMBOLS[1:], window, shift)),
        {s: [str(d) for d in days] for s, days in by_symbol.items()},
        store.session_counts(interval, windows, sessions, shift),
        store.session_counts(interval, split, sessions, shift),
    )


# -- the index answers as the Parquet query does (property) ------------------------------------

writes_st = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(SYMBOLS), st.integers(0, 40)), max_size=15),
        st.booleans(),  # remove a file first
    ),
    min_size=1,
    max_size=4,
)


def check_same_answers(  # type: ignore[no-untyped-def]
    interval, step, t0, writes, window, shift, fs=None
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        indexed, queried = Store(Path(tmp), fs=fs, day_index=True), Store(Path(tmp), fs=fs)
        for batch, remove_first in writes:
            files = indexed.files(interval, None, None)
            if remove_first and files:
                indexed.remove_file(files[len(files) // 2])
            indexed.write(interval, frame([(s, t0 + k * step) for s, k in batch]))
            expected = answers(queried, interval, window, shift)
            assert answers(indexed, interval, window, shift) == expected


@settings(max_examples=30, deadline=None)
@given(writes_st, st.integers(0, 12), st.integers(1, 30))
def test_daily_index_answers_equal_the_query(writes, first, length):
    start = DAY0.date() + timedelta(days=first)
    window = DateRange(start, start + timedelta(days=length))
    check_same_answers("1day", timedelta(days=1), DAY0, writes, window, timedelta(0))


@settings(max_examples=40, deadline=None)
@given(writes_st, st.sampled_from(SHIFTS), st.integers(0, 2), st.integers(1, 4))
def test_minute_index_answers_equal_the_query_under_every_shift(writes, shift, first, length):
    # Steps of 97 minutes put bars at every time of day, across midnight and the month's end.
    window = DateRange(date(2024, 5, 30) + timedelta(first), date(2024, 6, 1) + timedelta(length))
    check_same_answers("1min", timedelta(minutes=97), MINUTE0, writes, window, shift)


IN_MEMORY_CASES = {
    "1day": (timedelta(days=1), DAY0, DateRange(date(2023, 12, 25), date(2024, 1, 10))),
    "1min": (timedelta(minutes=97), MINUTE0, DateRange(date(2024, 5, 30), date(2024, 6, 3))),
}


@settings(max_examples=20, deadline=None)
@given(writes_st, st.sampled_from(SHIFTS), st.sampled_from(sorted(IN_MEMORY_CASES)))
def test_index_in_memory_answers_equal_the_query_read_through_it(writes, shift, interval):
    # Both stores keep their files (bars and entries) in one MemoryFileSystem: the query reads
    # the Parquet files through it, the index its entries.
    step, t0, window = IN_MEMORY_CASES[interval]
    check_same_answers(interval, step, t0, writes, window, shift, MemoryFileSystem())


# -- stale, missing and damaged entries ---------------------------------------------------------


@pytest.fixture
def gappy(lake: Lake) -> Lake:
    """AAPL misses 06-18 and 06-20 of June 2024, MSFT is complete (daily, through the store)."""
    lake.add_symbols(["AAPL", "MSFT"])
    days = [date.fromisoformat(str(d)) for d in get_calendar("XNYS").sessions_in(JUNE)]
    rows = [("MSFT", datetime(d.year, d.month, d.day, tzinfo=UTC)) for d in days]
    rows += [
        ("AAPL", datetime(d.year, d.month, d.day, tzinfo=UTC))
        for d in days
        if d not in (date(2024, 6, 18), date(2024, 6, 20))
    ]
    lake.store.write("1day", frame(rows))
    return lake


def gaps_of(lake: Lake) -> list[tuple[str, str, str, int]]:
    found = lake.gaps(start=JUNE.start, end=JUNE.last)
    return [(g.symbol, str(g.range.start), str(g.range.last), g.sessions) for g in found]


def year_file(lake: Lake) -> Path:
    return lake.store.path(Partition("1day", None, "2024"))


def entry_of(lake: Lake) -> Path:
    assert lake.store.index is not None
    return lake.store.index.path(year_file(lake))


def forbid_parquet_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        msg = "the index should have answered"
        raise AssertionError(msg)

    monkeypatch.setattr("barlake.storage.dayindex.pl.read_parquet", refuse)
    monkeypatch.setattr("barlake.storage.store.Store._query_days", refuse)
    monkeypatch.setattr("barlake.storage.store._connect", refuse)


def test_fresh_entries_answer_without_reading_parquet(gappy, monkeypatch):
    forbid_parquet_reads(monkeypatch)
    assert gaps_of(gappy) == JUNE_GAPS


def test_a_file_replaced_behind_the_stores_back_is_read_again(gappy, monkeypatch):
    path = year_file(gappy)
    # Another tool fills AAPL's 06-18 and drops MSFT's 06-25, writing the file in place.
    added = bars.conform(frame([("AAPL", datetime(2024, 6, 18, tzinfo=UTC))]))
    edited = pl.concat([pl.read_parquet(path), added]).filter(
        (pl.col("symbol") != "MSFT") | (pl.col("ts") != datetime(2024, 6, 25, tzinfo=UTC))
    )
    pq.write_table(edited.sort("symbol", "ts").to_arrow(), path)
    expected = [("AAPL", "2024-06-20", "2024-06-20", 1), ("MSFT", "2024-06-25", "2024-06-25", 1)]
    assert gaps_of(gappy) == expected
    # The rebuilt entry was stored: the next query reads no Parquet.
    forbid_parquet_reads(monkeypatch)
    assert gaps_of(gappy) == expected


def test_an_unsorted_file_from_another_tool_is_indexed_right(gappy):
    path = year_file(gappy)
    shuffled = pl.read_parquet(path).sample(fraction=1.0, shuffle=True, seed=7)
    pq.write_table(shuffled.to_arrow(), path)
    assert gaps_of(gappy) == JUNE_GAPS


def flip_last_row(path: Path) -> None:
    """Invert the last symbol's (MSFT's) bitmask and keep the stamp: only the checksum tells."""
    raw = bytearray(path.read_bytes())
    decoded = dayindex.decode(bytes(raw))
    assert decoded is not None
    width = decoded[1].bits.shape[1]  # the bitmasks come last, before the CRC
    for i in range(len(raw) - 4 - width, len(raw) - 4):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_bytes(p.read_bytes()[:-9]),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_bytes(p.read_bytes() + b"x"),
        flip_last_row,
    ],
    ids=["deleted", "truncated", "empty", "extended", "flipped"],
)
def test_a_missing_or_damaged_entry_gives_the_same_gaps(gappy, damage):
    assert gaps_of(gappy) == JUNE_GAPS
    damage(entry_of(gappy))
    assert gaps_of(gappy) == JUNE_GAPS
    assert dayindex.decode(entry_of(gappy).read_bytes()) is not None  # rebuilt


def test_a_write_killed_between_index_and_data_leaves_gaps_exact(gappy, monkeypatch):
    # The entry is saved in the writer's thread before the data file moves into place: a
    # writer killed in between leaves an entry stamped with a file that never arrived.
    def killed(*args: object, **kwargs: object) -> None:
        msg = "killed before the data file was moved into place"
        raise RuntimeError(msg)

    monkeypatch.setattr(LocalFileSystem, "commit", killed)
    with pytest.raises(RuntimeError, match="killed"):
        gappy.store.write("1day", frame([("AAPL", datetime(2024, 6, 18, tzinfo=UTC))]))
    monkeypatch.undo()
    assert gaps_of(gappy) == JUNE_GAPS
    gappy.store.write("1day", frame([("AAPL", datetime(2024, 6, 18, tzinfo=UTC))]))
    forbid_parquet_reads(monkeypatch)  # and the entry of the write that did arrive is fresh
    assert gaps_of(gappy) == [("AAPL", "2024-06-20", "2024-06-20", 1)]


def same_size_rewrite(raw: bytes) -> tuple[bytes, bytes]:
    """The bars of ``raw`` as an uncompressed file, and one as large with one bar moved:
    MSFT's 06-25 becomes AAPL's 06-18 (same row count, same name length, same extremes)."""
    table = pl.read_parquet(raw).sort("symbol", "ts")
    moved = pl.concat(
        [
            table.filter(
                (pl.col("symbol") != "MSFT") | (pl.col("ts") != datetime(2024, 6, 25, tzinfo=UTC))
            ),
            table.filter(pl.col("symbol") == "AAPL")
            .head(1)
            .with_columns(pl.lit(datetime(2024, 6, 18, tzinfo=UTC)).alias("ts")),
        ]
    ).sort("symbol", "ts")

    def plain(frame: pl.DataFrame) -> bytes:
        sink = pa.BufferOutputStream()
        pq.write_table(frame.to_arrow(), sink, compression="none", use_dictionary=False)
        return sink.getvalue().to_pybytes()

    return plain(table), plain(moved)


def put_through(fs: FileSystem, path: Path, raw: bytes) -> None:
    def write(sink: Sink) -> None:
        if isinstance(sink, str):
            Path(sink).write_bytes(raw)
        else:
            sink.write(raw)

    fs.commit([fs.stage(path, write)])


@pytest.mark.parametrize("fs", [LocalFileSystem(), MemoryFileSystem()], ids=["local", "memory"])
def test_an_entry_is_rebuilt_when_the_version_changes_though_size_and_mtime_do_not(tmp_path, fs):
    store = Store(tmp_path / "lake", fs=fs, day_index=True)
    days = [date.fromisoformat(str(d)) for d in get_calendar("XNYS").sessions_in(JUNE)]
    rows = [
        (s, datetime(d.year, d.month, d.day, tzinfo=UTC)) for s in ("AAPL", "MSFT") for d in days
    ]
    store.write(
        "1day", frame([r for r in rows if r != ("AAPL", datetime(2024, 6, 18, tzinfo=UTC))])
    )
    path = store.path(Partition("1day", None, "2024"))
    with fs.open(path) as fh:
        before, after = same_size_rewrite(fh.read())
    assert len(before) == len(after) and before != after

    def missing() -> dict[str, list[str]]:
        found = store.days_by_symbol("1day", None, JUNE)
        return {s: [str(d) for d in sorted(set(days) - set(found[s].tolist()))] for s in found}

    put_through(fs, path, before)
    assert missing() == {"AAPL": ["2024-06-18"], "MSFT": []}  # the entry now names ``before``
    first = fs.version(path)
    put_through(fs, path, after)
    if isinstance(fs, LocalFileSystem):  # the same size and mtime: only the inode tells
        os.utime(path, ns=(first[1], first[1]))
        st = os.stat(path)
        assert (st.st_size, st.st_mtime_ns) == first[:2]
    assert fs.version(path) != first
    assert missing() == {"AAPL": [], "MSFT": ["2024-06-25"]}
    assert store.index is not None
    with fs.open(store.index.path(path)) as fh:
        stored = dayindex.decode(fh.read())
    assert stored is not None and stored[0] == fs.version(path)  # rebuilt and stored again


def format_1(entry: dayindex.Entry, size: int, mtime: int, inode: int) -> bytes:
    """An entry as the day index wrote them before versions came from the file system."""
    chars = max(entry.names.dtype.itemsize // 4, 1)
    header = struct.pack(
        "<4sHxxqqqqqqII", b"BLDX", 1, size, mtime, inode, entry.slot_us, entry.first,
        entry.slots, len(entry.names), chars,
    )  # fmt: skip
    body = header + entry.names.astype(f"<U{chars}").tobytes() + entry.bits.tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def test_entries_of_the_first_format_stay_fresh(gappy, monkeypatch):
    assert gaps_of(gappy) == JUNE_GAPS
    decoded = dayindex.decode(entry_of(gappy).read_bytes())
    assert decoded is not None
    version, entry = decoded
    old = format_1(entry, *version)  # type: ignore[arg-type]
    assert dayindex.decode(old) is not None
    entry_of(gappy).write_bytes(old)
    forbid_parquet_reads(monkeypatch)  # a lake indexed before keeps its entries
    assert gaps_of(gappy) == JUNE_GAPS


def test_a_lake_copied_elsewhere_answers_the_same(gappy, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(gappy.root, copy)
    assert gaps_of(Lake.open(copy, clock=lambda: CLOCK)) == JUNE_GAPS


def test_prune_keeps_entries_fresh_and_drops_them_with_their_file(lake, monkeypatch):
    store = lake.store
    rows = [("AAPL", MINUTE0 + k * timedelta(hours=7)) for k in range(12)]
    rows += [("MSFT", MINUTE0 + k * timedelta(hours=7)) for k in range(3)]
    store.write("1min", frame(rows))
    report = Pruned(dry_run=False)
    prune(store, "1min", {"AAPL": date(2024, 6, 2), "MSFT": date(2024, 6, 5)}, {}, report)
    assert (report.files_rewritten, report.files_deleted) == (1, 2)
    entries = sorted(str(p.relative_to(store.index.root)) for p in store.index.root.rglob("*"))
    assert entries == ["interval=1min", "interval=1min/symbol=AAPL", _june("AAPL")]
    forbid_parquet_reads(monkeypatch)
    days = store.days_by_symbol("1min", ["AAPL", "MSFT"], DateRange(date(2024, 5, 29), JUNE.end))
    assert {s: [str(d) for d in found] for s, found in days.items()} == {"AAPL": ["2024-06-02"]}


def _june(symbol: str) -> str:
    return f"interval=1min/symbol={symbol}/month=2024-06.days"


def test_concurrent_readers_never_see_a_torn_entry(tmp_path):
    store = Store(tmp_path, day_index=True)
    store.write("1day", frame([("AAPL", DAY0)]))
    assert store.index is not None
    entry = store.index.path(store.files("1day", None, None)[0])
    done = threading.Event()
    torn: list[int] = []

    def read() -> None:
        while not done.is_set():
            if dayindex.decode(entry.read_bytes()) is None:
                torn.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in range(60):
            store.write("1day", frame([(f"S{k:03d}", DAY0 + timedelta(days=k % 9))]))
    finally:
        done.set()
        reader.join()
    assert torn == []


# -- outside readers ---------------------------------------------------------------------------


def test_readers_one_liners_see_only_bars(lake):
    daily = [(s, DAY0 + timedelta(days=k)) for s in SYMBOLS for k in range(20)]
    minutes = [(s, MINUTE0 + k * timedelta(minutes=97)) for s in SYMBOLS for k in range(60)]
    lake.store.write("1day", frame(daily))
    lake.store.write("1min", frame(minutes))
    assert len(list((lake.root / "dayindex").rglob("*.days"))) == 2 + 2 * len(SYMBOLS)
    for interval, rows in (("1day", daily), ("1min", minutes)):
        base = f"{lake.root}/bars/interval={interval}"
        found = {
            "duckdb": duckdb.sql(
                f"select * from read_parquet('{base}/**/*.parquet', hive_partitioning=true)"
            ).pl(),
            "polars": pl.scan_parquet(f"{base}/**/*.parquet", hive_partitioning=True).collect(),
            "pandas": pl.from_pandas(pd.read_parquet(base, partitioning=None)),
        }
        if interval == "1day":
            found["pyarrow"] = pl.DataFrame(pads.dataset(base, partitioning="hive").to_table())
        for reader, got in found.items():
            assert got.height == len(rows), reader
            extra = set(got.columns) - set(bars.SCHEMA) - {"interval", "year", "month"}
            assert not extra, (reader, extra)
    assert {p.name for p in (lake.root / "bars").rglob("*") if p.is_file()} == {"data.parquet"}


def test_a_bare_store_writes_no_index(tmp_path):
    Store(tmp_path).write("1day", frame([("AAPL", DAY0)]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars"]


def test_entries_round_trip_any_names():
    names = pl.Series(["A", "BRK/B", "ZZ€", "x" * 40])
    ts = pl.Series([datetime(2024, 6, 3, 13, 30, tzinfo=UTC)] * 4)
    entry = dayindex.build(names, ts, dayindex.INTRADAY_SLOT_US)
    decoded = dayindex.decode(dayindex.encode(entry, (1, 2, 3)) or b"")
    assert decoded is not None
    stamp, back = decoded
    assert stamp == (1, 2, 3)
    assert back.names.tolist() == names.to_list()
    assert np.array_equal(back.bits, entry.bits)


@pytest.mark.parametrize(
    "version", [(), (7,), ('"d41d8cd98f00b204e9800998ecf8427e"',), ("v€-1", -1, 2**63 - 1), ("",)]
)
def test_entries_round_trip_any_version(version):
    entry = dayindex.build(pl.Series(["AAPL"]), pl.Series([DAY0]), dayindex.DAY_US)
    decoded = dayindex.decode(dayindex.encode(entry, version) or b"")
    assert decoded is not None
    assert decoded[0] == version


def test_a_version_that_cannot_be_written_leaves_no_entry():
    entry = dayindex.build(pl.Series(["AAPL"]), pl.Series([DAY0]), dayindex.DAY_US)
    assert dayindex.encode(entry, (2**64,)) is None  # the entry is dropped, rebuilt when read
