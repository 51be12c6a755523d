"""`lake fill --repair`: the sessions `lake check` flags are fetched again and their stored bars
replaced, so that the next check is clean; nothing else is asked for."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import polars as pl
from click.testing import CliRunner

from barlake import Lake
from barlake.cli import cli
from barlake.providers.demo import demo_listing_date

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
WINDOW = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
ARGS = ["--start", "2024-06-03", "--end", "2024-06-28", "--interval", "1day,1min"]
PLAIN = [s for s in (f"R{i:02d}" for i in range(40)) if demo_listing_date(s) is None]


def edit_file(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite one Parquet file of the lake behind barlake's back."""
    change(pl.read_parquet(path)).write_parquet(path)


def on(d: date) -> pl.Expr:
    return pl.col("ts").dt.date() == d


def lake_json(root: Path, *args: str) -> tuple[int, object]:
    out = CliRunner().invoke(cli, ["--lake", str(root), *args, "--json"])
    return out.exit_code, json.loads(out.stdout)


def test_fill_repair_refetches_exactly_the_flagged_sessions_and_check_is_clean(
    tmp_path: Path,
) -> None:
    c = PLAIN[:8]
    lake = Lake.init(tmp_path, clock=lambda: NOW)
    lake.add_symbols(c)
    assert lake.fill(interval=["1day", "1min"], **WINDOW).status == "done"  # type: ignore[arg-type]
    clean = lake.bars(c, interval="1day", **WINDOW).collect()
    sym = pl.col("symbol")
    june5, june6, june7 = date(2024, 6, 5), date(2024, 6, 6), date(2024, 6, 7)

    def daily(frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.with_columns(
            close=pl.when((sym == c[0]) & on(june5)).then(float("nan")).otherwise("close"),
            volume=pl.when((sym == c[1]) & on(june6)).then(None).otherwise("volume"),
        )
        twice = frame.filter((sym == c[2]) & on(june7))
        no_ts = frame.filter(sym == c[7]).head(1).with_columns(ts=pl.lit(None, frame["ts"].dtype))
        return pl.concat([frame, twice, no_ts])

    edit_file(tmp_path / "bars/interval=1day/year=2024/data.parquet", daily)
    minute = tmp_path / "bars" / "interval=1min"
    # a partial session: the afternoon of June 5 gone
    edit_file(
        minute / f"symbol={c[3]}/month=2024-06/data.parquet",
        lambda f: f.filter(~(on(june5) & (pl.col("ts").dt.time() >= time(14, 0)))),
    )
    # an off-grid bar on June 6, and an impossible one (high under low) on June 7
    off_grid = datetime(2024, 6, 6, 15, 0, tzinfo=UTC)
    edit_file(
        minute / f"symbol={c[4]}/month=2024-06/data.parquet",
        lambda f: f.with_columns(
            ts=pl.when(pl.col("ts") == off_grid)
            .then(pl.col("ts") + timedelta(seconds=30))
            .otherwise("ts")
        ),
    )
    edit_file(
        minute / f"symbol={c[5]}/month=2024-06/data.parquet",
        lambda f: f.with_columns(
            high=pl.when(pl.col("ts") == datetime(2024, 6, 7, 16, tzinfo=UTC))
            .then(pl.col("low") / 2)
            .otherwise("high")
        ),
    )
    code, before = lake_json(tmp_path, "check", *ARGS)
    assert code == 1
    flagged = {(f["rule"], f["symbol"], f["interval"], f["first"][:10]) for f in before}  # type: ignore[attr-defined]
    assert flagged == {
        ("price", c[0], "1day", "2024-06-05"),
        ("volume", c[1], "1day", "2024-06-06"),
        ("duplicate", c[2], "1day", "2024-06-07"),
        ("key", c[7], "1day", ""),
        ("partial_session", c[3], "1min", "2024-06-05"),
        ("timestamp", c[4], "1min", "2024-06-06"),
        ("ohlc", c[5], "1min", "2024-06-07"),
    }

    code, result = lake_json(tmp_path, "fill", "--repair", *ARGS)
    assert code == 0, result
    assert result["status"] == "done"  # type: ignore[index]
    # Exactly the flagged sessions were asked for, one per damaged series.
    progress = lake.catalog.progress(result["job_id"])  # type: ignore[index]
    asked = set(progress.select("symbol", "interval", "start_date", "end_date").iter_rows())
    assert asked == {
        (c[0], "1day", june5, june5),
        (c[1], "1day", june6, june6),
        (c[2], "1day", june7, june7),
        (c[3], "1min", june5, june5),
        (c[4], "1min", june6, june6),
        (c[5], "1min", june7, june7),
    }
    code, after = lake_json(tmp_path, "check", *ARGS)
    assert (code, after) == (0, [])
    # The stored daily bars are the clean ones again, key for key.
    assert lake.bars(c, interval="1day", **WINDOW).collect().equals(clean)
    minutes = lake.bars(c[3:6], interval="1min", **WINDOW).collect()
    assert minutes.filter(on(june5) & (pl.col("symbol") == c[3])).height == 390
    assert minutes.filter(pl.col("ts") == off_grid + timedelta(seconds=30)).is_empty()
    # Nothing is left to repair.
    code, again = lake_json(tmp_path, "fill", "--repair", *ARGS)
    assert (code, again["requests"]) == (0, 0)  # type: ignore[index]


def test_a_repair_whose_fetch_fails_keeps_the_stored_bars(tmp_path: Path) -> None:
    c = PLAIN[:2]
    lake = Lake.init(tmp_path, clock=lambda: NOW)
    lake.add_symbols(c)
    assert lake.fill(interval="1day", **WINDOW).status == "done"
    year = tmp_path / "bars/interval=1day/year=2024/data.parquet"
    edit_file(
        year, lambda f: pl.concat([f, f.filter((pl.col("symbol") == c[0]) & on(date(2024, 6, 4)))])
    )
    (tmp_path / "lake.yaml").write_text(
        "providers:\n  demo:\n    options:\n      unknown_symbols: [" + c[0] + "]\n"
    )
    failed = Lake.open(tmp_path, clock=lambda: NOW).fill(
        c[0], interval="1day", repair=True, **WINDOW
    )
    assert failed.status != "done"
    assert (
        pl.read_parquet(year).filter(pl.col("symbol") == c[0]).height == 20
    )  # 19 sessions + the copy
