"""Trades as a dataset: files, coverage, fills, bad payloads, pages, resampling and checks.

Expected values come from the demo's own prints (``session_trades``) and plain polars, never
from barlake's aggregation."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from barlake import Lake
from barlake.cli import cli
from barlake.domain import trades
from barlake.domain.ranges import DateRange
from barlake.domain.tradebars import Conditions
from barlake.providers.base import TradePage
from barlake.providers.demo import DemoConfig, DemoProvider
from barlake.providers.demo.trades import session_trades
from barlake.storage.filesystem import LocalFileSystem
from barlake.storage.trades import TradeStore

NOW = datetime(2025, 3, 7, 22, tzinfo=UTC)  # a Friday evening, after the close
WEEK = [date(2025, 3, d) for d in (3, 4, 5, 6, 7)]
FIELDS = ["open", "high", "low", "close", "volume", "vwap"]


def open_lake(root: Path, provider: DemoProvider | None = None, clock: datetime = NOW) -> Lake:
    providers = {"demo": provider} if provider is not None else None
    lake = Lake.init(root, clock=lambda: clock, providers=providers)
    lake.add_symbols(["AAPL", "MSFT"])
    return lake


def truth(symbol: str, days: list[date]) -> pl.DataFrame:
    return pl.concat([session_trades(symbol, d) for d in days])


def test_fill_stores_each_session_whole_and_readers_read_it(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    result = lake.fill("AAPL,MSFT", interval="trades", start=WEEK[0], end=WEEK[-1])
    assert result.status == "done", result.symbol_errors
    want = pl.concat([truth("AAPL", WEEK), truth("MSFT", WEEK)])
    assert result.trades_written == want.height
    for sym in ("AAPL", "MSFT"):
        for day in WEEK:
            path = tmp_path / "trades" / f"symbol={sym}" / f"date={day}" / "data.parquet"
            stored = pl.read_parquet(path, hive_partitioning=False)
            assert stored.schema == pl.Schema(trades.SCHEMA)
            assert_frame_equal(stored, session_trades(sym, day))
    assert_frame_equal(lake.trades("AAPL,MSFT", start=WEEK[0], end=WEEK[-1]), want)
    # The four readers, on the folder as documented.
    glob = f"{tmp_path}/trades/**/*.parquet"
    q = f"select count(*), count(distinct symbol) from read_parquet('{glob}', hive_partitioning=1)"
    assert duckdb.sql(q).fetchall() == [(want.height, 2)]
    scanned = pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item()
    assert scanned == want.height
    ds = pads.dataset(tmp_path / "trades", partitioning="hive")
    assert ds.count_rows() == want.height
    frame = pd.read_parquet(tmp_path / "trades" / "symbol=MSFT")
    assert len(frame) == truth("MSFT", WEEK).height
    assert frame["price"].sum() == pytest.approx(truth("MSFT", WEEK)["price"].sum())
    # Covered: no gap, and a rerun asks nothing.
    assert lake.gaps("AAPL,MSFT", interval="trades", start=WEEK[0], end=WEEK[-1]) == []
    again = lake.fill("AAPL,MSFT", interval="trades", start=WEEK[0], end=WEEK[-1])
    assert (again.requests, again.trade_requests, again.trades_written) == (0, 0, 0)
    rows = lake.catalog.query(
        "SELECT symbol, data_type, interval, status, records_loaded FROM backfill_progress "
        f"WHERE job_id = '{result.job_id}' ORDER BY symbol"
    ).rows()
    assert rows == [
        ("AAPL", "trades", "trades", "done", truth("AAPL", WEEK).height),
        ("MSFT", "trades", "trades", "done", truth("MSFT", WEEK).height),
    ]


def test_demo_trades_rebuild_the_stored_minute_bars_and_check_compares_them(
    tmp_path: Path,
) -> None:
    lake = open_lake(tmp_path)
    lake.fill("AAPL", interval=["1min", "trades"], start=WEEK[0], end=WEEK[1])
    stored = lake.bars("AAPL", interval="1min", start=WEEK[0], end=WEEK[1]).collect()
    for rules in (Conditions(), Conditions.none()):
        built = lake.trade_bars("AAPL", every="1min", start=WEEK[0], end=WEEK[1], conditions=rules)
        assert built["ts"].to_list() == stored["ts"].to_list()
        assert_frame_equal(built.select(FIELDS), stored.select(FIELDS), rel_tol=1e-12)
    assert (built["trades"] == stored["trades"].clip(4)).all()
    check = lake.check("AAPL", interval=["1min", "trades"], start=WEEK[0], end=WEEK[1])
    assert [f for f in check.findings if f.rule == "trades_mismatch"] == []
    # A stored minute bar that its trades contradict is reported.
    path = next((tmp_path / "bars" / "interval=1min").rglob("data.parquet"))
    bars = pl.read_parquet(path, hive_partitioning=False)
    bent = bars.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(pl.col("high") * 1.01).otherwise("high")
    )
    lake.store.replace_file(path, "1min", bent)
    check = lake.check("AAPL", interval="trades", start=WEEK[0], end=WEEK[1])
    found = [f for f in check.findings if f.rule == "trades_mismatch"]
    assert len(found) == 1 and found[0].symbol == "AAPL"
    assert found[0].message.startswith("1 minute(s)")


def test_seconds_bars_from_trades_with_the_vendors_filters(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    lake.fill("MSFT", interval="trades", start=WEEK[2], end=WEEK[2])
    prints = session_trades("MSFT", WEEK[2])
    odd = pl.col("conditions").list.contains("I")
    bucket = pl.col("ts").dt.truncate("10s").dt.cast_time_unit("us")
    priced = (
        prints.filter(~odd)
        .group_by(bucket)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
        )
    )
    volume = prints.group_by(bucket).agg(pl.col("size").sum().alias("volume"), pl.len())
    want = priced.join(volume, on="ts").sort("ts")
    got = lake.trade_bars("MSFT", every="10s", start=WEEK[2], end=WEEK[2])
    assert got["ts"].to_list() == want["ts"].to_list()
    assert_frame_equal(
        got.select("open", "high", "low", "close", "volume"),
        want.select("open", "high", "low", "close", "volume"),
        rel_tol=1e-12,
    )
    assert got["trades"].to_list() == want["len"].cast(pl.Int64).to_list()
    # Every print counts without the filters: one-second bars exist wherever a print was.
    every_print = lake.trade_bars(
        "MSFT", every="1s", start=WEEK[2], end=WEEK[2], conditions=Conditions.none()
    )
    assert every_print.height == prints["ts"].dt.truncate("1s").n_unique()
    out = tmp_path / "seconds.parquet"
    res = CliRunner().invoke(
        cli,
        [
            "--lake",
            str(tmp_path),
            "resample",
            "MSFT",
            "--every",
            "10s",
            "--start",
            "2025-03-05",
            "--end",
            "2025-03-05",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(out).height == got.height


def test_the_session_in_progress_is_provisional_and_fetched_again(tmp_path: Path) -> None:
    during = datetime(2025, 3, 7, 16, tzinfo=UTC)  # 11:00 in New York
    lake = open_lake(tmp_path, clock=during)
    first = lake.fill("AAPL", interval="trades", start=WEEK[3], end=WEEK[4])
    assert first.status == "done"
    today = lake.trades("AAPL", start=WEEK[4], end=WEEK[4])
    assert 0 < today.height < session_trades("AAPL", WEEK[4]).height
    assert (today["ts"] < during).all()
    ledger = lake.catalog.query("SELECT final FROM ledger WHERE interval = 'trades'")
    assert ledger["final"].to_list() == [False]
    assert [g.range for g in lake.gaps("AAPL", interval="trades", start=WEEK[3], end=WEEK[4])] == [
        DateRange(WEEK[3], WEEK[4] + timedelta(days=1))
    ]
    later = Lake(tmp_path, clock=lambda: NOW)
    done = later.fill("AAPL", interval="trades", start=WEEK[3], end=WEEK[4])
    assert done.status == "done"
    assert_frame_equal(
        later.trades("AAPL", start=WEEK[4], end=WEEK[4]), session_trades("AAPL", WEEK[4])
    )
    assert later.gaps("AAPL", interval="trades", start=WEEK[3], end=WEEK[4]) == []


class Tampered(DemoProvider):
    """The demo's trades, spoiled: ``spoil(symbol, session, page)`` rewrites each page."""

    def __init__(self, spoil, **config) -> None:
        super().__init__(DemoConfig(**config), clock=lambda: NOW)
        self.spoil = spoil

    async def fetch_trades(self, symbols, window, cursor=None) -> TradePage:
        page = await super().fetch_trades(symbols, window, cursor)
        return TradePage(self.spoil(page.trades), page.next_cursor)


def spoiled(column: str, value, when: pl.Expr):
    def spoil(frame: pl.DataFrame) -> pl.DataFrame:
        if frame.is_empty():
            return frame
        kind = frame.schema[column]
        spoilt = pl.when(when).then(pl.lit(value, dtype=kind)).otherwise(column)
        return frame.with_columns(spoilt.alias(column))

    return spoil


on_thursday = (pl.col("symbol") == "AAPL") & (pl.col("ts").dt.date() == WEEK[3])
first_thursday = on_thursday & (pl.col("trade_id") == "7")


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        (spoiled("price", float("nan"), first_thursday), "price"),
        (spoiled("price", -1.0, first_thursday), "price"),
        (spoiled("size", 0.0, first_thursday), "size"),
        (spoiled("ts", datetime(2025, 3, 6, 23, 30, tzinfo=UTC), first_thursday), "trading hours"),
        (spoiled("ts", datetime(2025, 2, 3, 15, 0, tzinfo=UTC), first_thursday), "asked for"),
        (spoiled("trade_id", None, first_thursday), "missing"),
    ],
)
def test_bad_prints_are_never_stored_and_the_error_has_its_stage(tmp_path, spoil, why) -> None:
    lake = open_lake(tmp_path, Tampered(spoil, trades_per_page=20_000))
    result = lake.fill("AAPL,MSFT", interval="trades", start=WEEK[2], end=WEEK[4])
    assert result.status == "partial"
    [entry] = result.symbol_errors["AAPL"]
    assert (entry["stage"], entry["interval"]) == ("validate", "trades")
    assert "2025-03-06" in entry["error"] and why in entry["error"], entry["error"]
    store = TradeStore(tmp_path, LocalFileSystem())
    window = DateRange(WEEK[0], NOW.date() + timedelta(days=1))
    assert store.stored(["AAPL", "MSFT"], window) == {
        "AAPL": [WEEK[2], WEEK[4]],
        "MSFT": [WEEK[2], WEEK[3], WEEK[4]],
    }
    assert_frame_equal(
        lake.trades("AAPL", start=WEEK[4], end=WEEK[4]), session_trades("AAPL", WEEK[4])
    )
    row = lake.catalog.query(
        "SELECT status, stage, error_message FROM backfill_progress WHERE symbol = 'AAPL'"
    ).row(0)
    assert row[:2] == ("failed", "validate") and why in row[2]
    gaps = lake.gaps("AAPL", interval="trades", start=WEEK[2], end=WEEK[4])
    assert [g.range for g in gaps] == [DateRange(WEEK[3], WEEK[4])]


def test_repeated_and_out_of_order_pages_are_stored_sorted_and_unique(tmp_path: Path) -> None:
    class Shuffled(DemoProvider):
        """Pages served twice, and each pair of pages swapped."""

        def __init__(self) -> None:
            super().__init__(DemoConfig(trades_per_page=3_000), clock=lambda: NOW)
            self.held: pl.DataFrame | None = None

        async def fetch_trades(self, symbols, window, cursor=None) -> TradePage:
            page = await super().fetch_trades(symbols, window, cursor)
            frame = pl.concat([page.trades, page.trades.head(50)])  # repeats within a page
            if self.held is None and page.next_cursor is not None:
                self.held = frame
                return TradePage(frame.tail(10), page.next_cursor)  # repeated again later
            out = frame if self.held is None else pl.concat([frame, self.held])
            self.held = None
            return TradePage(out.sample(fraction=1.0, shuffle=True, seed=3), page.next_cursor)

    lake = open_lake(tmp_path, Shuffled())
    result = lake.fill("AAPL", interval="trades", start=WEEK[0], end=WEEK[1])
    assert result.status == "done", result.symbol_errors
    assert_frame_equal(lake.trades("AAPL", start=WEEK[0], end=WEEK[1]), truth("AAPL", WEEK[:2]))


def test_a_session_writer_shows_nothing_until_its_last_page(tmp_path: Path) -> None:
    store = TradeStore(tmp_path, LocalFileSystem())
    prints = session_trades("AAPL", WEEK[0])
    path = store.path("AAPL", WEEK[0])

    async def write(commit: bool) -> int:
        writer = store.writer("AAPL", WEEK[0])
        for part in prints.iter_slices(10_000):
            await writer.add(part)
            assert not path.exists()  # pages go to a hidden temporary file
        return await (writer.commit() if commit else writer.abort()) or 0

    assert asyncio.run(write(commit=False)) == 0
    assert not path.exists() and list(path.parent.iterdir()) == []
    assert asyncio.run(write(commit=True)) == prints.height
    assert_frame_equal(store.read_file(path), prints)
    assert store.count(path) == prints.height
    # Several row groups: the session was written page by page, never as one table.
    assert pq_row_groups(path) > 1


def pq_row_groups(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).num_row_groups


def test_providers_without_trades_say_so_in_plans(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    plan = lake.plan("AAPL", interval=["1day", "trades"], days=5, provider="yahoo")
    [skip] = [s for s in plan.skipped if s.interval == "trades"]
    assert skip.symbols == ("AAPL",) and "yahoo serves no trades" in skip.reason
    assert plan.trades == ()
    res = CliRunner().invoke(
        cli,
        ["--lake", str(tmp_path), "plan", "AAPL", "--interval", "trades", "--days", "5", "--json"],
    )
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["trade_requests"][0]["symbols"] == ["AAPL"]
    bad = CliRunner().invoke(cli, ["--lake", str(tmp_path), "gaps", "--interval", "ticks"])
    assert bad.exit_code == 2 and "trades" in bad.output


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, date, datetime
    from barlake import Lake

    lake = Lake(sys.argv[1], clock=lambda: datetime(2025, 3, 7, 22, tzinfo=UTC))
    print("ready", flush=True)
    lake.fill("AAPL,MSFT,SPY,QQQ", interval="trades", start=date(2025, 3, 3),
              end=date(2025, 3, 7))
    print("done", flush=True)
    """
)


def test_sigkill_during_a_trades_fill_leaves_whole_files_and_the_next_fill_completes(
    tmp_path: Path,
) -> None:
    rng = random.Random(20250307)
    config = "providers:\n  demo:\n    options: {trades_per_minute: 200, trades_per_page: 7000}\n"
    roots = [tmp_path / f"trial{i}" for i in range(3)]
    for root in roots:
        open_lake(root).add_symbols(["SPY", "QQQ"])
        (root / "lake.yaml").write_text(config)
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
            timer = threading.Timer(rng.uniform(1.0, 4.0), p.send_signal, [signal.SIGKILL])
            timer.start()
            timers.append(timer)
        for p in procs:
            p.wait(timeout=300)
    finally:
        for timer in timers:
            timer.cancel()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    assert any(p.returncode == -signal.SIGKILL for p in procs)
    for root in roots:
        # Every file there is readable and whole: exactly its session's prints, sorted, unique.
        for path in (root / "trades").rglob("*.parquet"):
            stored = pl.read_parquet(path, hive_partitioning=False)
            sym = path.parent.parent.name.removeprefix("symbol=")
            day = date.fromisoformat(path.parent.name.removeprefix("date="))
            assert_frame_equal(stored, session_trades(sym, day, per_minute=200))
        lake = Lake(root, clock=lambda: NOW)
        again = lake.fill("AAPL,MSFT,SPY,QQQ", interval="trades", start=WEEK[0], end=WEEK[-1])
        assert again.status == "done", again.symbol_errors
        files = sorted((root / "trades").rglob("*.parquet"))
        assert len(files) == 4 * 5
        for path in files:
            assert (
                not pl.read_parquet(path, hive_partitioning=False)
                .select(trades.KEY)
                .is_duplicated()
                .any()
            )
        assert lake.gaps("AAPL,MSFT,SPY,QQQ", interval="trades", start=WEEK[0], end=WEEK[-1]) == []


def test_demo_pages_are_the_sessions_rows_in_order() -> None:
    provider = DemoProvider(DemoConfig(trades_per_page=2_500), clock=lambda: NOW)

    async def pages() -> list[pl.DataFrame]:
        out, cursor = [], None
        while True:
            page = await provider.fetch_trades(
                ("MSFT", "AAPL"), DateRange(WEEK[0], WEEK[2]), cursor
            )
            out.append(page.trades)
            cursor = page.next_cursor
            if cursor is None:
                return out

    got = asyncio.run(pages())
    assert max(p.height for p in got) <= 2_500
    assert_frame_equal(
        pl.concat(got), pl.concat([truth("AAPL", WEEK[:2]), truth("MSFT", WEEK[:2])])
    )
    assert replace(provider.capabilities).trades_per_page == 2_500


def test_trades_are_selected_as_an_interval_on_every_command(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    lake.fill("AAPL", interval=["1day", "trades"], start=WEEK[0], end=WEEK[1])

    def run(*argv: str) -> tuple[int, str]:
        res = CliRunner().invoke(cli, ["--lake", str(tmp_path), *argv])
        return res.exit_code, res.stdout

    span = ["--start", "2025-02-24", "--end", "2025-03-04"]
    code, out = run("gaps", "AAPL", "--interval", "trades", *span, "--json")
    assert code == 1
    assert {(g["interval"], g["first"], g["last"]) for g in json.loads(out)} == {
        ("trades", "2025-02-24", "2025-02-28")
    }
    code, out = run("check", "AAPL", "--interval", "trades", *span, "--json")
    assert code == 1, out  # the gap is an error finding
    assert {f["rule"] for f in json.loads(out)} == {"gap"}
    # Layer 0 of scanner_layers keeps no trades: prune removes them all, and no bar.
    code, out = run("prune", "--policy", "scanner_layers", "--interval", "trades", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["trades_removed"] == truth("AAPL", WEEK[:2]).height
    assert report["bars_removed"] == 0 and report["files_deleted"] == 2
    assert not list((tmp_path / "trades").rglob("*.parquet"))
    assert lake.bars("AAPL", start=WEEK[0], end=WEEK[1]).collect().height == 2
    assert lake.gaps("AAPL", interval="trades", start=WEEK[0], end=WEEK[1])  # ledger trimmed
