"""`lake check`: every planted fault is found by its rule; clean demo data gives no finding."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import polars as pl
import pytest

from barlake import Lake
from barlake.providers.demo import demo_listing_date

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
WINDOW = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
PLAIN = [s for s in (f"Q{i:02d}" for i in range(60)) if demo_listing_date(s) is None]


def filled(root: Path, symbols: list[str], intervals: list[str]) -> Lake:
    lake = Lake.init(root, clock=lambda: NOW)
    lake.add_symbols(symbols)
    result = lake.fill(symbols, interval=intervals, **WINDOW)  # type: ignore[arg-type]
    assert result.status == "done"
    return lake


def edit_file(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrite one Parquet file of the lake behind barlake's back."""
    frame = pl.read_parquet(path)
    change(frame).write_parquet(path)


def day_is(d: date) -> pl.Expr:
    return pl.col("ts").dt.date() == d


def test_every_planted_fault_is_found_by_its_rule(tmp_path: Path) -> None:
    c = PLAIN[:10]
    lake = filled(tmp_path, c, ["1day", "1min"])
    year = tmp_path / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    june5, june6, june7, june10 = (
        date(2024, 6, 5),
        date(2024, 6, 6),
        date(2024, 6, 7),
        date(2024, 6, 10),
    )

    def daily(frame: pl.DataFrame) -> pl.DataFrame:
        sym = pl.col("symbol")
        frame = frame.with_columns(
            # ohlc: high below low
            high=pl.when((sym == c[0]) & day_is(june5)).then(pl.col("low") * 0.9).otherwise("high"),
            # price: NaN close; volume: negative
            close=pl.when((sym == c[1]) & day_is(june6)).then(float("nan")).otherwise("close"),
            volume=pl.when((sym == c[1]) & day_is(june10)).then(-100.0).otherwise("volume"),
        )
        # timestamp: a daily bar stamped at noon
        frame = frame.with_columns(
            ts=pl.when((sym == c[2]) & day_is(june5))
            .then(pl.col("ts") + timedelta(hours=12))
            .otherwise("ts")
        )
        # jump: an unadjusted 2:1 split from 2024-06-12
        split = (sym == c[3]) & (pl.col("ts").dt.date() >= date(2024, 6, 12))
        frame = frame.with_columns(
            [
                pl.when(split).then(pl.col(p) / 2).otherwise(p).alias(p)
                for p in ("open", "high", "low", "close")
            ]
        )
        # stale: six flat sessions at the close of 2024-06-14
        flat_at = frame.filter((sym == c[4]) & day_is(date(2024, 6, 14)))["close"].item()
        stale = (sym == c[4]) & pl.col("ts").dt.date().is_between(
            date(2024, 6, 17), date(2024, 6, 25)
        )
        frame = frame.with_columns(
            [
                pl.when(stale).then(pl.lit(flat_at)).otherwise(p).alias(p)
                for p in ("open", "high", "low", "close")
            ]
        )
        # daily_intraday: a daily close 5% off its minute bars
        off = (sym == c[5]) & day_is(june5)
        frame = frame.with_columns(
            close=pl.when(off).then(pl.col("close") * 1.05).otherwise("close"),
            high=pl.when(off)
            .then(pl.max_horizontal("high", pl.col("close") * 1.05))
            .otherwise("high"),
        )
        # gap: a session's bar lost
        return frame.filter(~((sym == c[7]) & day_is(june7)))

    edit_file(year, daily)
    minute = tmp_path / "bars" / "interval=1min"
    # timestamp: a minute bar off the grid
    edit_file(
        minute / f"symbol={c[2]}" / "month=2024-06" / "data.parquet",
        lambda f: f.with_columns(
            ts=pl.when(pl.col("ts") == datetime(2024, 6, 6, 15, 0, tzinfo=UTC))
            .then(pl.col("ts") + timedelta(seconds=30))
            .otherwise("ts")
        ),
    )
    # partial_session: 300 of 390 minute bars of a session gone
    edit_file(
        minute / f"symbol={c[6]}" / "month=2024-06" / "data.parquet",
        lambda f: f.filter(~(day_is(june5) & (pl.col("ts").dt.time() >= time(14, 0)))),
    )
    # provisional: a range fetched before its sessions closed
    lake.catalog.add_ledger(
        pl.DataFrame(
            {
                "provider": ["demo"],
                "symbol": [c[8]],
                "interval": ["1day"],
                "start_date": [date(2024, 6, 27)],
                "end_date": [date(2024, 6, 29)],
                "bars": [2],
                "fetched_at": [NOW + timedelta(minutes=1)],
                "final": [False],
                "job_id": [None],
            },
            schema_overrides={"job_id": pl.String},
        )
    )
    result = lake.check(c, interval=["1day", "1min"], **WINDOW)
    found = {(f.rule, f.symbol) for f in result.findings}
    planted = {
        ("ohlc", c[0]),
        ("price", c[1]),
        ("volume", c[1]),
        ("timestamp", c[2]),
        ("jump", c[3]),
        ("stale", c[4]),
        ("daily_intraday", c[5]),
        ("partial_session", c[6]),
        ("gap", c[7]),
        ("provisional", c[8]),
    }
    assert planted <= found
    # Nothing else but what the plants imply: the provisional range will be fetched again (a
    # gap), and the bad high, the split and the flat prices leave those daily bars at odds
    # with their untouched minute bars.
    implied = {("gap", c[8]), ("daily_intraday", c[0]), ("daily_intraday", c[3])}
    assert found - planted == implied | {("daily_intraday", c[4])}
    by_rule = {f.rule: f for f in result.findings if (f.rule, f.symbol) in planted}
    assert (by_rule["gap"].first, by_rule["gap"].last) == ("2024-06-07", "2024-06-07")
    assert "x0.50" in by_rule["jump"].message and "2:1" in by_rule["jump"].message
    assert by_rule["stale"].first == "2024-06-17"
    assert (by_rule["partial_session"].first, by_rule["partial_session"].interval) == (
        "2024-06-05",
        "1min",
    )
    assert by_rule["timestamp"].severity == "error"
    assert result.errors > 0
    stored = lake.findings()
    assert stored.height == len(result.findings)
    assert set(stored["rule"]) == {f.rule for f in result.findings}


def test_gap_events_from_a_check_are_repaired_by_fill_events(tmp_path: Path) -> None:
    symbols = PLAIN[:4]
    lake = filled(tmp_path, symbols, ["1day", "1hour"])
    year = tmp_path / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    edit_file(
        year, lambda f: f.filter(~((pl.col("symbol") == symbols[0]) & day_is(date(2024, 6, 11))))
    )
    hour = (
        tmp_path / "bars" / "interval=1hour" / f"symbol={symbols[1]}" / "year=2024" / "data.parquet"
    )
    edit_file(hour, lambda f: f.filter(pl.col("ts").dt.date() != date(2024, 6, 20)))
    first = lake.check(interval=["1day", "1hour"], **WINDOW)
    assert {(f.rule, f.symbol, f.interval, f.first) for f in first.findings} == {
        ("gap", symbols[0], "1day", "2024-06-11"),
        ("gap", symbols[1], "1hour", "2024-06-20"),
    }
    assert first.gap_events == 2
    assert lake.check(interval=["1day", "1hour"], **WINDOW).gap_events == 0  # not queued twice
    repaired = lake.fill_events()
    assert repaired.status == "done"
    assert repaired.requests == 2
    assert lake.events(pending=True).is_empty()
    assert lake.check(interval=["1day", "1hour"], **WINDOW).findings == []


def test_clean_demo_lake_of_500_symbols_has_no_finding(tmp_path: Path) -> None:
    symbols = [f"Z{i:03d}" for i in range(500)]
    lake = Lake.init(tmp_path, clock=lambda: NOW)
    lake.add_symbols(symbols)
    assert (
        lake.fill(interval="1day", start=date(2024, 1, 2), end=date(2024, 6, 28)).status == "done"
    )
    assert lake.fill(symbols[:10], interval=["1min", "1hour"], **WINDOW).status == "done"
    result = lake.check(interval="1day", start=date(2024, 1, 2), end=date(2024, 6, 28))
    assert result.findings == []
    intraday = lake.check(symbols[:10], interval=["1min", "1hour"], **WINDOW)
    assert intraday.findings == []


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():  # type: ignore[no-untyped-def]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_receives_the_summary_and_an_unreachable_one_fails_nothing(
    tmp_path: Path, webhook: str
) -> None:
    symbols = PLAIN[:3]
    lake = filled(tmp_path, symbols, ["1day"])
    year = tmp_path / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    edit_file(
        year, lambda f: f.filter(~((pl.col("symbol") == symbols[0]) & day_is(date(2024, 6, 11))))
    )
    result = lake.check(interval="1day", webhook=webhook, **WINDOW)
    assert result.alert_error is None
    assert len(_Hook.received) == 1
    summary = _Hook.received[0]
    assert summary["findings"] == 1 and summary["by_rule"] == {"gap": 1}
    assert summary["first_findings"][0]["symbol"] == symbols[0]  # type: ignore[index]
    # Nothing found: nothing sent.
    lake.fill_events()
    assert lake.check(interval="1day", webhook=webhook, **WINDOW).findings == []
    assert len(_Hook.received) == 1
    # A webhook nobody listens on: the check still completes and says why.
    edit_file(
        year, lambda f: f.filter(~((pl.col("symbol") == symbols[1]) & day_is(date(2024, 6, 12))))
    )
    unreachable = lake.check(interval="1day", webhook="http://127.0.0.1:9/none", **WINDOW)
    assert [f.rule for f in unreachable.findings] == ["gap"]
    assert unreachable.alert_error is not None and "not reached" in unreachable.alert_error


def test_missing_values_keys_and_duplicates_are_errors_and_blank_bars_cover_nothing(
    tmp_path: Path,
) -> None:
    c = PLAIN[:6]
    lake = filled(tmp_path, c, ["1day", "1min"])
    year = tmp_path / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    june5, june6, june7 = date(2024, 6, 5), date(2024, 6, 6), date(2024, 6, 7)
    sym = pl.col("symbol")
    blank = {p: pl.lit(None, pl.Float64) for p in ("open", "high", "low", "close", "volume")}

    def daily(frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.with_columns(
            close=pl.when((sym == c[0]) & day_is(june5)).then(None).otherwise("close"),
            volume=pl.when((sym == c[1]) & day_is(june5)).then(None).otherwise("volume"),
        )
        twice = frame.filter((sym == c[2]) & day_is(june6))
        empty = frame.filter((sym == c[3]) & day_is(june7)).with_columns(**blank)
        no_ts = (
            frame.filter(sym == c[4])
            .head(1)
            .with_columns(ts=pl.lit(None, pl.Datetime("us", "UTC")))
        )
        no_symbol = frame.head(1).with_columns(symbol=pl.lit(None, pl.String))
        kept = frame.filter(~((sym == c[3]) & day_is(june7)))
        return pl.concat([kept, twice, empty, no_ts, no_symbol])

    edit_file(year, daily)
    minute = (
        tmp_path / "bars" / "interval=1min" / f"symbol={c[5]}" / "month=2024-06" / "data.parquet"
    )
    edit_file(
        minute, lambda f: pl.concat([f, f.head(2).with_columns(symbol=pl.lit(None, pl.String))])
    )
    result = lake.check(c, interval=["1day", "1min"], **WINDOW)
    found = {(f.rule, f.symbol, f.interval, f.first) for f in result.findings}
    assert found == {
        ("price", c[0], "1day", "2024-06-05"),  # a NULL close
        ("volume", c[1], "1day", "2024-06-05"),  # a NULL volume
        ("duplicate", c[2], "1day", "2024-06-06"),
        # A bar without any value is reported, and its session is not stored: a gap.
        ("price", c[3], "1day", "2024-06-07"),
        ("volume", c[3], "1day", "2024-06-07"),
        ("gap", c[3], "1day", "2024-06-07"),
        ("key", c[4], "1day", ""),  # a row without ts
        ("key", "", "1day", ""),  # a row of the year file without symbol
        ("key", c[5], "1min", ""),  # rows of c[5]'s own file without symbol
    }
    keys = {f.symbol: f.message for f in result.findings if f.rule == "key"}
    assert keys[""].startswith("1 row(s) without a symbol or ts in bars/interval=1day/year=2024/")
    assert keys[c[5]].startswith("2 row(s)")
    assert result.errors == len(found)
    assert lake.gaps(c[3], interval="1day", **WINDOW)[0].to_dict()["first"] == "2024-06-07"
    # Findings of rows of no symbol are replaced by the next check, not piled up.
    lake.check(c, interval=["1day", "1min"], **WINDOW)
    assert lake.findings().filter(pl.col("symbol") == "").height == 1


def test_a_crypto_pair_left_on_an_exchange_calendar_gets_findings_and_a_fill_warning(
    tmp_path: Path,
) -> None:
    lake = Lake.init(tmp_path, clock=lambda: NOW)
    lake.add_symbols("BTCUSDT", calendar="XNYS")  # added without --asset-class crypto
    result = lake.fill("BTCUSDT", interval=["1day", "1hour"], **WINDOW)  # type: ignore[arg-type]
    assert result.status == "done"
    warned = result.symbol_warnings["BTCUSDT"]
    assert [(w["interval"], w["stage"]) for w in warned] == [
        ("1day", "validate"),
        ("1hour", "validate"),
    ]
    # From June 3 to 28, 2024: six weekend days and Juneteenth, stored all the same.
    assert (
        "7 day(s) with bars outside the XNYS calendar (2024-06-08 to 2024-06-23)"
        in warned[0]["warning"]
    )
    assert "--calendar 24/7" in warned[0]["warning"]
    assert result.to_dict()["symbol_warnings"] == result.symbol_warnings
    check = lake.check("BTCUSDT", interval=["1day", "1hour"], **WINDOW)
    rules = {(f.rule, f.interval) for f in check.findings}
    assert ("timestamp", "1day") in rules and ("timestamp", "1hour") in rules
    assert rules <= {("timestamp", "1day"), ("timestamp", "1hour"), ("daily_intraday", "1day")}
