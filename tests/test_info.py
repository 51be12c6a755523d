"""What the lake holds: ``lake info`` (``Lake.info``) agrees with ``gaps`` and ``coverage`` cell
by cell, ``lake show`` prints bars, ``lake export`` writes the rows ``Lake.bars`` gives."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from tests.conftest import CLOCK, HOLES, JUNE, LISTED, MIDDAY, xnys

from barlake.cli import cli
from barlake.coverage.matrix import NOT_EXPECTED, STATES
from barlake.domain.bars import SCHEMA
from barlake.errors import UsageError
from barlake.lake import Lake
from barlake.providers.demo import demo_halted

DATES = ["--start", "2024-06-03", "--end", "2024-06-28"]


def invoke(lake: Lake, *args: str):
    return CliRunner().invoke(cli, ["--lake", str(lake.root), *args], catch_exceptions=False)


def info_json(lake: Lake, *args: str) -> dict:
    result = invoke(lake, "info", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_info_json_agrees_cell_by_cell_with_gaps_and_coverage(planted: Lake) -> None:
    data = info_json(planted, *DATES)
    series = {(s["symbol"], s["interval"]): s for s in data["series"]}
    cov = planted.coverage(**JUNE)
    gaps = planted.gaps(interval="1day", **JUNE)
    assert sorted(series) == [(s, "1day") for s in cov.symbols]
    for sym in cov.symbols:
        row, got = cov.row(sym), series[(sym, "1day")]
        for code, name in STATES.items():
            if code != NOT_EXPECTED:
                assert got[name] == int((row == code).sum()), (sym, name)
        assert got["expected"] == int((row != NOT_EXPECTED).sum())
        seen = cov.sessions[row != NOT_EXPECTED]
        assert (got["window_first"], got["window_last"]) == (str(seen[0]), str(seen[-1]))
        gap_sessions = sum(g.sessions for g in gaps if g.symbol == sym)
        assert got["missing"] + got["provisional"] == gap_sessions, sym
    # The planted cells themselves, so that an info that agreed with a wrong coverage fails too.
    june = xnys(*JUNE.values())
    halted = sum(demo_halted("HALT1", d) for d in june)
    assert [series[("HOLE", "1day")][k] for k in ("expected", "stored", "missing")] == [19, 17, 2]
    assert series[("HALT1", "1day")]["empty"] == halted > 0
    assert series[("HALT1", "1day")]["stored"] == 19 - halted
    late = series[("LATE", "1day")]
    assert (late["window_first"], late["expected"], late["missing"]) == (str(LISTED), 9, 9)
    assert (late["bars"], late["first_bar"], late["files"], late["last_fill"]) == (0, None, 0, None)
    prov = series[("PROV", "1day")]
    assert (prov["provisional"], prov["stored"], prov["missing"]) == (1, 18, 0)
    totals = data["totals"]
    assert totals["missing"] + totals["provisional"] == cov.gap_sessions
    assert totals["expected"] == int((cov.states != NOT_EXPECTED).sum())
    assert data["intervals"] == [{"interval": "1day", **totals}]


def test_info_bars_and_files_are_what_is_stored(planted: Lake) -> None:
    data = info_json(planted, *DATES)
    stored = planted.bars(**JUNE).collect()
    for s in data["series"]:
        mine = stored.filter(pl.col("symbol") == s["symbol"])
        assert s["bars"] == mine.height, s["symbol"]
        if mine.height:
            assert s["first_bar"] == mine["ts"].min().isoformat()  # type: ignore[union-attr]
            assert s["last_bar"] == mine["ts"].max().isoformat()  # type: ignore[union-attr]
            assert s["first_bar"].endswith("T00:00:00+00:00")
    # Daily bars of every symbol share the year file; its bytes are shared out by rows.
    (year,) = (planted.root / "bars" / "interval=1day").rglob("*.parquet")
    totals = data["totals"]
    assert (totals["files"], totals["bars"]) == (1, stored.height)
    assert abs(totals["bytes"] - os.path.getsize(year)) <= len(data["series"])
    hole, full = (next(s for s in data["series"] if s["symbol"] == n) for n in ("HOLE", "FULL"))
    assert hole["files"] == full["files"] == 1
    assert hole["bytes"] == pytest.approx(full["bytes"] * 17 / 19, abs=1)


def test_info_names_the_last_fill_and_its_provider(planted: Lake) -> None:
    series = {s["symbol"]: s for s in info_json(planted, *DATES)["series"]}
    assert series["FULL"]["last_fill"] == CLOCK.isoformat()
    assert series["PROV"]["last_fill"] == MIDDAY.isoformat()
    assert series["FULL"]["provider"] == series["PROV"]["provider"] == "demo"
    job = planted.jobs(5).filter(pl.col("job_id").cast(pl.String) == series["FULL"]["job_id"])
    assert job.height == 1
    assert (series["HOLE"]["last_fill"], series["HOLE"]["provider"]) == (None, None)


def test_info_without_an_interval_shows_every_interval_the_lake_holds(planted: Lake) -> None:
    assert planted.fill("FULL", provider="demo", interval="1hour", **JUNE).ok
    found = planted.info(**JUNE)
    assert found.intervals == ["1hour", "1day"]
    hourly = found.of("1hour")
    assert [s.symbol for s in hourly] == ["FULL", "HALT1", "HOLE", "LATE", "PROV"]
    full = next(s for s in hourly if s.symbol == "FULL")
    assert (full.bars, full.files, full.missing) == (
        planted.bars("FULL", interval="1hour", **JUNE).collect().height,
        1,
        0,
    )
    assert full.bars > 19 * 6
    assert next(s for s in hourly if s.symbol == "HOLE").missing == 19
    assert found.totals("1hour")["bars"] == full.bars
    assert found.totals()["bars"] == full.bars + found.totals("1day")["bars"]
    assert found.totals()["files"] == 2  # FULL's 2024 file of hours and the daily year file


def test_info_table_for_people(planted: Lake) -> None:
    result = invoke(planted, "info", *DATES)
    assert result.exit_code == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert lines[0][:5] == ["symbol", "interval", "first_bar", "last_bar", "bars"]
    hole = next(line for line in lines if line[0] == "HOLE")
    assert hole[:5] == ["HOLE", "1day", "2024-06-03", "2024-06-28", "17"]
    assert hole[5:10] == ["2024-06-03..2024-06-28", "19", "17", "2", "0"]
    assert lines[-1][:2] == ["total", "1day"]


def test_info_of_a_lake_without_symbols_says_so(lake: Lake) -> None:
    result = invoke(lake, "info")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no symbols selected" in result.stderr
    assert info_json(lake)["totals"]["symbols"] == 0


# -- lake show ---------------------------------------------------------------------------------


def test_show_prints_the_last_bars(planted: Lake) -> None:
    result = invoke(planted, "show", "HOLE", "--tail", "3", *DATES)
    assert result.exit_code == 0, result.stderr
    header, *rows = [line.split() for line in result.stdout.splitlines()]
    assert header == list(SCHEMA)
    assert [r[:2] for r in rows] == [
        ["HOLE", "2024-06-26"],
        ["HOLE", "2024-06-27"],
        ["HOLE", "2024-06-28"],
    ]
    assert rows[0][2:7] == ["10", "11", "9", "10.5", "100"]  # each column as precise as it needs
    every = invoke(planted, "show", "HOLE", "--tail", "0", "--json")
    assert [b["ts"][:10] for b in json.loads(every.stdout)] == [
        d.isoformat() for d in xnys(*JUNE.values()) if d not in HOLES
    ]


def test_show_of_a_symbol_without_bars_says_so(planted: Lake) -> None:
    result = invoke(planted, "show", "LATE")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no 1day bars of LATE stored" in result.stderr


# -- lake export -------------------------------------------------------------------------------


def read_back(path: Path, fmt: str) -> pl.DataFrame:
    if fmt == "parquet":
        return pl.read_parquet(path)
    if fmt == "csv":
        frame = pl.read_csv(path, schema={**SCHEMA, "ts": pl.String})
    else:
        frame = pl.read_json(path, schema={**SCHEMA, "ts": pl.String})
    assert frame["ts"].str.contains("T").all()
    return frame.with_columns(pl.col("ts").str.to_datetime(time_unit="us", time_zone="UTC"))


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
@pytest.mark.parametrize("interval", ["1day", "15min"])
def test_export_round_trips_to_the_rows_of_lake_bars(
    planted: Lake, tmp_path: Path, fmt: str, interval: str
) -> None:
    if interval != "1day":
        assert planted.fill("FULL,HALT1", provider="demo", interval=interval, **JUNE).ok
    out = tmp_path / f"bars.{fmt}"
    args = ["--symbols", "FULL,HALT1,HOLE", "--interval", interval, *DATES]
    result = invoke(planted, "export", *args, "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    expected = planted.bars("FULL,HALT1,HOLE", interval=interval, **JUNE).collect()  # type: ignore[arg-type]
    assert expected.height > 19 * 2
    assert f"{expected.height:,} bars written to {out}" in result.stderr
    got = read_back(out, fmt)
    assert_frame_equal(got, expected)
    assert got.schema == pl.Schema(SCHEMA)


def test_export_of_a_layer_and_of_everything(planted: Lake, tmp_path: Path) -> None:
    planted.set_layers("HOLE,PROV", 2)
    assert planted.export(tmp_path / "l2.parquet", layer=2, **JUNE) == (
        planted.bars("HOLE,PROV", **JUNE).collect().height
    )
    assert_frame_equal(
        pl.read_parquet(tmp_path / "l2.parquet"), planted.bars("HOLE,PROV", **JUNE).collect()
    )
    written = planted.export(tmp_path / "all.csv", format="csv")
    assert written == planted.bars().collect().height == pl.read_csv(tmp_path / "all.csv").height


def test_a_failed_export_write_leaves_nothing_behind(
    planted: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from barlake.views import export

    def full(frame: pl.DataFrame, fmt: str, path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    (tmp_path / "out").mkdir()
    old = tmp_path / "out" / "bars.csv"
    old.write_text("yesterday's export")
    monkeypatch.setattr(export, "write", full)
    result = invoke(planted, "export", "--format", "csv", "--out", str(old))
    assert result.exit_code == 4
    assert result.stderr.startswith("error: cannot write the csv export to ")
    assert "No space left on device" in result.stderr
    assert [p.name for p in old.parent.iterdir()] == ["bars.csv"]
    assert old.read_text() == "yesterday's export"


def test_export_refuses_an_unknown_format_before_reading(planted: Lake, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown export format 'xlsx'; use one of: csv"):
        planted.export(tmp_path / "b.xlsx", format="xlsx")
    assert not (tmp_path / "b.xlsx").exists()


def test_show_and_export_weeks_made_from_the_daily_bars(planted: Lake, tmp_path: Path) -> None:
    weeks = planted.bars("FULL", interval="1week", **JUNE).collect()
    assert weeks.height == 4  # the four whole weeks of June 3-28
    result = invoke(planted, "show", "FULL", "--interval", "1week", *DATES)
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [r[1] for r in rows] == [str(d.date()) for d in weeks["ts"]]
    out = tmp_path / "weeks.parquet"
    assert (
        invoke(
            planted, "export", "--symbols", "FULL", "--interval", "1week", *DATES, "--out", str(out)
        ).exit_code
        == 0
    )
    assert_frame_equal(pl.read_parquet(out), weeks)
