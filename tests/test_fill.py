"""End-to-end fills on the demo provider, through the real `lake` command in subprocesses."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

LAKE = [sys.executable, "-m", "barlake"]


def lake(root: Path, *args: str, check: bool = False, env: dict[str, str] | None = None, **kw):
    """Run ``lake --lake ROOT ARGS`` and return the completed process."""
    proc = subprocess.run(
        [*LAKE, "--lake", str(root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lake {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def spawn(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*LAKE, "--lake", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def make_lake(root: Path, symbols: str, config: str = "") -> Path:
    lake(root, "init", check=True)
    if config:
        (root / "lake.yaml").write_text(config)
    lake(root, "symbols", "add", symbols, check=True)
    return root


def all_bars(root: Path, interval: str) -> pl.DataFrame:
    files = sorted((root / "bars" / f"interval={interval}").rglob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def assert_lake_sound(root: Path) -> None:
    """Every file readable, sorted, and no (symbol, ts) twice across the lake."""
    for interval_dir in (root / "bars").glob("interval=*"):
        frames = []
        for f in interval_dir.rglob("*.parquet"):
            frame = pl.read_parquet(f)
            assert frame.equals(frame.sort("symbol", "ts")), f
            frames.append(frame.select("symbol", "ts"))
        if frames:
            keys = pl.concat(frames)
            assert keys.is_duplicated().sum() == 0, interval_dir


def test_readme_main_command_fills_and_reads_back(tmp_path: Path) -> None:
    root = make_lake(tmp_path / "lake", "AAPL,MSFT,BRK/B")
    proc = lake(root, "fill", "--days", "30", "--interval", "1day,15min")
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stderr and "bars written" in proc.stderr
    daily = pl.scan_parquet(f"{root}/bars/interval=1day/**/*.parquet", hive_partitioning=True)
    counts = dict(daily.group_by("symbol").len().collect().iter_rows())
    assert set(counts) == {"AAPL", "MSFT", "BRK/B"}
    # 30 calendar days hold 19 to 22 sessions of XNYS, whatever today is.
    assert all(17 <= n <= 22 for n in counts.values()), counts
    intraday = pl.scan_parquet(f"{root}/bars/interval=15min/**/*.parquet", hive_partitioning=True)
    per_day = intraday.group_by("symbol", pl.col("ts").dt.date()).len().collect()
    assert per_day["len"].max() == 26  # a full session of 15-minute bars
    assert_lake_sound(root)


def test_second_fill_makes_no_request_and_writes_nothing(tmp_path: Path) -> None:
    root = make_lake(tmp_path / "lake", "AAPL,MSFT,NEWCO,HALTED")
    args = ("fill", "--start", "2024-05-01", "--end", "2024-07-31", "--interval", "1day,1hour")
    first = json.loads(lake(root, *args, "--json", check=True).stdout)
    assert first["requests"] > 0 and first["bars_written"] > 0
    before = {p: p.stat().st_mtime_ns for p in (root / "bars").rglob("*.parquet")}
    second = lake(root, *args, "--json")
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert (result["requests"], result["bars_written"], result["requests_planned"]) == (0, 0, 0)
    assert {p: p.stat().st_mtime_ns for p in (root / "bars").rglob("*.parquet")} == before
    gaps = lake(root, "gaps", "--start", "2024-05-01", "--end", "2024-07-31", "--json")
    assert (gaps.returncode, json.loads(gaps.stdout)) == (0, [])


def test_faults_retried_and_unknown_symbol_reported(tmp_path: Path) -> None:
    symbols = [f"S{i:02d}" for i in range(30)]
    config = """
providers:
  demo:
    options:
      transient_rate: 0.10
      rate_limit_rate: 0.05
      retry_after_s: 0.01
      unknown_symbols: [NOPE]
      seed: 7
backfill:
  backoff_base_s: 0.01
  backoff_cap_s: 0.05
  max_attempts: 10
"""
    root = make_lake(tmp_path / "lake", ",".join([*symbols, "NOPE"]), config)
    proc = lake(
        root,
        "fill",
        "--start",
        "2024-01-02",
        "--end",
        "2024-03-29",
        "--interval",
        "1day,1hour",
        "--json",
    )
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "partial"
    assert result["retries"] > 0
    assert list(result["symbol_errors"]) == ["NOPE"]
    # One entry per (interval, stage) that failed: both intervals, not the last one seen.
    where = [(e["interval"], e["stage"]) for e in result["symbol_errors"]["NOPE"]]
    assert where == [("1day", "fetch"), ("1hour", "fetch")]
    errors = lake(root, "errors", result["job_id"][:8], "--json")
    assert errors.returncode == 0
    listed = json.loads(errors.stdout)
    assert set(listed) == {"NOPE"}
    assert [(e["interval"], e["stage"]) for e in listed["NOPE"]] == where
    assert {e["error"] for e in listed["NOPE"]} == {
        e["error"] for e in result["symbol_errors"]["NOPE"]
    }
    table = lake(root, "errors", result["job_id"][:8])
    rows = [line.split()[:3] for line in table.stdout.splitlines() if line.startswith("NOPE")]
    assert rows == [["NOPE", "1day", "fetch"], ["NOPE", "1hour", "fetch"]]
    gaps = lake(
        root,
        "gaps",
        "--symbols",
        ",".join(symbols),
        "--start",
        "2024-01-02",
        "--end",
        "2024-03-29",
        "--interval",
        "1day,1hour",
        "--json",
    )
    assert json.loads(gaps.stdout) == []
    from datetime import date

    from barlake.providers.demo import demo_listing_date

    listed = {s for s in symbols if (demo_listing_date(s) or date.min) <= date(2024, 3, 29)}
    assert set(all_bars(root, "1day")["symbol"].unique()) == listed
    assert len(listed) >= 25


def statuses_until_running(
    root: Path, fill: subprocess.Popen[str]
) -> tuple[list[tuple[str, int]], str]:
    """``lake status`` of the lake at ``root`` (status, requests made), polled until ``fill``
    has made a request or a minute has passed; then ``fill`` is sent SIGTERM. Returns what
    was seen and ``fill``'s stderr."""
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and fill.poll() is None:
            proc = lake(root, "status", "--json")
            if proc.returncode == 0:
                row = json.loads(proc.stdout)
                seen.append((row["status"], row["requests_made"]))
                if row["status"] == "running" and row["requests_made"] > 0:
                    break
            time.sleep(0.2)
    finally:
        fill.send_signal(signal.SIGTERM)
        _, err = fill.communicate(timeout=60)
    return seen, err


def status_during_a_fill(root: Path) -> tuple[list[tuple[str, int]], subprocess.Popen[str], str]:
    """``statuses_until_running`` of a long fill of ``root`` (about 60 pages at the demo's
    latency, one at a time: far longer than a test needs); returns the fill's process too."""
    fill = spawn(root, "fill", "--start", "2024-01-02", "--end", "2024-06-28",
                 "--interval", "1min", "--parallel", "1")  # fmt: skip
    seen, err = statuses_until_running(root, fill)
    return seen, fill, err


def test_status_from_another_process_shows_live_counts(tmp_path: Path) -> None:
    config = "providers:\n  demo:\n    options:\n      latency_ms: 700\n"
    root = make_lake(tmp_path / "lake", "AAA,BBB,CCC,DDD,EEE,FFF", config)
    lake(root, "symbols", "add", "GGG", "--listed-on", "2024-02-01", check=True)
    # About 60 pages at 0.7 s each, one at a time: far longer than the test needs.
    fill = spawn(root, "fill", "--start", "2024-01-02", "--end", "2024-06-28",
                 "--interval", "1min", "--parallel", "1")  # fmt: skip
    seen, err = statuses_until_running(root, fill)
    assert any(s == "running" and n > 0 for s, n in seen), seen
    assert fill.returncode == 130, err
    assert "interrupted" in err and "Run the same fill again" in err
    row = json.loads(lake(root, "status", "--json", check=True).stdout)
    assert row["status"] == "interrupted"
    assert "running" not in row["progress"]


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    config = "providers:\n  demo:\n    options:\n      latency_ms: 40\n"
    root = make_lake(tmp_path / "lake", ",".join(f"K{i}" for i in range(12)), config)
    args = ("fill", "--start", "2024-01-02", "--end", "2024-04-30", "--interval", "1day,5min",
            "--parallel", "2")  # fmt: skip
    rng = random.Random(11)
    for _ in range(5):
        proc = spawn(root, *args)
        time.sleep(rng.uniform(0.8, 2.5))
        proc.kill()
        proc.communicate(timeout=30)
        assert_lake_sound(root)
    final = lake(root, *args, "--json")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["status"] == "done"
    assert_lake_sound(root)
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        running = con.execute(
            "select count(*) from backfill_progress where status = 'running'"
        ).fetchall()
        jobs = con.execute("select count(*) from jobs where status = 'running'").fetchall()
    assert running == [(0,)] and jobs == [(0,)]
    gaps = lake(root, "gaps", "--start", "2024-01-02", "--end", "2024-04-30",
                "--interval", "1day,5min", "--json")  # fmt: skip
    assert json.loads(gaps.stdout) == []
    # Bars equal a clean fill's bars: nothing half-written survived.
    clean = make_lake(tmp_path / "clean", ",".join(f"K{i}" for i in range(12)))
    lake(clean, *args, check=True)
    for interval in ("1day", "5min"):
        assert (
            all_bars(root, interval)
            .sort("symbol", "ts")
            .equals(all_bars(clean, interval).sort("symbol", "ts"))
        )


def test_second_fill_at_once_stops_with_lock_error(tmp_path: Path) -> None:
    config = "providers:\n  demo:\n    options:\n      latency_ms: 1500\n"
    root = make_lake(tmp_path / "lake", "AAA,BBB", config)
    first = spawn(root, "fill", "--start", "2024-01-02", "--end", "2024-06-28",
                  "--interval", "1min", "--parallel", "1")  # fmt: skip
    try:
        time.sleep(2.0)
        second = lake(root, "fill", "--days", "5")
        assert second.returncode == 4
        assert "another `lake fill`" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130


@pytest.mark.parametrize(
    ("env", "flag", "expected"),
    [
        ({}, None, 10),
        ({"LAKE_PARALLEL_SYMBOLS": "4"}, None, 4),
        ({"LAKE_PARALLEL_SYMBOLS": "4"}, "2", 2),
    ],
)
def test_parallel_precedence_flag_env_file(tmp_path: Path, env, flag, expected) -> None:
    from barlake.config import load

    root = tmp_path / "lake"
    root.mkdir()
    (root / "lake.yaml").write_text("backfill:\n  parallel_symbols: 7\n")
    cfg = load(root, env)
    value = int(flag) if flag else cfg.backfill.parallel_symbols
    assert value == (expected if env else 7)
