"""The ``lake`` command: help everywhere, exact JSON on stdout, one-line errors and exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import click
import polars as pl
import pytest
from click.testing import CliRunner
from click.utils import make_default_short_help

from barlake.calendars.calendar import get_calendar
from barlake.cli import COMMANDS, cli, main
from barlake.domain.ranges import DateRange
from barlake.lake import Lake

LAKE = str(Path(sys.executable).with_name("lake"))


def run_all(*commands: list[str]) -> list[tuple[int, str, str]]:
    """Several independent ``lake`` runs at once: (exit code, stdout, stderr) of each."""
    procs = [
        subprocess.Popen([LAKE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for args in commands
    ]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append((p.returncode, stdout, stderr))
    return out


def invoke(root: Path, *args: str):
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)


def one_line_error(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def root(lake_root):
    """A fresh, initialised lake (copied from a template, see conftest.py)."""
    return lake_root


def listed(root: Path) -> list[dict]:
    result = invoke(root, "symbols", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def snapshot(root: Path) -> tuple[list[dict], list[str]]:
    """What a failed command must leave alone: the symbols and the bar files."""
    symbols = [{k: v for k, v in row.items() if k != "updated_at"} for row in listed(root)]
    files = sorted(str(p.relative_to(root)) for p in (root / "bars").rglob("*") if p.is_file())
    return symbols, files


def write_daily(root: Path, symbol: str, first: date, last: date, *skip: date) -> None:
    days = get_calendar("XNYS").sessions_in(DateRange.inclusive(first, last))
    ts = [
        datetime.fromisoformat(f"{d}T00:00+00:00")
        for d in days
        if date.fromisoformat(str(d)) not in skip
    ]
    n = len(ts)
    frame = pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": ts,
            "open": [1.0] * n,
            "high": [1.0] * n,
            "low": [1.0] * n,
            "close": [1.0] * n,
            "volume": [1.0] * n,
        }
    )
    Lake.open(root).store.write("1day", frame)


# -- help --------------------------------------------------------------------------------------


def subcommand(group: click.Group, name: str) -> click.Command:
    """A subcommand, loaded as the CLI loads it (top-level commands are imported on first use)."""
    command = group.get_command(click.Context(group), name)
    assert command is not None, name
    return command


def all_commands(group: click.Group, path: tuple[str, ...] = ()):
    for name in group.list_commands(click.Context(group)):
        command = subcommand(group, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def test_there_are_commands_to_check():
    names = {" ".join(p) for p, _ in all_commands(cli)}
    assert {
        "init",
        "gaps",
        "symbols",
        "symbols add",
        "symbols list",
        "symbols import",
        "symbols remove",
    } <= names


@pytest.mark.parametrize("path", [(), *(p for p, _ in all_commands(cli))], ids=" ".join)
def test_every_command_has_help(path):
    command = cli
    for name in path:
        command = subcommand(command, name)
    assert (command.help or "").strip(), f"lake {' '.join(path)} has no docstring"
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: cli {' '.join(path)}".rstrip())
    summary = " ".join(command.help.strip().splitlines()[0].split())
    assert summary in " ".join(result.stdout.split())  # the help text is rewrapped
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), f"{param.opts} of lake {' '.join(path)} has no help"


def test_lake_help_lists_what_the_loaded_commands_say():
    # ``lake --help`` reads the short help from the lazy table; once loaded, the commands' own
    # docstrings must print the same listing.
    eager = click.Group(
        "cli",
        commands={name: subcommand(cli, name) for name in COMMANDS},
        params=cli.params,
        help=cli.help,
        context_settings=cli.context_settings,
    )
    lazy = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert lazy.exit_code == 0
    assert lazy.stdout == CliRunner().invoke(eager, ["--help"], catch_exceptions=False).stdout
    assert sorted(COMMANDS) == cli.list_commands(click.Context(cli))


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_lazy_table_repeats_each_short_help(name):
    command = subcommand(cli, name)
    for limit in (45, 70, 1000):
        shortened = make_default_short_help(COMMANDS[name][1], limit)
        assert shortened == command.get_short_help_str(limit)


# -- symbols -----------------------------------------------------------------------------------


def test_init_add_and_list_through_the_executable(tmp_path):
    root = str(tmp_path / "lake")
    (init, init_out, init_err), (helped, help_out, _) = run_all(
        ["--lake", root, "init"], ["gaps", "--help"]
    )
    assert (init, init_out) == (0, ""), init_err
    assert (tmp_path / "lake" / "catalog.duckdb").is_file()
    assert helped == 0
    assert help_out.startswith("Usage: lake gaps")
    assert "--json" in help_out
    ((added, add_out, add_err),) = run_all(["--lake", root, "symbols", "add", "AAPL,MSFT", "BRK/B"])
    assert (added, add_out) == (0, ""), add_err
    ((code, out, err),) = run_all(["--lake", root, "symbols", "list", "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert [r["symbol"] for r in rows] == ["AAPL", "BRK/B", "MSFT"]
    assert rows[0]["layer"] == 0
    assert rows[0]["active"] is True
    assert rows[0]["layer1_qualified"] is False


def test_init_twice_is_safe(root):
    invoke(root, "symbols", "add", "AAPL")
    assert invoke(root, "init").exit_code == 0
    assert [r["symbol"] for r in listed(root)] == ["AAPL"]


def test_symbols_list_table_for_people(root):
    invoke(root, "symbols", "add", "BRK/B", "--listed-on", "2024-06-03")
    result = invoke(root, "symbols", "list")
    assert result.exit_code == 0
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "symbol",
        "layer",
        "calendar",
        "listed_on",
        "delisted_on",
        "active",
        "set_aside",
    ]
    assert row.split() == ["BRK/B", "0", "2024-06-03", "True"]


def test_symbols_remove(root):
    invoke(root, "symbols", "add", "AAPL,MSFT")
    assert invoke(root, "symbols", "remove", "MSFT").exit_code == 0
    assert [r["symbol"] for r in listed(root)] == ["AAPL"]


IMPORT_ROWS = {
    "symbol": ["NVDA", "BTCUSD", "BRK/B"],
    "name": ["Nvidia", "Bitcoin", "Berkshire B"],
    "exchange": ["XNAS", None, "XNYS"],
    "asset_class": ["equity", "crypto", "equity"],
    "calendar": ["XNYS", "24/7", None],
    "listed_on": ["1999-01-22", None, "1996-05-09"],
    "delisted_on": [None, None, "2030-01-02"],
    "market_cap": ["3.1e12", None, "1e12"],
}


def check_imported(root: Path) -> None:
    rows = {r["symbol"]: r for r in listed(root)}
    assert sorted(rows) == ["BRK/B", "BTCUSD", "NVDA"]
    assert rows["NVDA"]["name"] == "Nvidia"
    assert rows["NVDA"]["listed_on"] == "1999-01-22"
    assert rows["NVDA"]["market_cap"] == 3.1e12
    assert rows["NVDA"]["calendar"] == "XNYS"
    assert rows["BTCUSD"]["calendar"] == "24/7"
    assert rows["BTCUSD"]["listed_on"] is None
    assert rows["BRK/B"]["delisted_on"] == "2030-01-02"
    assert rows["BRK/B"]["exchange"] == "XNYS"


def test_symbols_import_csv(root, tmp_path):
    path = tmp_path / "symbols.csv"
    pl.DataFrame(IMPORT_ROWS).write_csv(path)
    result = invoke(root, "symbols", "import", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    check_imported(root)


def test_symbols_import_parquet_with_typed_columns(root, tmp_path):
    path = tmp_path / "symbols.parquet"
    pl.DataFrame(IMPORT_ROWS).with_columns(
        pl.col("listed_on", "delisted_on").str.to_date(), pl.col("market_cap").cast(pl.Float64)
    ).write_parquet(path)
    result = invoke(root, "symbols", "import", str(path))
    assert result.exit_code == 0, result.stderr
    check_imported(root)


def test_symbols_import_updates_existing_symbols(root, tmp_path):
    invoke(root, "symbols", "add", "NVDA")
    path = tmp_path / "symbols.csv"
    path.write_text("symbol,name\nNVDA,Nvidia Corp\n")
    assert invoke(root, "symbols", "import", str(path)).exit_code == 0
    assert [(r["symbol"], r["name"]) for r in listed(root)] == [("NVDA", "Nvidia Corp")]


def test_symbols_import_stores_checked_names(root, tmp_path):
    path = tmp_path / "symbols.csv"
    path.write_text("symbol\n BTCUSD \n")
    assert invoke(root, "symbols", "import", str(path)).exit_code == 0
    assert [r["symbol"] for r in listed(root)] == ["BTCUSD"]


def test_symbols_import_refuses_a_value_holding_two_names(root, tmp_path):
    path = tmp_path / "symbols.csv"
    path.write_text("symbol\nAAPL\nAAPL MSFT\n")
    result = invoke(root, "symbols", "import", str(path))
    assert result.exit_code == 2
    assert listed(root) == []


BAD_IMPORTS = {
    "no-symbol-column.csv": ("ticker,name\nAAPL,Apple\n", "no 'symbol' column|ticker"),
    "unknown-column.csv": ("symbol,sector\nAAPL,tech\n", "unknown column"),
    "bad-date.csv": ("symbol,listed_on\nAAPL,2024-02-30\n", "listed_on"),
    "bad-number.csv": ("symbol,market_cap\nAAPL,lots\n", "market_cap"),
    "bad-calendar.csv": ("symbol,calendar\nAAPL,NOPE\n", "calendar"),
    "empty-symbol.csv": ("symbol,name\n,Nameless\n", "symbol"),
    "escape.csv": ("symbol\n..\n", "could escape"),
    "repeat.csv": ("symbol\nAAPL\nAAPL\n", "repeat"),
    "unreadable.parquet": ("this is not parquet", "cannot be read"),
    "symbols.xlsx": ("symbol\nAAPL\n", "csv"),
}


@pytest.mark.parametrize("name", list(BAD_IMPORTS))
def test_a_bad_import_file_is_one_line_exit_2_and_writes_nothing(root, tmp_path, name):
    invoke(root, "symbols", "add", "MSFT", "--listed-on", "1986-03-13")
    before = snapshot(root)
    content, pattern = BAD_IMPORTS[name]
    path = tmp_path / name
    path.write_text(content)
    result = invoke(root, "symbols", "import", str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    line = one_line_error(result.stderr)
    assert re.search(pattern, line), line
    assert snapshot(root) == before


# -- gaps --------------------------------------------------------------------------------------

EXPECTED_GAPS = [
    {
        "symbol": "AAPL",
        "interval": "1day",
        "first": "2024-06-18",
        "last": "2024-06-20",
        "sessions": 2,
    },
    {
        "symbol": "BRK/B",
        "interval": "1day",
        "first": "2024-06-03",
        "last": "2024-06-28",
        "sessions": 19,
    },
    {
        "symbol": "NEWCO",
        "interval": "1day",
        "first": "2024-06-24",
        "last": "2024-06-28",
        "sessions": 5,
    },
]


@pytest.fixture(scope="module")
def gappy_template(tmp_path_factory, lake_template):
    root = tmp_path_factory.mktemp("gappy") / "lake"
    shutil.copytree(lake_template, root)
    assert invoke(root, "symbols", "add", "AAPL,BRK/B,MSFT").exit_code == 0
    assert invoke(root, "symbols", "add", "NEWCO", "--listed-on", "2024-06-22").exit_code == 0
    write_daily(
        root, "AAPL", date(2024, 6, 3), date(2024, 6, 28), date(2024, 6, 18), date(2024, 6, 20)
    )
    write_daily(root, "MSFT", date(2024, 6, 3), date(2024, 6, 28))
    return root


@pytest.fixture
def gappy(tmp_path, gappy_template):
    """AAPL misses 06-18 and 06-20 (06-19 is a holiday), BRK/B has no bars, MSFT is complete,
    NEWCO lists on Saturday 2024-06-22 and has no bars."""
    root = tmp_path / "gappy"
    shutil.copytree(gappy_template, root)
    return root


def test_gaps_json_in_process(gappy):
    result = invoke(gappy, "gaps", "--json", "--start", "2024-06-03", "--end", "2024-06-28")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == EXPECTED_GAPS


def test_gaps_for_chosen_symbols(gappy):
    result = invoke(
        gappy,
        "gaps",
        "--json",
        "--symbols",
        "AAPL,NEWCO",
        "--start",
        "2024-06-03",
        "--end",
        "2024-06-28",
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout) == [EXPECTED_GAPS[0], EXPECTED_GAPS[2]]


def test_no_gaps_is_an_empty_array_and_exit_0(gappy):
    result = invoke(
        gappy, "gaps", "--json", "--symbols", "MSFT", "--start", "2024-06-03", "--end", "2024-06-28"
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_gaps_table_for_people(gappy):
    result = invoke(
        gappy, "gaps", "--symbols", "AAPL", "--start", "2024-06-03", "--end", "2024-06-28"
    )
    assert result.exit_code == 1
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["symbol", "interval", "first", "last", "sessions"],
        ["AAPL", "1day", "2024-06-18", "2024-06-20", "2"],
    ]


BAD_GAPS = {
    "unknown interval": (["--interval", "2min"], "unknown interval '2min'"),
    "end before start": (["--start", "2024-06-10", "--end", "2024-06-03"], "before"),
    "unparsable date": (["--start", "2024-13-01"], "2024-13-01"),
    "not a date": (["--end", "yesterday"], "yesterday"),
    "unknown symbol": (["--symbols", "AAPL,ZZZZ"], "ZZZZ"),
    "bad symbol": (["--symbols", ".."], "could escape"),
    "days and dates": (["--days", "5", "--start", "2024-06-03"], "--days"),
    "zero days": (["--days", "0"], "--days"),
}


@pytest.mark.parametrize("case", list(BAD_GAPS))
def test_bad_gaps_input_is_one_line_exit_2_and_writes_nothing(gappy, case, capsys):
    # Through ``main``, as the console script runs: click's own usage errors are turned into
    # one line there (CliRunner would run click in standalone mode and print usage lines).
    before = snapshot(gappy)
    args, pattern = BAD_GAPS[case]
    with pytest.raises(SystemExit) as exit_:
        main(["--lake", str(gappy), "gaps", "--json", *args])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert pattern in one_line_error(err)
    assert snapshot(gappy) == before


def test_the_executable_prints_gaps_and_refuses_bad_input(gappy, tmp_path):
    before = snapshot(gappy)
    lake = ["--lake", str(gappy)]
    (code, out, err), *refused = run_all(
        [*lake, "gaps", "--json", "--start", "2024-06-03", "--end", "2024-06-28"],
        [*lake, "gaps", "--json", "--interval", "2min"],
        [*lake, "gaps", "--json", "--start", "2024-13-01"],
        [*lake, "symbols", "add", "/etc"],
        [*lake, "symbols", "import", str(tmp_path / "nothere.csv")],
    )
    assert code == 1, err
    assert json.loads(out) == EXPECTED_GAPS
    patterns = ["unknown interval", "2024-13-01", "could escape", "nothere.csv"]
    for (code, out, err), pattern in zip(refused, patterns, strict=True):
        assert (code, out) == (2, ""), err
        assert pattern in one_line_error(err)
    assert snapshot(gappy) == before


def test_no_lake_is_a_usage_error(tmp_path):
    result = invoke(tmp_path / "nowhere", "symbols", "list", "--json")
    assert result.exit_code == 2
    assert "lake init" in one_line_error(result.stderr)
    assert not (tmp_path / "nowhere").exists()


def test_plan_reports_calls_next_to_their_lower_bound(root: Path) -> None:
    names = ",".join(f"S{i:03d}" for i in range(250))
    assert invoke(root, "symbols", "add", names).exit_code == 0
    args = ("plan", "--interval", "1day", "--start", "2024-06-03", "--end", "2024-06-28")
    data = json.loads(invoke(root, *args, "--json").stdout)
    # 250 symbols x 19 sessions: two packs (the demo takes 200 symbols a request), one page each.
    assert (data["total_requests"], data["total_ranges"], data["lower_bound"]) == (2, 2, 2)
    result = invoke(root, *args)
    said = "2 request(s) (provider calls, one per page; lower bound 2) over 2 range(s)"
    assert said in result.stdout + result.stderr
