"""``lake report``: one self-contained HTML page with coverage, gaps, jobs and errors."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from markupsafe import escape

from barlake.cli import cli
from barlake.lake import Lake
from barlake.views import report
from barlake.views.plot import DEFAULT_SIZE

pytest.importorskip("matplotlib")

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
CONFIG = "providers:\n  demo:\n    options:\n      unknown_symbols: [NOPE]\n"


@pytest.fixture
def filled(tmp_path: Path) -> Lake:
    """A lake whose last job failed for one symbol (NOPE), and where MSFT has no bars."""
    root = tmp_path / "lake"
    lake = Lake.init(root, clock=lambda: NOW)
    (root / "lake.yaml").write_text(CONFIG)
    lake.add_symbols("AAPL,NOPE,MSFT")
    result = lake.fill("AAPL,NOPE", provider="demo", **JUNE)
    assert set(result.symbol_errors) == {"NOPE"}
    return lake


def embedded_png(page: str) -> bytes:
    found = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert found, "no inline PNG"
    return base64.b64decode(found.group(1))


def test_page_is_self_contained_with_coverage_jobs_and_errors(filled: Lake, tmp_path: Path) -> None:
    out = filled.report(tmp_path / "report.html", **JUNE)
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # Nothing to fetch from elsewhere: no external script, style sheet or image (links only
    # to the page's own sections).
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    png = embedded_png(page)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == DEFAULT_SIZE
    job = filled.jobs(1).to_dicts()[0]
    assert str(job["job_id"]) in page
    [error] = filled.errors()["NOPE"]
    assert f"<td>{escape(error['error'])}</td>" in page  # as the template escapes it
    assert f"<td>{error['stage']}</td>" in page
    assert "<h3>Gaps (38 sessions)</h3>" in page  # all of June for MSFT and NOPE


def test_everything_shown_is_escaped() -> None:
    import numpy as np

    from barlake.views.coverage import assemble

    cov = assemble("1day", ["<b>"], np.array([], dtype="datetime64[D]"), {})
    section = report.Section(coverage=cov, png=None, gaps=[])
    page = report.Report(title="a <script>", sections=[section], jobs=[{"job_id": "<i>"}]).render()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "&lt;b&gt;" in page and "&lt;i&gt;" in page
    assert "pip install" in page  # no picture without matplotlib: the page says how


def test_cli_report_writes_the_page(filled: Lake, tmp_path: Path) -> None:
    out = tmp_path / "lake-report.html"
    args = ["--lake", str(filled.root), "report", str(out), "--start", "2024-06-03"]
    result = CliRunner().invoke(cli, [*args, "--end", "2024-06-28", "--jobs", "5"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"report written to {out}" in result.stderr
    page = out.read_text(encoding="utf-8")
    assert len(embedded_png(page)) > 1000
    assert "NOPE" in page


def test_cli_report_of_an_empty_lake(lake_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    result = CliRunner().invoke(cli, ["--lake", str(lake_root), "report", str(out)])
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "no jobs yet" in page and "no errors" in page


def test_holdings_agree_with_the_files(filled: Lake) -> None:
    import polars as pl

    assert filled.fill(
        "AAPL", provider="demo", interval="1hour", start=JUNE["start"], end=date(2024, 6, 7)
    ).ok
    held = {h.interval: h for h in filled.store.holdings()}
    assert list(held) == ["1hour", "1day"]
    for interval, h in held.items():
        files = sorted((filled.root / "bars" / f"interval={interval}").rglob("*.parquet"))
        frame = pl.read_parquet(files, hive_partitioning=False)
        assert h.files == len(files)
        assert h.bytes == sum(f.stat().st_size for f in files)
        assert h.bars == frame.height
        assert h.symbols == frame["symbol"].n_unique()
        assert (h.first, h.last) == (frame["ts"].min(), frame["ts"].max())
    assert held["1day"].symbols == 1 and held["1day"].bars == 19  # AAPL's June; NOPE failed


def test_cli_report_of_chosen_intervals(filled: Lake, tmp_path: Path) -> None:
    out = tmp_path / "hours.html"
    args = ["--lake", str(filled.root), "report", str(out), "--start", "2024-06-03"]
    result = CliRunner().invoke(cli, [*args, "--end", "2024-06-28", "--interval", "1hour,1day"])
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert re.findall(r'<section id="interval-(\w+)">', page) == ["1hour", "1day"]  # as given
    # The lake holds only daily bars: one row in the holdings table.
    assert page.count('<tr data-interval="') == 1 and '<tr data-interval="1day">' in page


def test_cli_report_refuses_an_unknown_interval(filled: Lake, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    args = ["--lake", str(filled.root), "report", str(out), "--interval", "2min"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "unknown interval '2min'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_report_of_every_interval_held(filled: Lake, tmp_path: Path) -> None:
    assert filled.fill(
        "AAPL", provider="demo", interval="15min", start=date(2024, 6, 24), end=JUNE["end"]
    ).ok
    page = filled.report(tmp_path / "all.html", **JUNE).read_text(encoding="utf-8")
    assert re.findall(r'<section id="interval-(\w+)">', page) == ["15min", "1day"]
    assert re.search(r'<tr data-interval="15min">.*?<td class="number">130</td>', page, re.S)
    assert "2024-06-24T13:30Z" in page and "2024-06-28T19:45Z" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
