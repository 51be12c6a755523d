"""``Lake.bars``: the same rows as the README's reader one-liners, and a DuckDB relation too."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pytest

from barlake import UsageError
from barlake.domain.bars import SCHEMA
from barlake.lake import Lake

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
SYMBOLS = ["AAPL", "BRK/B", "MSFT"]
# Daily bars across a year boundary, intraday ones across a month boundary.
DAILY = {"start": date(2023, 12, 20), "end": date(2024, 1, 10)}
INTRADAY = {"start": date(2024, 5, 29), "end": date(2024, 6, 4)}
NEW_YORK = "America/New_York"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bars") / "lake"
    lake = Lake.init(root, clock=lambda: NOW)
    lake.add_symbols(SYMBOLS)
    assert lake.fill(interval="1day", provider="demo", **DAILY).ok
    assert lake.fill(interval="15min", provider="demo", **INTRADAY).ok
    return root


@pytest.fixture
def lake(template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(template, root)
    return Lake.open(root, clock=lambda: NOW)


def rows(frame: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    """A reader's result as the lake's columns and types, sorted: comparable with ``equals``."""
    if isinstance(frame, pd.DataFrame):
        frame = pl.from_pandas(frame[list(SCHEMA)])
    return frame.select(list(SCHEMA)).cast(SCHEMA).sort("symbol", "ts")


def readers(root: Path, interval: str) -> dict[str, pl.DataFrame]:
    """Every stored bar of ``interval`` through each one-liner of the README."""
    base = f"{root}/bars/interval={interval}"
    out = {
        "duckdb": rows(
            pl.from_arrow(
                duckdb.sql(
                    f"select * from read_parquet('{base}/**/*.parquet', hive_partitioning=true)"
                ).to_arrow_table()
            )
        ),
        "polars": rows(pl.scan_parquet(f"{base}/**/*.parquet", hive_partitioning=True).collect()),
    }
    if interval == "1day":
        out["pyarrow"] = rows(pl.from_arrow(pads.dataset(base, partitioning="hive").to_table()))
        out["pandas"] = rows(pd.read_parquet(base))
    else:
        out["pandas"] = rows(pd.read_parquet(base, partitioning=None))
    return out


def session_date(interval: str) -> pl.Expr:
    """A reader's own session date: daily bars carry it; intraday ones in New York time."""
    ts = pl.col("ts")
    return ts.dt.date() if interval == "1day" else ts.dt.convert_time_zone(NEW_YORK).dt.date()


@pytest.mark.parametrize("interval", ["1day", "15min"])
def test_all_bars_equal_every_reader_one_liner(lake: Lake, interval: str) -> None:
    got = lake.bars(interval=interval).collect()
    assert got.schema == pl.Schema(SCHEMA)
    assert got.equals(got.sort("symbol", "ts"))
    assert set(got["symbol"]) == set(SYMBOLS)
    for name, frame in readers(lake.root, interval).items():
        assert got.equals(frame), name


@pytest.mark.parametrize(
    ("interval", "first", "last"),
    [
        ("1day", date(2023, 12, 28), date(2024, 1, 3)),
        ("15min", date(2024, 5, 31), date(2024, 6, 3)),
    ],
)
def test_a_selection_equals_the_readers_filtered(
    lake: Lake, interval: str, first: date, last: date
) -> None:
    chosen = ["BRK/B", "AAPL"]
    got = lake.bars(chosen, interval=interval, start=first, end=last).collect()
    assert set(got["symbol"]) == set(chosen)
    assert got.height > 0
    wanted = (pl.col("symbol").is_in(chosen)) & session_date(interval).is_between(first, last)
    for name, frame in readers(lake.root, interval).items():
        assert got.equals(frame.filter(wanted)), name
    # A comma list works like a sequence.
    assert lake.bars("BRK/B,AAPL", interval=interval, start=first, end=last).collect().equals(got)


def test_days_counts_back_from_the_lake_clock(lake: Lake) -> None:
    days = (NOW.date() - DAILY["end"]).days + 1  # ends today, starts on the last filled day
    got = lake.bars(days=days).collect()
    assert got.height == len(SYMBOLS)
    assert set(got["ts"].dt.date()) == {DAILY["end"]}
    assert got.equals(lake.bars(start=DAILY["end"]).collect())


def test_works_as_a_duckdb_relation(lake: Lake) -> None:
    bars = lake.bars(["AAPL", "BRK/B"], interval="15min", **INTRADAY)
    expected = bars.collect()
    by_name = duckdb.sql("select * from bars order by symbol, ts").pl()
    assert rows(by_name).equals(expected)
    relation = duckdb.from_arrow(bars)
    counts = relation.aggregate("symbol, count(*) AS n", "symbol").order("symbol").fetchall()
    assert counts == sorted(expected.group_by("symbol").len().iter_rows())


def test_nothing_stored_is_an_empty_frame_with_the_schema(lake: Lake) -> None:
    assert lake.bars("NOPE").collect().schema == pl.Schema(SCHEMA)
    assert lake.bars("NOPE").collect().is_empty()
    assert lake.bars(interval="1hour").collect().is_empty()
    with pytest.raises(UsageError, match="unknown interval"):
        lake.bars(interval="2min")
    with pytest.raises(UsageError, match="either --days or --start"):
        lake.bars(days=3, start=date(2024, 1, 2))


def minute_bars(symbol: str, starts: list[datetime]) -> pl.DataFrame:
    n = len(starts)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": starts,
            "open": [1.0] * n,
            "high": [1.0] * n,
            "low": [1.0] * n,
            "close": [1.0] * n,
            "volume": [1.0] * n,
        }
    )


def test_intraday_session_dates_follow_each_symbols_calendar(lake: Lake) -> None:
    """A crypto bar at 01:00 UTC belongs to that UTC date; an equity bar at 01:00 UTC (an
    after-hours print) to the previous New York date; unknown symbols use New York's."""
    lake.add_symbols("BTCUSD", asset_class="crypto")
    late = datetime(2024, 6, 4, 1, tzinfo=UTC)
    noon = datetime(2024, 6, 3, 16, tzinfo=UTC)
    for sym in ("BTCUSD", "AAPL", "ZZZ"):
        lake.store.write("1min", minute_bars(sym, [noon, late]))
    june3 = {"start": date(2024, 6, 3), "end": date(2024, 6, 3)}
    june4 = {"start": date(2024, 6, 4), "end": date(2024, 6, 4)}

    def keys(frame: pl.LazyFrame) -> list[tuple[str, datetime]]:
        return list(frame.select("symbol", "ts").collect().iter_rows())

    assert keys(lake.bars(interval="1min", **june3)) == [
        ("AAPL", noon),
        ("AAPL", late),
        ("BTCUSD", noon),
        ("ZZZ", noon),
        ("ZZZ", late),
    ]
    assert keys(lake.bars(interval="1min", **june4)) == [("BTCUSD", late)]
    assert keys(lake.bars(["BTCUSD", "ZZZ"], interval="1min", **june4)) == [("BTCUSD", late)]
    assert keys(lake.bars("ZZZ", interval="1min", **june3)) == [("ZZZ", noon), ("ZZZ", late)]
    everything = lake.bars(interval="1min").collect()
    assert everything.height == 6 and everything.equals(everything.sort("symbol", "ts"))


def test_the_readme_example_runs(
    template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    (example,) = [b for b in blocks if "lake.bars(" in b]
    shutil.copytree(template, tmp_path / "lake")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "coverage.png").is_file()
    assert (tmp_path / "report.html").is_file()
