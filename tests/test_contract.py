"""The contract every backend combination keeps: the same commands give the same answers on the
DuckDB file with bars on local disk, and on a PostgreSQL catalog with bars on local disk.

``BACKENDS`` lists the combinations; a new one (bars on object storage, say) is one more entry
and one more branch of ``backend``, and every test here runs on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from barlake import Lake
from test_fill import lake as run_lake
from test_fill import status_during_a_fill

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
SYMBOLS = ["AAA", "BBB", "CCC"]


@dataclass(frozen=True)
class Backend:
    """Where a lake's catalog and bars live."""

    name: str
    catalog: str  # duckdb | postgres
    storage: str  # local


BACKENDS = [
    pytest.param(Backend("duckdb+local", "duckdb", "local"), id="duckdb+local"),
    pytest.param(
        Backend("postgres+local", "postgres", "local"),
        id="postgres+local",
        marks=pytest.mark.postgres,
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch) -> Backend:
    """The combination under test, set in the environment for this process and the `lake`
    processes it starts."""
    chosen: Backend = request.param
    monkeypatch.delenv("LAKE_CATALOG_URL", raising=False)
    if chosen.catalog == "postgres":
        monkeypatch.setenv("LAKE_CATALOG_URL", request.getfixturevalue("postgres_url"))
    return chosen


def new_lake(root: Path) -> Lake:
    lake = Lake.init(root, clock=lambda: NOW)
    lake.add_symbols(SYMBOLS)
    return lake


def test_fill_then_rerun_makes_no_request_and_gaps_close(backend, tmp_path):
    lake = new_lake(tmp_path / "lake")
    before = lake.gaps(interval="1day", **JUNE)
    assert sorted({g.symbol for g in before}) == SYMBOLS
    first = lake.fill(interval="1day", **JUNE)
    assert (first.status, first.symbols_done, first.bars_written) == ("done", 3, 57)
    assert first.requests > 0
    again = lake.fill(interval="1day", **JUNE)
    assert (again.requests, again.bars_written) == (0, 0)
    assert lake.gaps(interval="1day", **JUNE) == []
    bars = lake.store.read("1day", SYMBOLS)  # type: ignore[arg-type]
    assert bars.height == 57 and bars.select("symbol", "ts").is_duplicated().sum() == 0
    ledger = lake.catalog.ledger("1day", first_window())
    assert ledger.schema["bars"] == pl.Int64 and ledger.schema["final"] == pl.Boolean
    assert sorted(ledger["symbol"].unique()) == SYMBOLS
    assert int(ledger["bars"].sum()) == 57
    status = lake.status()
    assert status["status"] == "done" and status["job_id"] == again.job_id
    jobs = lake.catalog.jobs()
    assert jobs.height == 2 and jobs.schema["created_at"] == pl.Datetime("us", "UTC")


def first_window():
    from barlake.domain.ranges import DateRange

    return DateRange.inclusive(JUNE["start"], JUNE["end"])


def test_layers_write_events_that_a_fill_serves(backend, tmp_path):
    lake = new_lake(tmp_path / "lake")
    counts = lake.set_layers(["AAA", "BBB"], 2, liquidity_score=12.5)
    assert counts == {"symbols": 2, "promoted": 2, "demoted": 0, "qualified": 2}
    assert lake.set_layers(["BBB"], 0) == {
        "symbols": 1,
        "promoted": 0,
        "demoted": 1,
        "qualified": 0,
    }
    events = lake.events()
    got = [(t, json.loads(p)) for t, p in events.select("type", "payload").iter_rows()]
    assert got == [
        ("symbol.qualified", {"symbol": "AAA", "layer": 1}),
        ("symbol.qualified", {"symbol": "BBB", "layer": 1}),
        ("symbol.qualified", {"symbol": "AAA", "layer": 2}),
        ("symbol.qualified", {"symbol": "BBB", "layer": 2}),
        ("layer.promoted", {"symbol": "AAA", "from": 0, "to": 2}),
        ("layer.promoted", {"symbol": "BBB", "from": 0, "to": 2}),
        ("layer.demoted", {"symbol": "BBB", "from": 2, "to": 0}),
    ]
    assert events.schema["id"] == pl.Int64 and events["processed_at"].null_count() == 7
    rows = {r["symbol"]: r for r in lake.symbol_rows()}
    assert (rows["AAA"]["layer"], rows["BBB"]["layer"], rows["CCC"]["layer"]) == (2, 0, 0)
    assert str(rows["AAA"]["liquidity_score"]) == "12.50"
    symbols = lake.symbols()
    assert symbols.schema["liquidity_score"] == pl.Decimal(10, 2)
    assert symbols.schema["layer"] == pl.Int32
    served = lake.fill_events(policy="scanner_layers")
    assert served.status == "done"
    assert lake.events(pending=True).is_empty()
    assert set(lake.events()["job_id"].to_list()) == {served.job_id}


def test_check_stores_findings_and_prune_forgets_the_pruned(backend, tmp_path):
    lake = new_lake(tmp_path / "lake")
    assert lake.fill(interval="1day", **JUNE).status == "done"
    year = tmp_path / "lake" / "bars" / "interval=1day" / "year=2024" / "data.parquet"
    frame = pl.read_parquet(year)
    bad = (pl.col("symbol") == "AAA") & (pl.col("ts").dt.date() == date(2024, 6, 5))
    frame.with_columns(high=pl.when(bad).then(pl.col("low") * 0.5).otherwise("high")).write_parquet(
        year
    )
    result = lake.check(interval="1day", **JUNE)
    assert result.errors >= 1
    findings = lake.catalog.findings()
    ohlc = findings.filter(pl.col("rule") == "ohlc")
    assert ohlc.select("severity", "symbol", "interval").rows() == [("error", "AAA", "1day")]
    assert findings.schema["checked_at"] == pl.Datetime("us", "UTC")
    assert lake.check(interval="1day", **JUNE).errors == result.errors  # replaced, not added
    assert lake.catalog.findings().height == findings.height

    lake.set_layers(["AAA", "BBB", "CCC"], 0)
    pruned = lake.prune("scanner_layers")
    assert pruned.bars_removed == 57  # layer 0 keeps 30 days of a lake whose today is 2025
    assert lake.store.read("1day", SYMBOLS).is_empty()  # type: ignore[arg-type]
    assert len(lake.gaps(interval="1day", **JUNE)) == 3  # the ledger forgot them too


def test_status_from_another_process_during_a_fill(backend, tmp_path):
    root = tmp_path / "lake"
    run_lake(root, "init", check=True)
    (root / "lake.yaml").write_text("providers:\n  demo:\n    options:\n      latency_ms: 500\n")
    run_lake(root, "symbols", "add", "AAA,BBB,CCC,DDD", check=True)
    seen, fill, err = status_during_a_fill(root)
    assert any(s == "running" and n > 0 for s, n in seen), (seen, err)
    assert fill.returncode == 130, err
    row = json.loads(run_lake(root, "status", "--json", check=True).stdout)
    assert row["status"] == "interrupted"
    # the catalog lives where the backend says
    assert (root / "catalog.duckdb").exists() == (backend.catalog == "duckdb")
