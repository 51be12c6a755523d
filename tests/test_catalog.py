"""The catalog: schema, migrations, the roadmap's progress table, sharing between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from barlake.catalog import schema
from barlake.catalog.embedded import MIGRATIONS, SYMBOL_COLUMNS, Catalog
from barlake.cli import cli
from barlake.domain import symbols
from barlake.domain.events import EventType
from barlake.errors import LockError, UsageError
from barlake.quality.rules import Finding

ROADMAP_PROGRESS_COLUMNS = [
    "id",
    "job_id",
    "symbol",
    "data_type",
    "interval",
    "start_date",
    "end_date",
    "status",
    "records_loaded",
    "error_message",
    "started_at",
    "completed_at",
    "created_at",
]

DESIGN_SYMBOL_COLUMNS = [
    "symbol",
    "name",
    "exchange",
    "asset_class",
    "calendar",
    "listed_on",
    "delisted_on",
    "market_cap",
    "tier",
    "layer",
    "layer1_qualified",
    "layer2_qualified",
    "layer3_qualified",
    "liquidity_score",
    "layer1_updated",
    "layer2_updated",
    "layer3_updated",
    "active",
    "updated_at",
]

SRC = str(Path(__file__).parents[1] / "src")
LAKE = str(Path(sys.executable).with_name("lake"))


def columns(catalog: Catalog, table: str) -> list[tuple[str, str, str | None]]:
    """(name, type, default) of each column of ``table``, in order."""
    return catalog.query(
        "SELECT column_name, data_type, column_default FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).rows()


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(tmp_path)
    assert catalog.create() is True
    return catalog


# -- schema ------------------------------------------------------------------------------------


def test_migrations_are_idempotent(catalog):
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAPL"]}))
    assert catalog.schema_version() == len(MIGRATIONS)
    assert catalog.create() is False
    assert catalog.create() is False
    assert catalog.schema_version() == len(MIGRATIONS)
    assert catalog.symbols()["symbol"].to_list() == ["AAPL"]


def test_a_missing_catalog_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="lake init"):
        Catalog(tmp_path / "none").schema_version()


def test_backfill_progress_has_the_roadmaps_columns_first(catalog):
    names = [name for name, _, _ in columns(catalog, "backfill_progress")]
    assert names[: len(ROADMAP_PROGRESS_COLUMNS)] == ROADMAP_PROGRESS_COLUMNS


def progress_row(job_id: str, symbol: str, interval: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "job_id": [job_id],
            "symbol": [symbol],
            "data_type": ["bars"],
            "interval": [interval],
            "status": ["pending"],
        }
    )


def test_backfill_progress_is_unique_per_job_symbol_type_and_interval(catalog):
    insert = (
        "INSERT INTO backfill_progress (job_id, symbol, data_type, interval, status) "
        "SELECT job_id::UUID, symbol, data_type, interval, status FROM row"
    )
    job = str(uuid.uuid4())
    catalog.execute(insert, row=progress_row(job, "AAPL", "1day"))
    catalog.execute(insert, row=progress_row(job, "AAPL", "1min"))
    catalog.execute(insert, row=progress_row(str(uuid.uuid4()), "AAPL", "1day"))
    with pytest.raises(duckdb.ConstraintException):
        catalog.execute(insert, row=progress_row(job, "AAPL", "1day"))
    got = catalog.query("SELECT id, records_loaded, created_at FROM backfill_progress ORDER BY id")
    assert got.height == 3  # the refused row left nothing behind
    assert got["id"].n_unique() == 3
    assert got["records_loaded"].to_list() == [0, 0, 0]
    assert got["created_at"].null_count() == 0


def test_symbols_table_has_the_designed_columns(catalog):
    cols = columns(catalog, "symbols")
    assert [name for name, _, _ in cols] == DESIGN_SYMBOL_COLUMNS
    assert list(SYMBOL_COLUMNS) == DESIGN_SYMBOL_COLUMNS
    types = {name: kind for name, kind, _ in cols}
    assert types["liquidity_score"] == "DECIMAL(10,2)"
    assert types["listed_on"] == types["delisted_on"] == "DATE"
    for n in (1, 2, 3):
        assert types[f"layer{n}_qualified"] == "BOOLEAN"


def test_the_row_schemas_are_the_tables_as_the_catalog_returns_them(catalog):
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAPL"]}))
    assert catalog.symbols().schema == pl.Schema(schema.SYMBOLS)
    assert list(schema.IMPORTS) == list(symbols.IMPORT_COLUMNS)
    assert tuple(schema.SYMBOLS) == symbols.SYMBOL_COLUMNS
    for table, rows in (
        ("ledger", schema.LEDGER),
        ("backfill_progress", schema.PROGRESS),
        ("quality_issues", schema.FINDINGS),
        ("set_aside", schema.SET_ASIDE),
    ):
        got = catalog.query(f"SELECT * FROM {table}").schema
        assert {name: got[name] for name in rows} == rows, table
    assert schema.PROGRESS_START.items() <= schema.PROGRESS.items()
    assert schema.PROGRESS_UPDATE.items() <= schema.PROGRESS.items()
    assert list(schema.FINDINGS) == list(Finding.__dataclass_fields__)


def test_new_symbols_get_the_designed_defaults(catalog):
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAPL"]}))
    row = catalog.symbols().row(0, named=True)
    assert row["layer"] == 0
    assert row["layer1_qualified"] is row["layer2_qualified"] is row["layer3_qualified"] is False
    assert row["active"] is True
    assert row["updated_at"] is not None


def test_event_types_are_stored_as_their_strings(catalog):
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAPL"]}))
    catalog.set_layers(pl.DataFrame({"symbol": ["AAPL"], "layer1_qualified": [True]}))
    catalog.set_layers(pl.DataFrame({"symbol": ["AAPL"], "layer1_qualified": [False]}))
    gap = {"symbol": "AAPL", "interval": "1day", "first": "2024-06-03", "last": "2024-06-04"}
    assert catalog.add_events(EventType.GAP_DETECTED, [gap]) == 1
    types = catalog.events()["type"].to_list()
    assert types == ["symbol.qualified", "layer.promoted", "layer.demoted", "data.gap.detected"]
    assert [EventType(t) for t in types] == list(EventType)
    assert catalog.pending_gap_events() == {("AAPL", "1day", "2024-06-03", "2024-06-04")}


def test_ledger_and_events_tables_exist(catalog):
    ledger = [name for name, _, _ in columns(catalog, "ledger")]
    assert ledger[:9] == [
        "provider",
        "symbol",
        "interval",
        "start_date",
        "end_date",
        "bars",
        "fetched_at",
        "final",
        "job_id",
    ]
    events = {name for name, _, _ in columns(catalog, "events")}
    assert {"type", "payload", "created_at", "processed_at", "job_id"} <= events


# -- sharing between processes -----------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import select, sys
    from barlake.catalog.embedded import Catalog

    with Catalog(sys.argv[1]).connect() as con:
        con.execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        print("holding", flush=True)
        # Hold the write connection until the test closes our stdin, at most this long.
        select.select([sys.stdin], [], [], float(sys.argv[2]))
    """
)


def hold(root: Path, seconds: float) -> subprocess.Popen[str]:
    """A process holding ``root``'s catalog open for writing; returns once it holds it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def test_a_read_only_command_waits_for_a_writer_and_succeeds(lake, lake_root):
    lake.add_symbols(["AAPL", "BRK/B"])
    holder = hold(lake_root, 2.0)
    try:
        done = subprocess.run(
            [LAKE, "--lake", str(lake_root), "symbols", "list", "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        # The holder was still running when the reader started: the reader had to wait.
        assert holder.poll() is None or holder.returncode == 0
    finally:
        release(holder)
    assert holder.returncode == 0
    assert done.returncode == 0, done.stderr
    assert [r["symbol"] for r in json.loads(done.stdout)] == ["AAPL", "BRK/B"]


def test_a_lock_held_too_long_is_a_lock_error_and_exit_4(lake_root, monkeypatch):
    holder = hold(lake_root, 3)
    try:
        with (
            pytest.raises(LockError, match="locked by another process"),
            Catalog(lake_root, lock_timeout=0.3).connect(read_only=True),
        ):
            pass
        with pytest.raises(LockError):
            Catalog(lake_root, lock_timeout=0.3).symbols()
        # The CLI has no lock timeout flag: shorten the default for this in-process run.
        monkeypatch.setitem(Catalog.__init__.__kwdefaults__, "lock_timeout", 0.3)
        result = CliRunner().invoke(cli, ["--lake", str(lake_root), "symbols", "list", "--json"])
    finally:
        release(holder)
    assert result.exit_code == 4
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: the catalog ")
    assert "locked" in lines[0]
    monkeypatch.undo()
    assert Catalog(lake_root, lock_timeout=0.3).symbols().height == 0


def test_a_catalog_block_holds_the_file_only_while_it_runs(tmp_path: Path) -> None:
    # Blocks attach the catalog to one DuckDB of the process and detach it after: another
    # process can write the catalog as soon as a block ends, and not while it runs.
    catalog = Catalog(tmp_path)
    catalog.create()
    probe = textwrap.dedent(
        f"""
        import duckdb
        try:
            duckdb.connect({str(catalog.path)!r}).close()
            print("opened")
        except duckdb.IOException:
            print("locked")
        """
    )

    def other_process() -> str:
        return subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()

    with catalog.session():
        assert other_process() == "locked"
        with catalog.connect() as con:  # nested blocks share the attachment
            con.execute("CREATE TEMP TABLE scratch AS SELECT 1 AS x")
    assert other_process() == "opened"
    with catalog.connect() as con:  # each block's temporary tables went with it
        assert con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scratch'"
        ).fetchone() == (0,)


def test_two_threads_read_the_catalog_at_once(lake_root: Path) -> None:
    """A long read-only block (planning, a check) does not hold other threads of the process
    back: their reads complete while it is still open."""
    catalog = Catalog(lake_root)
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAA", "BBB"]}))
    inside, read = threading.Event(), threading.Event()
    seen: list[list[str]] = []

    def long_block() -> None:
        with catalog.session(read_only=True):
            inside.set()
            assert read.wait(20), "the other thread's read waited for this block"

    def reader() -> None:
        assert inside.wait(20)
        seen.append(catalog.symbols()["symbol"].to_list())
        read.set()

    threads = [threading.Thread(target=long_block), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == [["AAA", "BBB"]]
    assert read.is_set()


def test_writers_of_two_threads_take_turns(lake_root: Path) -> None:
    catalog = Catalog(lake_root)
    names = [f"S{i:03d}" for i in range(40)]

    def add(chunk: list[str]) -> None:
        for name in chunk:
            catalog.upsert_symbols(pl.DataFrame({"symbol": [name]}))

    threads = [threading.Thread(target=add, args=(names[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(catalog.symbols()["symbol"].to_list()) == names


def test_a_stream_of_reads_does_not_starve_a_write(lake_root: Path) -> None:
    """An API server's readers come one after another; a worker's write in the same process
    gets its turn while they keep coming (readers arriving after it wait behind it)."""
    catalog = Catalog(lake_root)
    catalog.upsert_symbols(pl.DataFrame({"symbol": ["AAA"]}))
    written, stop = threading.Event(), threading.Event()
    reads: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            with catalog.session(read_only=True):
                catalog.symbols()
                time.sleep(0.005)  # overlapping blocks: the attachment never ends by itself
            reads.append(1)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    writer = threading.Thread()
    for t in readers:
        t.start()
    try:
        while len(reads) < 20:
            time.sleep(0.01)
        writer = threading.Thread(
            target=lambda: (
                catalog.upsert_symbols(pl.DataFrame({"symbol": ["BBB"]})),
                written.set(),
            )
        )
        writer.start()
        assert written.wait(20), "the write waited for the readers to stop"
        before = len(reads)
        while len(reads) < before + 20:  # and the readers carry on after it
            time.sleep(0.01)
    finally:
        stop.set()
        for t in [*readers, writer]:
            t.join(30)
    assert catalog.symbols()["symbol"].to_list() == ["AAA", "BBB"]
