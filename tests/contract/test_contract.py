"""What a lake does, whatever holds its catalog and its files: fill, a rerun that makes no
request, gaps, the status of a running fill, layers and events, check, prune, with the catalog's
rows typed alike. Each test runs on every combination of ``conftest.COMBINATIONS``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta

import polars as pl
from tests.conftest import CLOCK, clock, write_daily, xnys
from tests.test_fill import lake as run
from tests.test_fill import spawn, statuses_until_running

from barlake.domain.ranges import DateRange
from barlake.lake import Lake
from barlake.providers.demo import demo_listing_date

JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
SYMBOLS = [s for s in (f"K{i:02d}" for i in range(30)) if demo_listing_date(s) is None][:6]
TODAY = CLOCK.date()
LAKE = [sys.executable, "-m", "barlake"]


def assert_sound(storage, root, interval: str) -> pl.DataFrame:
    """Every file of ``interval`` sorted and unique on (symbol, ts), read where it lives."""
    frames = storage.frames(root, interval)
    assert frames, interval
    for frame in frames:
        assert frame.equals(frame.sort("symbol", "ts"))
    keys = pl.concat([f.select("symbol", "ts") for f in frames])
    assert keys.is_duplicated().sum() == 0
    return pl.concat(frames)


def test_fill_reads_back_and_a_rerun_makes_no_request(storage, new_lake) -> None:
    lake = new_lake()
    lake.add_symbols("AAPL,MSFT,BRK/B")
    first = lake.fill(interval=["1day", "15min"], **JUNE)
    assert first.ok and first.requests > 0 and first.bars_written > 0
    daily = assert_sound(storage, lake.root, "1day")
    sessions = len(xnys(JUNE["start"], JUNE["end"]))
    assert dict(daily.group_by("symbol").len().iter_rows()) == dict.fromkeys(
        ["AAPL", "MSFT", "BRK/B"], sessions
    )
    intraday = assert_sound(storage, lake.root, "15min")
    assert intraday.group_by("symbol", pl.col("ts").dt.date()).len()["len"].max() == 26
    read = lake.bars("AAPL,MSFT,BRK/B", interval="1day", **JUNE).collect()
    assert read.sort("symbol", "ts").equals(daily.sort("symbol", "ts").select(read.columns))
    before = storage.versions(lake.root)
    assert any("symbol=BRK%2FB" in k for k in before)

    again = Lake.open(lake.root, clock=clock).fill(interval=["1day", "15min"], **JUNE)
    assert (again.requests, again.bars_written, again.requests_planned) == (0, 0, 0)
    assert storage.versions(lake.root) == before  # not one file written again
    assert lake.gaps(interval="1day", **JUNE) == []

    ledger = lake.catalog.ledger("1day", DateRange.inclusive(JUNE["start"], JUNE["end"]))
    assert ledger.schema["bars"] == pl.Int64 and ledger.schema["final"] == pl.Boolean
    assert sorted(ledger["symbol"].unique()) == ["AAPL", "BRK/B", "MSFT"]
    assert int(ledger["bars"].sum()) == daily.height
    assert lake.status()["job_id"] == again.job_id
    jobs = lake.catalog.jobs()
    assert jobs.height == 2 and jobs.schema["created_at"] == pl.Datetime("us", "UTC")


def test_gaps_name_the_sessions_left_out(storage, new_lake) -> None:
    lake = new_lake()
    lake.add_symbols("HOLE,FULL")
    june = xnys(JUNE["start"], JUNE["end"])
    holes = [date(2024, 6, 6), date(2024, 6, 20)]
    write_daily(lake, "HOLE", [d for d in june if d not in holes])
    write_daily(lake, "FULL", june)
    gaps = Lake.open(lake.root, clock=clock).gaps(interval="1day", **JUNE)
    assert [(g.symbol, g.range.start, g.sessions) for g in gaps] == [("HOLE", d, 1) for d in holes]
    assert lake.fill("HOLE", interval="1day", **JUNE).ok
    assert lake.gaps(interval="1day", **JUNE) == []


def test_status_of_a_running_fill_from_another_process(backend, storage, new_lake) -> None:
    # Eighteen months of pages at 0.5 s each: the fill outlasts the status polls by far.
    lake = new_lake("providers:\n  demo:\n    options:\n      latency_ms: 500\n")
    lake.add_symbols("AAA,BBB,CCC,DDD")
    fill = spawn(lake.root, "fill", "--start", "2023-01-03", "--end", "2024-06-28",
                 "--interval", "1min", "--parallel", "1")  # fmt: skip
    seen, err = statuses_until_running(lake.root, fill)
    assert any(s == "running" and n > 0 for s, n in seen), seen
    assert fill.returncode == 130, err
    assert json.loads(run(lake.root, "status", "--json").stdout)["status"] == "interrupted"
    assert_sound(storage, lake.root, "1min")  # what it saved before the signal is whole
    # the catalog lives where the backend says
    assert (lake.root / "catalog.duckdb").exists() == (backend.catalog == "duckdb")


def test_layers_write_typed_rows_and_events_that_a_fill_serves(new_lake) -> None:
    lake = new_lake()
    lake.add_symbols("AAA,BBB,CCC")
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


def test_layers_events_and_prune(storage, new_lake) -> None:
    lake = new_lake()
    lake.add_symbols(SYMBOLS)
    assert lake.fill(policy="scanner_layers").status == "done"
    promoted = SYMBOLS[:2]
    counts = lake.set_layers(promoted, 2)
    assert counts["promoted"] == 2
    kinds = [(e["type"], json.loads(e["payload"])) for e in lake.events().to_dicts()]
    assert ("layer.promoted", {"symbol": promoted[0], "from": 0, "to": 2}) in kinds
    served = lake.fill_events(policy="scanner_layers")
    assert served.status == "done" and served.requests > 0
    assert lake.events()["processed_at"].null_count() == 0
    again = lake.fill_events(policy="scanner_layers")
    assert (again.requests, again.bars_written) == (0, 0)
    hourly = lake.store.read("1hour", SYMBOLS)
    assert set(hourly["symbol"].unique()) == set(promoted)

    held = sorted((h.interval for h in lake.store.holdings()), key=lambda i: i != "1day")
    assert held[0] == "1day" and "1hour" in held
    before = {i: lake.store.read(i, SYMBOLS) for i in held}
    lake.set_layers(promoted[:1], 0)
    report = lake.prune("scanner_layers")
    after = {i: lake.store.read(i, SYMBOLS) for i in held}
    keep = TODAY - timedelta(days=29)
    gone = before["1day"].join(after["1day"], on=["symbol", "ts"], how="anti")
    assert set(gone["symbol"].unique()) == {promoted[0]}
    assert gone["ts"].max().date() < keep
    for intraday in held[1:]:
        assert set(after[intraday]["symbol"].unique()) == {promoted[1]}
    assert report.bars_removed == sum(before[i].height - after[i].height for i in before)
    assert assert_sound(storage, lake.root, "1day").height == after["1day"].height
    assert lake.gaps(promoted[:1], interval="1day", days=120)  # the ledger forgot them too


def test_check_finds_a_planted_fault_and_records_it(storage, new_lake) -> None:
    lake = new_lake()
    lake.add_symbols(SYMBOLS[:3])
    assert lake.fill(SYMBOLS[:3], interval="1day", **JUNE).ok
    clean = lake.check(SYMBOLS[:3], interval="1day", **JUNE)
    assert [f for f in clean.findings if f.severity == "error"] == []
    bad = lake.store.read("1day", SYMBOLS[:1]).filter(
        pl.col("ts") == datetime(2024, 6, 5, tzinfo=UTC)
    )
    lake.store.write("1day", bad.with_columns(high=pl.col("low") * 0.5))
    found = lake.check(SYMBOLS[:3], interval="1day", **JUNE)
    ohlc = [f for f in found.findings if f.rule == "ohlc"]
    assert [(f.symbol, f.first[:10]) for f in ohlc] == [(SYMBOLS[0], "2024-06-05")]
    assert SYMBOLS[0] in lake.findings()["symbol"].to_list()
    findings = lake.catalog.findings()
    assert findings.filter(pl.col("rule") == "ohlc").select(
        "severity", "symbol", "interval"
    ).rows() == [("error", SYMBOLS[0], "1day")]
    assert findings.schema["checked_at"] == pl.Datetime("us", "UTC")
    again = lake.check(SYMBOLS[:3], interval="1day", **JUNE)
    assert again.errors == found.errors  # replaced, not added
    assert lake.catalog.findings().height == findings.height


def test_a_request_is_done_in_the_transaction_of_its_jobs_last_rows(
    storage, new_lake, monkeypatch
) -> None:
    """A worker that dies after its job wrote the Parquet files, before the request's end
    commits, leaves neither the job's last ledger rows nor "done": the next delivery finds the
    bars stored, makes no request and is done once. (The worker's end is left out here, as a
    SIGKILL at that moment would leave it.)"""
    from barlake.jobs.backfill import Fenced

    lake = new_lake()
    lake.add_symbols("AAPL,MSFT")
    request, _ = lake.queue.add("AAPL,MSFT", interval="1day", **JUNE)
    window = DateRange.inclusive(JUNE["start"], JUNE["end"])
    ended: list[str] = []
    real_end = Fenced.end
    monkeypatch.setattr(Fenced, "end", lambda self, ending: ended.append(ending.state) or True)
    lake.worker(log=lambda e, f: None).run(once=True)
    assert ended == ["done"]
    claimed = lake.queue.get(request.id)
    assert (claimed.state, claimed.attempts) == ("claimed", 1)
    assert lake.catalog.ledger("1day", window).is_empty()
    assert lake.catalog.ledger("actions", window).is_empty()  # the actions asked: held too
    first_job = claimed.job_id
    assert first_job is not None
    assert lake.catalog.rows("SELECT status FROM jobs WHERE job_id = ?", [first_job]) == [
        {"status": "running"}
    ]
    sessions = len(xnys(JUNE["start"], JUNE["end"]))
    assert assert_sound(storage, lake.root, "1day").height == 2 * sessions  # durable first

    monkeypatch.setattr(Fenced, "end", real_end)
    with lake.catalog.connect() as con:  # its lease runs out
        con.execute(
            "UPDATE backfill_requests SET host = 'elsewhere', "
            "heartbeat_at = now() - INTERVAL '1 hour'"
        )
    lake.worker(log=lambda e, f: None).run(once=True)
    done = lake.queue.get(request.id)
    assert (done.state, done.attempts) == ("done", 2)
    assert done.job_id != first_job
    assert lake.status(done.job_id)["requests_made"] == 0
    assert assert_sound(storage, lake.root, "1day").height == 2 * sessions
    assert lake.gaps(interval="1day", **JUNE) == []  # the stored bars cover it
    # The second delivery asked for the actions again, and its end committed their ranges.
    assert sorted(lake.catalog.ledger("actions", window)["symbol"]) == ["AAPL", "MSFT"]
