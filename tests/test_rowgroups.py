"""Row groups of whole symbols, and the direct read of a few symbols from them: exactly the
rows, order and types of the general reader, from only the row groups that may hold them."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from barlake.calendars.calendar import calendar_for
from barlake.catalog import embedded
from barlake.domain import bars
from barlake.domain.ranges import DateRange
from barlake.errors import StorageError
from barlake.lake import Lake
from barlake.storage import reads, rowgroups
from barlake.storage.filesystem import MemoryFileSystem
from barlake.storage.store import Store

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
NEW_YORK = calendar_for(None).day_shift


def daily(names: list[str], first: date, days: int, value: float = 1.0) -> pl.DataFrame:
    ts = [datetime.combine(first + timedelta(d), datetime.min.time(), UTC) for d in range(days)]
    n = len(names) * len(ts)
    rng = np.random.default_rng(len(names) * days)
    return pl.DataFrame(
        {
            "symbol": np.repeat(names, len(ts)),
            "ts": ts * len(names),
            **{c: rng.random(n) + value for c in (*bars.PRICES, "volume")},
            "vwap": [None if i % 7 == 0 else float(i) for i in range(n)],
            "trades": [None if i % 5 == 0 else i for i in range(n)],
            "source": "demo",
        }
    )


def minutes(symbol: str, starts: list[datetime]) -> pl.DataFrame:
    n = len(starts)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": starts,
            **{c: [float(i) for i in range(n)] for c in (*bars.PRICES, "volume")},
        }
    )


NAMES = [f"S{i:03d}" for i in range(40)]  # 40 x 300 days: several row groups per year


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rowgroups") / "lake"
    lake = Lake.init(root, clock=lambda: NOW)
    lake.store.write("1day", daily(NAMES, date(2023, 10, 1), 300))
    # Minute bars around midnight UTC: their session date depends on the day shift.
    starts = [
        datetime(2024, 5, 30, 12, tzinfo=UTC) + timedelta(minutes=15 * k) for k in range(4 * 24 * 4)
    ]
    for sym in ("AAPL", "BTCUSD", "ZZZ"):
        lake.store.write("1min", minutes(sym, starts))
    lake.add_symbols("AAPL")
    lake.add_symbols("BTCUSD", asset_class="crypto")
    return root


@pytest.fixture
def lake(template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(template, root)
    return Lake.open(root, clock=lambda: NOW)


def both(store: Store, interval: str, names: list[str], window: DateRange | None, shift: timedelta):
    """The direct read and the general one of the same selection, collected."""
    shifts = dict.fromkeys(names or [], shift)
    direct = reads.bars(store, interval, names, window, shifts, shift).collect()
    general = reads.bars(store, interval, names, window, shifts, shift, direct=False).collect()
    return direct, general


def assert_same(direct: pl.DataFrame, general: pl.DataFrame) -> None:
    assert direct.schema == general.schema == pl.Schema(bars.SCHEMA)
    assert direct.equals(general)  # values, nulls and order


def test_daily_files_are_written_in_row_groups_of_whole_symbols(lake: Lake) -> None:
    meta = pq.read_metadata(lake.root / "bars/interval=1day/year=2024/data.parquet")
    groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
    assert len(groups) > 3
    assert all(g.num_rows <= rowgroups.GROUP_ROWS + 366 for g in groups)
    spans = [(g.column(0).statistics.min, g.column(0).statistics.max) for g in groups]
    for (_, high), (low, _) in itertools.pairwise(spans):
        assert high < low  # no symbol is split between two groups


def test_a_symbols_read_opens_only_its_row_group(lake: Lake, monkeypatch) -> None:
    opened: list[list[int]] = []
    real = pq.ParquetFile.read_row_groups

    def spy(self, groups, **kwargs):  # type: ignore[no-untyped-def]
        opened.append(list(groups))
        return real(self, groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    frame = lake.bars("S017", start=date(2024, 1, 1), end=date(2024, 12, 31)).collect()
    assert frame.height == 208  # 2024-01-01 .. 2024-07-26
    assert opened == [[opened[0][0]]]


@pytest.mark.parametrize(
    ("names", "window"),
    [
        (["S017"], DateRange(date(2024, 1, 1), date(2025, 1, 1))),
        (["S017"], DateRange(date(2023, 12, 30), date(2024, 1, 3))),  # across two files
        (["S000", "S039", "S020"], DateRange(date(2024, 3, 5), date(2024, 3, 9))),  # mid-file
        (["S005", "NOPE"], DateRange(date(2024, 3, 5), date(2024, 6, 1))),  # one absent
        (["NOPE"], DateRange(date(2024, 3, 5), date(2024, 6, 1))),
        (["S017"], DateRange(date(2026, 1, 1), date(2026, 2, 1))),  # no file
        (["S017", "S018"], None),
        (None, DateRange(date(2024, 3, 5), date(2024, 6, 1))),  # every symbol, a cross-section
        (None, DateRange(date(2023, 12, 20), date(2024, 1, 10))),  # across two year files
        (None, None),
    ],
)
def test_the_direct_daily_read_equals_the_general_one(lake: Lake, names, window) -> None:
    direct, general = both(lake.store, "1day", names, window, timedelta(0))
    assert_same(direct, general)
    if names != ["NOPE"] and window is not None and window.start.year < 2026:
        assert direct.height


@pytest.mark.parametrize("shift", [NEW_YORK, timedelta(0), timedelta(hours=9)])
@pytest.mark.parametrize(
    ("window", "whole"),
    [
        (DateRange(date(2024, 5, 31), date(2024, 6, 1)), False),
        (DateRange(date(2024, 6, 1), date(2024, 6, 3)), False),
        (DateRange(date(2024, 5, 1), date(2024, 7, 1)), True),  # the file, unfiltered
    ],
)
def test_the_direct_intraday_read_equals_the_general_one(lake: Lake, shift, window, whole) -> None:
    direct, general = both(lake.store, "1min", ["ZZZ"], window, shift)
    assert_same(direct, general)
    assert direct.height > 0 and (direct.height == 4 * 24 * 4) == whole


def test_lake_bars_takes_the_direct_read_with_each_symbols_calendar(
    lake: Lake, monkeypatch
) -> None:
    june1 = {"start": date(2024, 6, 1), "end": date(2024, 6, 1)}
    general = {s: lake.bars(s, interval="1min", **june1).collect() for s in ("AAPL", "BTCUSD")}

    def no_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the direct read fell back to a scan")

    monkeypatch.setattr(Store, "scan", no_scan)
    for sym in ("AAPL", "BTCUSD"):
        assert_same(lake.bars(sym, interval="1min", **june1).collect(), general[sym])
    # New York's session date (standard time, UTC-5) starts at 05:00 UTC, crypto's at midnight
    assert general["AAPL"]["ts"].min() == datetime(2024, 6, 1, 5, tzinfo=UTC)
    assert general["BTCUSD"]["ts"].min() == datetime(2024, 6, 1, tzinfo=UTC)


def test_every_symbols_daily_bars_are_read_directly(lake: Lake, monkeypatch) -> None:
    june = {"start": date(2024, 6, 1), "end": date(2024, 6, 30)}
    general = lake.bars(**june, adjust="splits").collect()  # adjusted: the general reader

    def no_scan(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the direct read fell back to a scan")

    monkeypatch.setattr(Store, "scan", no_scan)
    direct = lake.bars(**june).collect()
    assert_same(direct, general)  # no actions on record: the same prices
    assert direct.height == len(NAMES) * 30


def test_a_file_of_another_schema_is_read_by_the_general_reader(lake: Lake) -> None:
    path = lake.root / "bars/interval=1day/year=2024/data.parquet"
    frame = pl.read_parquet(path).with_columns(pl.col("trades").cast(pl.Int32))
    frame.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(path)  # unsorted, int32
    window = DateRange(date(2024, 3, 5), date(2024, 3, 9))
    direct, general = both(lake.store, "1day", ["S003", "S001"], window, timedelta(0))
    assert direct.equals(general) and direct.height == 8
    assert direct.schema == general.schema


@pytest.mark.parametrize("names", [["S003"], ["S003", "S001"]])
def test_an_unsorted_file_in_the_lakes_schema_reads_the_same_rows(lake: Lake, names) -> None:
    """Another tool's file with the lake's columns and types but shuffled rows: groups whose
    symbol ranges overlap (no binary search) and selected rows that are not one run (no slice)."""
    path = lake.root / "bars/interval=1day/year=2024/data.parquet"
    table = pq.read_table(path)
    shuffled = table.take(np.random.default_rng(3).permutation(table.num_rows))
    pq.write_table(shuffled, path, row_group_size=1000)
    footer = rowgroups.parse(pq.read_metadata(path))
    assert footer is not None and not footer.ordered
    window = DateRange(date(2024, 3, 5), date(2024, 3, 9))
    direct, general = both(lake.store, "1day", names, window, timedelta(0))
    assert_same(direct, general)
    assert direct.height == 4 * len(names)
    assert sorted(direct["symbol"].unique()) == sorted(names)


def test_a_file_of_many_symbols_keeps_its_row_groups_few(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(rowgroups, "MAX_GROUPS", 8)
    lake = Lake.init(tmp_path / "lake", clock=lambda: NOW)
    many = [f"M{i:03d}" for i in range(100)]
    lake.store.write("1day", daily(many, date(2024, 1, 1), 30))  # 3,000 rows, 30 a symbol
    meta = pq.read_metadata(tmp_path / "lake/bars/interval=1day/year=2024/data.parquet")
    # Stretches of 3,000 / 8 = 375 rows rather than 256: 8 groups, each of whole symbols.
    assert meta.num_row_groups == 8
    assert {meta.row_group(g).num_rows for g in range(8)} == {390, 360}
    got = lake.bars("M042", start=date(2024, 1, 1), end=date(2024, 1, 31)).collect()
    assert got.height == 30 and got["symbol"].unique().to_list() == ["M042"]


def test_a_damaged_file_is_refused_as_by_the_general_reader(lake: Lake) -> None:
    path = lake.root / "bars/interval=1day/year=2024/data.parquet"
    path.write_bytes(b"not parquet at all" * 100)
    with pytest.raises(StorageError, match="not a bar file of this lake: it cannot be read"):
        lake.bars("S001", start=date(2024, 3, 1), end=date(2024, 3, 9)).collect()


def test_a_file_system_without_local_paths_reads_through_it(lake: Lake) -> None:
    """The seam object stores go through: the same rows from bytes read by ``open``."""
    memory = MemoryFileSystem()
    store = Store(lake.root, fs=memory, day_index=True)
    store.write("1day", daily(NAMES, date(2023, 10, 1), 300))
    store.write(
        "1min",
        minutes(
            "ZZZ",
            [datetime(2024, 5, 31, 23, 45, tzinfo=UTC) + timedelta(minutes=m) for m in range(30)],
        ),
    )
    local = lake.store
    for interval, names, window, shift in [
        ("1day", ["S017", "S002"], DateRange(date(2024, 1, 1), date(2025, 1, 1)), timedelta(0)),
        ("1min", ["ZZZ"], DateRange(date(2024, 6, 1), date(2024, 6, 2)), timedelta(0)),
    ]:
        direct, general = both(store, interval, names, window, shift)
        assert_same(direct, general)
        if interval == "1day":
            assert direct.equals(both(local, interval, names, window, shift)[1])
        else:
            assert direct.height == 15


@pytest.mark.s3
def test_a_lake_on_s3_reads_the_same_rows_directly(tmp_path: Path, bucket) -> None:  # type: ignore[no-untyped-def]
    from tests.s3support import configure

    root = tmp_path / "lake"
    configure(root, bucket)
    lake = Lake.init(root, clock=lambda: NOW)
    lake.store.write("1day", daily(NAMES, date(2023, 10, 1), 300))
    assert lake.store.fs.local_path(lake.store.root / "x") is None
    window = DateRange(date(2024, 3, 5), date(2024, 4, 1))
    direct, general = both(lake.store, "1day", ["S007", "S030"], window, timedelta(0))
    assert_same(direct, general)
    assert direct.height == 2 * 27


def test_a_read_while_a_file_is_replaced_falls_back(lake: Lake, monkeypatch) -> None:
    """The footer read first describes the version seen first: a file replaced meanwhile is
    read by the general reader instead, never with a footer of another version."""
    store = lake.store
    real = rowgroups.Footers.get

    def replace_after(self, path, version):  # type: ignore[no-untyped-def]
        footer = real(self, path, version)
        store.write("1day", daily(["S017"], date(2024, 1, 1), 3, value=50.0))
        return footer

    monkeypatch.setattr(rowgroups.Footers, "get", replace_after)
    window = DateRange(date(2024, 1, 1), date(2024, 1, 3))
    frame = reads.bars(store, "1day", ["S017"], window, {}, timedelta(0)).collect()
    assert frame.height == 2 and frame["open"].min() >= 50.0


def test_live_bars_are_read_through_the_general_reader_and_overlaid(
    lake: Lake, monkeypatch
) -> None:
    t = datetime(2024, 6, 1, 12, tzinfo=UTC)
    live = minutes("ZZZ", [t]).with_columns(pl.lit(99.0).alias("close"))
    lake.live.write(live)
    direct_calls: list[object] = []
    real = Store.read_symbols
    monkeypatch.setattr(
        Store, "read_symbols", lambda *a, **k: direct_calls.append(a) or real(*a, **k)
    )
    frame = lake.bars(
        "ZZZ", interval="1min", start=date(2024, 6, 1), end=date(2024, 6, 1)
    ).collect()
    assert direct_calls == []
    assert frame.filter(pl.col("ts") == t)["close"].to_list() == [99.0]
    assert frame.height == frame.unique(["symbol", "ts"]).height


def test_adjusted_reads_do_not_take_the_direct_read(lake: Lake, monkeypatch) -> None:
    lake.store.write("1day", daily(["AAPL"], date(2024, 6, 3), 5, value=100.0))
    lake.catalog.execute(
        "INSERT INTO actions (symbol, type, ex_date, ratio, source, fetched_at) "
        "VALUES ('AAPL', 'split', DATE '2024-06-05', 2.0, 'test', TIMESTAMPTZ '2024-06-01 00:00Z')"
    )
    raw = lake.bars("AAPL", start=date(2024, 6, 3), end=date(2024, 6, 7)).collect()
    direct_calls: list[object] = []
    real = Store.read_symbols
    monkeypatch.setattr(
        Store, "read_symbols", lambda *a, **k: direct_calls.append(a) or real(*a, **k)
    )
    adjusted = lake.bars(
        "AAPL", start=date(2024, 6, 3), end=date(2024, 6, 7), adjust="splits"
    ).collect()
    assert direct_calls == []
    assert adjusted["close"].to_list()[:2] == [c / 2 for c in raw["close"].to_list()[:2]]
    assert adjusted["close"].to_list()[2:] == raw["close"].to_list()[2:]


def test_day_shifts_are_kept_only_while_the_catalog_is_unchanged(lake: Lake, monkeypatch) -> None:
    monkeypatch.setattr(embedded, "STAMP_SETTLE_NS", 0)
    june1 = {"start": date(2024, 6, 1), "end": date(2024, 6, 1)}
    first = lake.bars("ZZZ", interval="1min", **june1).collect()  # unknown: New York's
    assert first["ts"].min() == datetime(2024, 6, 1, 5, tzinfo=UTC)
    queried: list[object] = []
    registry = lake.services.registry
    real = type(registry).day_shifts
    monkeypatch.setattr(
        type(registry), "day_shifts", lambda self, n: queried.append(n) or real(self, n)
    )
    assert lake.bars("ZZZ", interval="1min", **june1).collect().equals(first)
    assert queried == []  # the catalog did not change: no query
    # Another process makes ZZZ a crypto symbol: the next read follows its calendar.
    script = f"""
        from barlake.lake import Lake
        Lake.open({str(lake.root)!r}).add_symbols("ZZZ", asset_class="crypto")
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True)
    after = lake.bars("ZZZ", interval="1min", **june1).collect()
    assert queried == [None]  # every known symbol's, once
    assert after["ts"].min() == datetime(2024, 6, 1, tzinfo=UTC)


def test_a_catalog_changed_moments_ago_gives_no_stamp(lake: Lake) -> None:
    lake.add_symbols("MSFT")
    assert lake.catalog.stamp() is None  # within the settle time: a write may share the mtime
