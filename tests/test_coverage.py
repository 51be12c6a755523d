"""The coverage matrix (``Lake.coverage``), its picture (``views.plot``), ``lake gaps --plot``."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from tests.conftest import HOLES, JUNE, LISTED, write_daily, xnys

from barlake.cli import cli
from barlake.coverage.matrix import (
    EMPTY,
    MISSING,
    NOT_EXPECTED,
    PROVISIONAL,
    STATES,
    STORED,
    states,
)
from barlake.domain.ranges import DateRange
from barlake.lake import Lake
from barlake.providers.demo import demo_halted
from barlake.views.coverage import assemble
from barlake.views.plot import DEFAULT_SIZE, condense

pytest.importorskip("matplotlib")


def test_matrix_shows_planted_holes_provisional_and_empty_ranges(planted: Lake) -> None:
    cov = planted.coverage(**JUNE)
    june = xnys(JUNE["start"], JUNE["end"])
    assert cov.interval == "1day"
    assert cov.symbols == ("FULL", "HALT1", "HOLE", "LATE", "PROV")
    assert [str(d) for d in cov.sessions] == [d.isoformat() for d in june]  # no 06-19 holiday
    halted = [demo_halted("HALT1", d) for d in june]
    assert 0 < sum(halted) < len(june)
    expected = {
        "FULL": [STORED] * len(june),
        "HALT1": [EMPTY if h else STORED for h in halted],
        "HOLE": [MISSING if d in HOLES else STORED for d in june],
        "LATE": [NOT_EXPECTED if d < LISTED else MISSING for d in june],
        # the fetch at 15:00 on 06-28 settled the sessions that had closed: only 06-28 is open
        "PROV": [STORED if d <= date(2024, 6, 27) else PROVISIONAL for d in june],
    }
    for sym, row in expected.items():
        assert cov.row(sym).tolist() == row, sym
    assert cov.states.dtype == np.int8
    assert cov.state("HOLE", HOLES[0]) == MISSING
    assert cov.state("HOLE", date(2024, 6, 19)) == NOT_EXPECTED  # Juneteenth: no session


def test_missing_and_provisional_cells_are_exactly_the_gaps(planted: Lake) -> None:
    cov = planted.coverage(**JUNE)
    found = planted.gaps(interval="1day", **JUNE)
    from_gaps = {(g.symbol, d) for g in found for d in xnys(g.range.start, g.range.last)}
    frame = cov.to_frame().filter(pl.col("state").is_in([MISSING, PROVISIONAL]))
    from_cells = set(zip(frame["symbol"], frame["session"], strict=True))
    assert from_cells == from_gaps
    assert cov.gap_sessions == sum(g.sessions for g in found) == len(from_gaps)


def test_repair_leaves_no_gap_cell(planted: Lake) -> None:
    assert planted.fill(provider="demo", **JUNE).ok
    cov = planted.coverage(**JUNE)
    assert cov.gap_sessions == 0
    assert set(np.unique(cov.states).tolist()) <= {STORED, EMPTY, NOT_EXPECTED}


def test_summary_frame_and_json(planted: Lake) -> None:
    cov = planted.coverage(**JUNE)
    summary = {r["symbol"]: r for r in cov.summary().to_dicts()}
    assert summary["HOLE"] == {
        "symbol": "HOLE",
        "expected": 19,
        "missing": 2,
        "stored": 17,
        "provisional": 0,
        "empty": 0,
        "covered": pytest.approx(17 / 19),
    }
    assert summary["LATE"]["expected"] == 9 and summary["LATE"]["covered"] == 0.0
    frame = cov.to_frame()
    assert frame.height == len(cov.symbols) * len(cov.sessions)
    assert frame.schema == pl.Schema(
        {"symbol": pl.String, "session": pl.Date, "state": pl.Int8, "label": pl.String}
    )
    assert set(frame["label"]) <= set(STATES.values())
    data = json.loads(json.dumps(cov.to_dict()))
    assert data["states"][data["symbols"].index("HOLE")][3] == MISSING  # 06-06
    assert data["codes"]["2"] == "provisional"


def test_symbols_on_other_calendars_share_the_columns(lake: Lake) -> None:
    lake.add_symbols("AAA")
    lake.add_symbols("BTCUSD", asset_class="crypto")
    write_daily(lake, "AAA", xnys(date(2024, 6, 3), date(2024, 6, 7)))
    cov = lake.coverage(start=date(2024, 6, 1), end=date(2024, 6, 9))
    assert [str(d) for d in cov.sessions] == [f"2024-06-0{i}" for i in range(1, 10)]
    weekend = [NOT_EXPECTED, NOT_EXPECTED]
    assert cov.row("AAA").tolist() == weekend + [STORED] * 5 + weekend
    assert cov.row("BTCUSD").tolist() == [MISSING] * 9


def test_policy_windows_and_layers_choose_the_cells(lake: Lake) -> None:
    lake.add_symbols("AAA,BBB")
    lake.set_layers("AAA", 3)
    cov = lake.coverage(interval="1min", policy="scanner_layers")
    # Layer 3 keeps 60 days of 1-minute bars, layer 0 none: BBB expects nothing.
    assert set(cov.row("BBB").tolist()) == {NOT_EXPECTED}
    assert set(cov.row("AAA").tolist()) == {MISSING}
    assert str(cov.sessions[-1]) == lake.today.isoformat()  # the fixture's clock: a session
    assert lake.coverage(interval="1min", layer=0, policy="scanner_layers").symbols == ("BBB",)


def test_states_follow_the_gap_rule() -> None:
    days = np.array([f"2024-06-{d:02d}" for d in (3, 4, 5, 6, 7)], dtype="datetime64[D]")
    stored = days[[0, 1, 3]]
    final = [DateRange(date(2024, 6, 5), date(2024, 6, 6))]
    provisional = [DateRange(date(2024, 6, 6), date(2024, 6, 8))]
    got = states(days, stored, final, provisional)
    assert got.tolist() == [STORED, STORED, EMPTY, PROVISIONAL, MISSING]
    # A final range wins over a provisional one.
    assert (
        states(days, days, [DateRange(date(2024, 6, 3), date(2024, 6, 8))], provisional).tolist()
        == [STORED] * 5
    )


def test_assemble_marks_what_is_not_expected() -> None:
    sessions = np.array(["2024-06-03", "2024-06-04", "2024-06-05"], dtype="datetime64[D]")
    row = (sessions[1:], np.array([STORED, MISSING], dtype=np.int8))
    cov = assemble("1day", ["A", "B"], sessions, {"A": row})
    assert cov.states.tolist() == [[NOT_EXPECTED, STORED, MISSING], [NOT_EXPECTED] * 3]


# -- the picture -------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(path).shape
    return width, height


def test_plot_writes_a_png_of_the_documented_size(planted: Lake, tmp_path: Path) -> None:
    cov = planted.coverage(**JUNE)
    out = cov.plot(tmp_path / "coverage.png")
    assert out == tmp_path / "coverage.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_size(out) == DEFAULT_SIZE == (1200, 600)
    small = cov.plot(tmp_path / "small.png", size=(640, 360), title="June")
    assert png_size(small) == (640, 360)


def test_plot_draws_the_holes(planted: Lake, tmp_path: Path) -> None:
    """The planted hole's column is red in the picture, the full symbol's row is not."""
    import matplotlib.image

    cov = planted.coverage(["FULL", "HOLE"], **JUNE)
    pixels = matplotlib.image.imread(cov.plot(tmp_path / "c.png"))[:, :, :3]
    red = np.all(np.abs(pixels - np.array([0xD6, 0x27, 0x28]) / 255) < 0.02, axis=2)
    rows = np.flatnonzero(red.any(axis=1))
    assert len(rows) > 50  # a block of rows, not just the legend's patch
    # The red block lies in the lower half of the axes (HOLE is the second of two rows).
    assert np.median(rows) > DEFAULT_SIZE[1] / 2 - 50


def test_an_empty_selection_still_draws(lake: Lake, tmp_path: Path) -> None:
    cov = assemble("1day", [], np.array([], dtype="datetime64[D]"), {})
    assert png_size(cov.plot(tmp_path / "empty.png")) == DEFAULT_SIZE


def test_condense_keeps_a_single_hole_visible() -> None:
    grid = np.full((10_000, 1_000), STORED, dtype=np.int8)
    grid[7_777, 333] = MISSING
    grid[:, 900:] = NOT_EXPECTED
    small = condense(grid, 600, 1200)
    assert small.shape == (589, 1000)  # rows merged in blocks of 17, columns kept
    assert (small == MISSING).sum() == 1
    assert small[7_777 // 17, 333] == MISSING
    assert set(np.unique(small[:, 900:]).tolist()) == {NOT_EXPECTED}


def test_coverage_value_has_no_matplotlib_until_it_draws(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom datetime import date\nfrom barlake import Lake\n"
        "lake = Lake.init(sys.argv[1])\nlake.add_symbols('AAA')\n"
        "cov = lake.coverage(start=date(2024, 6, 3), end=date(2024, 6, 7))\n"
        "before = 'matplotlib' in sys.modules\ncov.plot(sys.argv[1] + '/c.png')\n"
        "print(before, 'matplotlib' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.split() == ["False", "True", "False"]


# -- lake gaps --plot ------------------------------------------------------------------------


def test_cli_gaps_plot_writes_the_map(planted: Lake, tmp_path: Path) -> None:
    out = tmp_path / "gaps.png"
    args = ["--lake", str(planted.root), "gaps", "--start", "2024-06-03", "--end", "2024-06-28"]
    result = CliRunner().invoke(cli, [*args, "--json", "--plot", str(out)])
    assert result.exit_code == 1  # gaps remain
    assert {g["symbol"] for g in json.loads(result.stdout)} == {"HOLE", "LATE", "PROV"}
    assert "coverage map of 5 symbol(s) written to" in result.stderr
    assert png_size(out) == DEFAULT_SIZE


def test_cli_gaps_plot_takes_one_interval(planted: Lake, tmp_path: Path) -> None:
    out = tmp_path / "gaps.png"
    args = ["--lake", str(planted.root), "gaps", "--interval", "1day,1min", "--plot", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--plot draws one interval" in result.stderr
    assert not out.exists()


def test_cli_gaps_plot_of_another_interval(planted: Lake, tmp_path: Path) -> None:
    out = tmp_path / "minutes.png"
    args = ["--lake", str(planted.root), "gaps", "--interval", "1min", "--symbols", "FULL"]
    dates = ["--start", "2024-06-03", "--end", "2024-06-07"]
    result = CliRunner().invoke(cli, [*args, *dates, "--plot", str(out)])
    assert result.exit_code == 1, result.stderr
    assert "coverage map of 1 symbol(s)" in result.stderr
    assert png_size(out) == DEFAULT_SIZE
