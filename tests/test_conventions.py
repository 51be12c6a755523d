"""The habits researchers bring from freqtrade, yfinance, zipline and ccxt work on the ``lake``
command: a fill tracks a symbol it has not seen, symbols as arguments, tickers in any case,
``1m``/``1h``/``1d`` intervals, ``--version``, ``--dry-run``, plain-text symbol lists, crypto
pairs on the 24/7 calendar, ``lake providers``, ``lake config show``'s sources and shell
completion. One test (or a few) per convention, each through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from tests.conftest import CLOCK, clock

from barlake.calendars.calendar import get_calendar
from barlake.cli import cli, main
from barlake.config import INTERVAL_ALIASES
from barlake.domain.intervals import ALIASES, INTERVALS, spec
from barlake.domain.ranges import DateRange
from barlake.domain.symbols import is_crypto_pair
from barlake.errors import UnknownSymbolError
from barlake.lake import Lake

ROOT = Path(__file__).parent.parent
TODAY = CLOCK.date()
#: The 30 calendar days ending on the tests' today, as ``--days 30`` means them.
LAST_30 = DateRange.inclusive(date.fromordinal(TODAY.toordinal() - 29), TODAY)
WEEK = (date(2025, 1, 6), date(2025, 1, 10))


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    """The commands run on the tests' clock, after the day's close."""
    monkeypatch.setenv("LAKE_CLOCK", clock().isoformat())


def invoke(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False, env=env)


def ok(root: Path, *args: str) -> Any:
    result = invoke(root, *args)
    assert result.exit_code == 0, result.stderr
    return result


def ok_json(root: Path, *args: str) -> Any:
    return json.loads(ok(root, *args, "--json").stdout)


def symbols(root: Path) -> dict[str, dict[str, Any]]:
    return {r["symbol"]: r for r in ok_json(root, "symbols", "list")}


def sessions(calendar: str, window: DateRange = LAST_30) -> int:
    return get_calendar(calendar).session_count(window)


def lake_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def one_line_error(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    """Exit code and the one ``error:`` line of ``lake --lake ROOT *args``, run as the console
    script runs (through ``main``)."""
    with pytest.raises(SystemExit) as exit_:
        main(["--lake", str(root), *args])
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("error: ")
    return int(exit_.value.code or 0), line


# -- a fill tracks a symbol it has not seen ----------------------------------------------------


def test_fill_tracks_a_symbol_it_has_not_seen_and_says_so(lake_root):
    result = ok(lake_root, "fill", "--symbols", "AAPL", "--days", "30", "--json")
    assert "tracking new symbol(s): AAPL (XNYS)" in result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "done"
    assert data["bars_written"] == sessions("XNYS")
    assert symbols(lake_root)["AAPL"]["layer"] == 0
    # tracked now: a second fill says nothing of it and fetches nothing
    again = ok(lake_root, "fill", "AAPL", "--days", "30", "--json")
    assert "tracking" not in again.stderr
    assert json.loads(again.stdout)["bars_written"] == 0


def test_plan_and_gaps_do_not_track_but_say_how(lake_root, capsys):
    ok(lake_root, "symbols", "add", "MSFT")
    before = lake_files(lake_root)
    for command in ("plan", "gaps"):
        code, line = one_line_error(capsys, lake_root, command, "MSFT", "NVDA", "--days", "5")
        assert code == 2
        assert "unknown symbol(s) NVDA: the lake does not track" in line and "MSFT" not in line
        assert "`lake symbols add NVDA`" in line and "`lake fill NVDA`" in line
    assert lake_files(lake_root) == before


def test_the_library_tracks_as_the_command_does(lake):
    told = []
    result = lake.fill("msft", days=5, on_track=told.append)
    assert [m.name for m in told[0]] == ["MSFT"]
    assert result.bars_written == sessions("XNYS", DateRange.inclusive(date(2025, 1, 11), TODAY))
    assert lake.symbols()["symbol"].to_list() == ["MSFT"]
    with pytest.raises(UnknownSymbolError, match="NVDA: the lake does not track"):
        lake.fill("NVDA", days=5, track=False)
    with pytest.raises(UnknownSymbolError, match="NVDA: the lake does not track"):
        lake.plan("NVDA", days=5)
    assert lake.untracked("msft,nvda") == ["NVDA"]


# -- symbols as arguments ----------------------------------------------------------------------


def test_symbols_as_arguments_for_fill_plan_and_gaps(lake_root):
    ok(lake_root, "symbols", "add", "AAPL,MSFT,NVDA")
    window = ("--start", str(WEEK[0]), "--end", str(WEEK[1]), "--interval", "1day")
    by_option = ok_json(lake_root, "plan", "--symbols", "AAPL,MSFT", *window)
    assert ok_json(lake_root, "plan", "AAPL", "MSFT", *window) == by_option
    assert ok_json(lake_root, "plan", "AAPL", "--symbols", "MSFT", *window) == by_option
    assert by_option["ranges"][0]["symbols"] == ["AAPL", "MSFT"]
    gaps = invoke(lake_root, "gaps", "AAPL", "NVDA", "--json", *window)
    assert gaps.exit_code == 1
    assert {g["symbol"] for g in json.loads(gaps.stdout)} == {"AAPL", "NVDA"}
    filled = ok_json(lake_root, "fill", "AAPL", "MSFT", *window)
    # 2025-01-09 was no session (a national day of mourning)
    assert filled["bars_written"] == 2 * sessions("XNYS", DateRange.inclusive(*WEEK)) == 2 * 4
    left = invoke(lake_root, "gaps", "--json", *window)
    assert [g["symbol"] for g in json.loads(left.stdout)] == ["NVDA"]


# -- tickers in any case -----------------------------------------------------------------------


def test_tickers_are_upper_cased_for_equities_and_crypto_pairs(lake_root):
    ok(lake_root, "symbols", "add", "aapl", "brk/b,Btcusdt", "eth-usd")
    assert sorted(symbols(lake_root)) == ["AAPL", "BRK/B", "BTCUSDT", "ETH-USD"]
    window = ("--start", "2025-01-06", "--end", "2025-01-10")
    ok(lake_root, "fill", "aapl", "btcusdt", *window)
    assert sorted(symbols(lake_root)) == ["AAPL", "BRK/B", "BTCUSDT", "ETH-USD"]
    got = invoke(lake_root, "gaps", "Aapl", "BTCUSDT", "--json", *window)
    assert (got.exit_code, json.loads(got.stdout)) == (0, [])
    ok(lake_root, "symbols", "remove", "brk/b")
    assert "BRK/B" not in symbols(lake_root)


def test_a_lower_case_symbol_kept_from_before_is_found_in_any_case(lake_root):
    con = duckdb.connect(str(lake_root / "catalog.duckdb"))
    con.execute("INSERT INTO symbols (symbol, layer, active) VALUES ('msft', 0, true)")
    con.close()
    window = ("--start", "2025-01-06", "--end", "2025-01-10")
    gaps = json.loads(invoke(lake_root, "gaps", "MSFT", "--json", *window).stdout)
    assert {g["symbol"] for g in gaps} == {"msft"}
    filled = ok(lake_root, "fill", "MSFT", *window, "--json")
    assert "tracking" not in filled.stderr  # the same symbol, not a new one
    assert list(symbols(lake_root)) == ["msft"]


# -- interval aliases --------------------------------------------------------------------------


def test_interval_aliases_are_the_names_they_stand_for(lake_root):
    ok(lake_root, "symbols", "add", "AAPL")
    window = ("--start", "2025-01-13", "--end", "2025-01-14")
    named = ok_json(lake_root, "plan", "--interval", "1day,1hour,5min", *window)
    aliased = ok_json(lake_root, "plan", "--interval", "1d,1h,5m", *window)
    assert aliased == named
    assert {r["interval"] for r in aliased["ranges"]} == {"1day", "1hour", "5min"}
    ok(lake_root, "fill", "--interval", "1d,1h", *window)
    stored = sorted(p.name for p in (lake_root / "bars").iterdir())
    assert stored == ["interval=1day", "interval=1hour"]
    got = invoke(lake_root, "gaps", "--interval", "1h,1d", "--json", *window)
    assert (got.exit_code, json.loads(got.stdout)) == (0, [])
    lake = Lake.open(lake_root, clock=clock)
    hours = lake.bars("AAPL", interval="1h")  # type: ignore[arg-type]
    assert hours.collect().equals(lake.bars("AAPL", interval="1hour").collect())
    ok(lake_root, "fill", "--interval", "1m", "--start", "2025-01-14", "--end", "2025-01-14")
    built = lake.bars("AAPL", interval="5m", resample_from="1m").collect()  # type: ignore[arg-type]
    assert built.height == 78  # a full session of 5-minute bars
    assert built.equals(lake.bars("AAPL", interval="5min", resample_from="1min").collect())


def test_interval_aliases_in_policies_and_lake_yaml(lake_root):
    (lake_root / "policies").mkdir(exist_ok=True)
    (lake_root / "policies" / "short.yaml").write_text(
        "name: short\nlayers:\n  0: {intervals: {1d: 10, 1h: 3}}\n"
    )
    (lake_root / "lake.yaml").write_text(
        "backfill:\n  resample: {5m: 1m}\n"
        "schedule:\n  - action: update\n    interval: [1d, 15m]\n"
        "data_management:\n  scanner_layers:\n"
        "    layer_0: {retention_days: 20, intervals: [1d, 30m]}\n"
    )
    ok(lake_root, "symbols", "add", "AAPL")
    plan = ok_json(lake_root, "plan", "--policy", "short", "--explain")
    days = {r["interval"]: (r["first"], r["last"]) for r in plan["explain"]}
    assert set(days) == {"1day", "1hour"}
    assert days["1day"][0] == "2025-01-06"
    mine = ok_json(lake_root, "plan", "--explain")
    assert {r["interval"] for r in mine["explain"]} == {"1day", "30min"}
    lake = Lake.open(lake_root, clock=clock)
    assert lake.config.schedule[0].interval == ["1day", "15min"]
    assert lake.config.backfill.resample == {"5min": "1min"}


def test_both_spellings_of_one_interval_in_a_policy_are_an_error(lake_root, capsys):
    (lake_root / "policies").mkdir(exist_ok=True)
    (lake_root / "policies" / "twice.yaml").write_text(
        "name: twice\nlayers:\n  0: {intervals: {1d: 10, 1day: 3}}\n"
    )
    code, line = one_line_error(capsys, lake_root, "plan", "--policy", "twice")
    assert code == 2
    assert "twice.yaml" in line and "1d and 1day are the same interval" in line


def test_the_alias_tables_agree():
    assert INTERVAL_ALIASES == ALIASES
    assert sorted(ALIASES) == sorted(["1m", "5m", "15m", "30m", "1h", "1d"])
    assert all(spec(alias).name == name for alias, name in ALIASES.items())
    assert set(ALIASES.values()) == set(INTERVALS)


def test_an_unknown_interval_names_the_aliases_too(lake_root, capsys):
    code, line = one_line_error(capsys, lake_root, "plan", "--interval", "1M")
    assert code == 2
    assert "unknown interval '1M'" in line and "1m 5m 15m 30m 1h 1d" in line


# -- lake --version ----------------------------------------------------------------------------


def test_version_is_the_packages():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    result = CliRunner().invoke(cli, ["--version"], catch_exceptions=False)
    assert (result.exit_code, result.stdout) == (0, f"lake {version}\n")


# -- lake fill --dry-run -----------------------------------------------------------------------


def test_fill_dry_run_prints_the_plan_and_writes_nothing(lake_root, tmp_path):
    before = lake_files(lake_root)
    result = ok(lake_root, "fill", "NVDA", "BTCUSDT", "--days", "30", "--dry-run", "--json")
    assert "would track new symbol(s): NVDA,BTCUSDT" in result.stderr
    assert lake_files(lake_root) == before
    dry = json.loads(result.stdout)
    bars = {r["symbols"][0]: r["estimated_bars"] for r in dry["ranges"]}
    assert bars == {"NVDA": sessions("XNYS"), "BTCUSDT": 30}
    # the same plan as `lake plan` once the symbols are tracked
    ok(lake_root, "symbols", "add", "NVDA", "BTCUSDT")
    assert ok_json(lake_root, "plan", "NVDA", "BTCUSDT", "--days", "30") == dry
    # and as the table `lake plan` prints
    table = ok(lake_root, "fill", "--days", "30", "--dry-run")
    assert table.stdout == ok(lake_root, "plan", "--days", "30").stdout
    assert "NVDA" in table.stdout
    assert ok_json(lake_root, "jobs") == []


def test_fill_dry_run_of_events_and_of_set_aside_symbols(lake_root):
    (lake_root / "lake.yaml").write_text(
        "providers:\n  demo:\n    options: {unknown_symbols: [GONE]}\n"
    )
    ok(lake_root, "symbols", "add", "AAPL,GONE")
    invoke(lake_root, "fill", "--days", "5")  # GONE is set aside: the demo does not know it
    plain = ok_json(lake_root, "fill", "--days", "5", "--dry-run")
    assert plain["ranges"] == []
    assert [s["symbols"] for s in plain["skipped"]] == [["GONE"]]
    again = ok_json(lake_root, "fill", "--days", "5", "--dry-run", "--retry-failed")
    assert [r["symbols"] for r in again["ranges"]] == [["GONE"]]
    assert ok_json(lake_root, "symbols", "list")[1]["set_aside"] == "demo"  # still set aside
    # a promotion's events: the plan `lake fill --events` would run, the events still pending
    ok(lake_root, "layers", "set", "AAPL", "--layer", "3")
    pending = ok_json(lake_root, "events", "--pending")
    events = ok_json(lake_root, "fill", "--events", "--dry-run", "--policy", "scanner_layers")
    assert {r["interval"] for r in events["ranges"]} >= {"1min", "5min", "1hour"}
    assert ok_json(lake_root, "events", "--pending") == pending


# -- plain-text symbol lists -------------------------------------------------------------------


def test_symbols_import_reads_a_plain_text_list(lake_root, tmp_path):
    listed = tmp_path / "universe.txt"
    listed.write_text(
        "\ufeff# my universe\nAAPL\n\n  msft   # Microsoft\nBRK/B\nsol/usdt\n# NVDA\naapl\n"
    )
    result = ok(lake_root, "symbols", "import", str(listed))
    assert "4 symbol(s) imported" in result.stderr
    rows = symbols(lake_root)
    assert sorted(rows) == ["AAPL", "BRK/B", "MSFT", "SOL/USDT"]
    assert rows["SOL/USDT"]["asset_class"] == "crypto"
    assert rows["SOL/USDT"]["calendar"] == "24/7"
    # a CSV table saved as .txt is still read as a table
    table = tmp_path / "table.txt"
    table.write_text("symbol,name\nNVDA,Nvidia\n")
    ok(lake_root, "symbols", "import", str(table))
    assert symbols(lake_root)["NVDA"]["name"] == "Nvidia"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("AAPL\nMSFT NVDA\n", "line 2: 'MSFT NVDA' holds several names"),
        ("AAPL\n..\n", "line 2: symbol '..' could escape"),
        ("# nothing\n\n", "no symbol in it"),
    ],
)
def test_a_bad_symbol_list_is_one_line_and_imports_nothing(
    lake_root, tmp_path, capsys, text, pattern
):
    listed = tmp_path / "bad.txt"
    listed.write_text(text)
    before = lake_files(lake_root)
    code, line = one_line_error(capsys, lake_root, "symbols", "import", str(listed))
    assert code == 2
    assert "bad.txt" in line and pattern in line
    assert lake_files(lake_root) == before


# -- crypto pairs ------------------------------------------------------------------------------


def test_crypto_pairs_are_recognised_by_name():
    pairs = ["BTCUSDT", "ETH-USD", "BTC/USDT", "ethbtc", "SOL-EUR", "BNBBTC"]
    others = ["AAPL", "BRK/B", "BRK-B", "GBTC", "ABNB", "SPY", "BF.B", "X/USD"]
    assert [s for s in pairs + others if is_crypto_pair(s)] == pairs


def test_a_crypto_pair_is_tracked_on_the_24_7_calendar(lake_root):
    ok(lake_root, "symbols", "add", "BTCUSDT", "ETH-USD", "BTC/USDT", "AAPL")
    rows = symbols(lake_root)
    for pair in ("BTCUSDT", "ETH-USD", "BTC/USDT"):
        assert (rows[pair]["asset_class"], rows[pair]["calendar"]) == ("crypto", "24/7")
    assert (rows["AAPL"]["asset_class"], rows["AAPL"]["calendar"]) == (None, None)
    week = ("--start", "2025-01-06", "--end", "2025-01-12")  # Monday to Sunday
    filled = ok_json(lake_root, "fill", "BTC/USDT", "ETH-USD", *week)
    assert filled["bars_written"] == 2 * 7  # the weekend too
    got = invoke(lake_root, "gaps", "BTC/USDT", "ETH-USD", "--json", *week)
    assert (got.exit_code, json.loads(got.stdout)) == (0, [])


def test_a_crypto_pair_put_on_an_exchange_calendar_is_warned_about(lake_root):
    result = ok(lake_root, "symbols", "add", "BTCUSDT", "AAPL", "--calendar", "XNYS")
    (warning,) = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "BTCUSDT is a crypto pair" in warning and "XNYS" in warning
    assert "`lake symbols add BTCUSDT --calendar 24/7`" in warning
    rows = symbols(lake_root)
    assert (rows["BTCUSDT"]["asset_class"], rows["BTCUSDT"]["calendar"]) == ("crypto", "XNYS")
    # as asked; moved to 24/7, it is no longer warned about
    moved = ok(lake_root, "symbols", "add", "BTCUSDT", "--calendar", "24/7")
    assert "warning" not in moved.stderr
    # an explicit asset class is the user's word: no inference, no warning
    told = ok(lake_root, "symbols", "add", "ETHUSDT", "--asset-class", "equity")
    assert "warning" not in told.stderr
    assert symbols(lake_root)["ETHUSDT"]["calendar"] is None


def test_adding_again_keeps_what_a_pair_was_given(lake_root):
    ok(lake_root, "symbols", "add", "BTCUSDT", "--calendar", "XNYS")
    ok(lake_root, "symbols", "add", "BTCUSDT")
    assert symbols(lake_root)["BTCUSDT"]["calendar"] == "XNYS"


# -- shell completion --------------------------------------------------------------------------


def run_module(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m barlake`` (the ``lake`` command) from this source tree."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **env}
    return subprocess.run(
        [sys.executable, "-m", "barlake", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell):
    done = run_module(env={"_LAKE_COMPLETE": f"{shell}_source"})
    assert done.returncode == 0, done.stderr
    assert "_LAKE_COMPLETE" in done.stdout
    assert f"{shell}_complete" in done.stdout


def test_completion_completes_command_names_and_options():
    done = run_module(
        env={"_LAKE_COMPLETE": "bash_complete", "COMP_WORDS": "lake fi", "COMP_CWORD": "1"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["plain,fill"]
    done = run_module(
        env={"_LAKE_COMPLETE": "bash_complete", "COMP_WORDS": "lake fill --dry", "COMP_CWORD": "2"}
    )
    assert done.stdout.splitlines() == ["plain,--dry-run"]


# -- lake providers ----------------------------------------------------------------------------


def test_providers_lists_capabilities_rate_limits_and_credentials(lake_root):
    (lake_root / "lake.yaml").write_text("providers:\n  polygon:\n    rate_limit_per_min: 100\n")
    env = {
        "APCA_API_KEY_ID": "key-id-123",
        "APCA_API_SECRET_KEY": "very-secret-456",
        "LAKE_BINANCE_RATE_LIMIT": "600",
        "POLYGON_API_KEY": "",
        "MASSIVE_API_KEY": "",
    }
    result = invoke(lake_root, "providers", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    found = {p["name"]: p for p in json.loads(result.stdout)}
    assert list(found) == ["demo", "alpaca", "polygon", "massive", "yahoo", "binance"]
    assert found["demo"]["default"] and not found["alpaca"]["default"]
    alpaca = found["alpaca"]
    assert (alpaca["credentials"], alpaca["credentials_from"]) == (
        "set",
        "env APCA_API_KEY_ID, env APCA_API_SECRET_KEY",
    )
    assert alpaca["symbols_per_request"] == 200 and alpaca["bars_per_page"] == 10_000
    assert (alpaca["rate_limit_per_min"], alpaca["rate_limit_source"]) == (200, "default")
    polygon = found["polygon"]
    assert polygon["credentials"] == "missing"
    assert polygon["credentials_from"] == "set POLYGON_API_KEY or MASSIVE_API_KEY"
    assert (polygon["rate_limit_per_min"], polygon["rate_limit_source"]) == (100, "lake.yaml")
    assert polygon["grouped_daily"] is True
    assert polygon["max_days"]["1min"] == 62
    binance = found["binance"]
    assert (binance["rate_limit_per_min"], binance["rate_limit_source"]) == (
        600,
        "env LAKE_BINANCE_RATE_LIMIT",
    )
    assert (binance["credentials"], found["yahoo"]["credentials"]) == ("not needed", "not needed")
    assert all(p["intervals"] == list(INTERVALS) for p in found.values())
    table = invoke(lake_root, "providers", env=env)
    assert table.exit_code == 0
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert "set (env APCA_API_KEY_ID, env APCA_API_SECRET_KEY)" in lines["alpaca"]
    assert "100/60s (lake.yaml)" in lines["polygon"]
    for secret in ("key-id-123", "very-secret-456"):
        assert secret not in result.stdout + result.stderr + table.stdout + table.stderr


def test_providers_credentials_from_lake_yaml_are_named_not_shown(lake_root):
    (lake_root / "lake.yaml").write_text(
        "providers:\n  polygon:\n    options: {api_key: from-the-file-789}\n"
    )
    env = {"POLYGON_API_KEY": "", "MASSIVE_API_KEY": ""}
    result = invoke(lake_root, "providers", "--json", env=env)
    polygon = next(p for p in json.loads(result.stdout) if p["name"] == "polygon")
    assert (polygon["credentials"], polygon["credentials_from"]) == (
        "set",
        "lake.yaml providers.polygon.options",
    )
    assert "from-the-file-789" not in result.stdout
    lake = Lake.open(lake_root, clock=clock)
    assert [p.name for p in lake.providers()][:2] == ["demo", "alpaca"]


# -- lake config show --------------------------------------------------------------------------


def shown(result: Any) -> dict[str, tuple[Any, str]]:
    assert result.exit_code == 0, result.stderr
    return {s["key"]: (s["value"], s["source"]) for s in json.loads(result.stdout)["settings"]}


def test_config_show_says_where_the_lake_and_the_cache_come_from(lake_root, tmp_path):
    by_flag = shown(invoke(lake_root, "config", "show", "--json"))
    assert by_flag["lake"] == (str(lake_root), "flag --lake")
    assert by_flag["cache_dir"] == (os.environ["BARLAKE_CACHE_DIR"], "env BARLAKE_CACHE_DIR")
    by_env = CliRunner().invoke(
        cli, ["config", "show", "--json"], env={"LAKE_ROOT": str(lake_root)}
    )
    assert shown(by_env)["lake"] == (str(lake_root), "env LAKE_ROOT")
    xdg = {"BARLAKE_CACHE_DIR": "", "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    from_xdg = shown(invoke(lake_root, "config", "show", "--json", env=xdg))
    assert from_xdg["cache_dir"] == (str(tmp_path / "xdg" / "barlake"), "env XDG_CACHE_HOME")


def test_config_show_says_whether_the_api_token_is_set_never_what_it_is(lake_root):
    unset = shown(invoke(lake_root, "config", "show", "--json", env={"LAKE_API_TOKEN": ""}))
    assert unset["api.token"] == (None, "default")
    result = invoke(lake_root, "config", "show", "--json", env={"LAKE_API_TOKEN": "tok-321"})
    assert shown(result)["api.token"] == ("***", "env LAKE_API_TOKEN")
    (lake_root / "lake.yaml").write_text("api:\n  token_env: MY_TOKEN\n")
    mine = invoke(lake_root, "config", "show", env={"MY_TOKEN": "tok-654"})
    assert mine.exit_code == 0
    row = next(line.split() for line in mine.stdout.splitlines() if line.startswith("api.token "))
    assert row == ["api.token", "***", "env", "MY_TOKEN"]
    assert "tok-321" not in result.stdout and "tok-654" not in mine.stdout


def test_config_show_takes_the_flags_a_fill_would(lake_root, capsys):
    (lake_root / "lake.yaml").write_text(
        "default_provider: yahoo\nbackfill:\n  parallel_symbols: 4\n"
    )
    as_filed = shown(invoke(lake_root, "config", "show", "--json"))
    assert as_filed["default_provider"] == ("yahoo", "lake.yaml")
    assert as_filed["backfill.parallel_symbols"] == (4, "lake.yaml")
    env = {"LAKE_PROVIDER": "binance"}
    by_env = shown(invoke(lake_root, "config", "show", "--json", env=env))
    assert by_env["default_provider"] == ("binance", "env LAKE_PROVIDER")
    flagged = invoke(
        lake_root, "config", "show", "--provider", "alpaca", "--parallel", "3", "--json", env=env
    )
    settings = shown(flagged)
    assert settings["default_provider"] == ("alpaca", "flag --provider")
    assert settings["backfill.parallel_symbols"] == (3, "flag --parallel")
    assert settings["providers.alpaca.timeout_s"] == (30, "default")  # the flag's provider's
    code, line = one_line_error(capsys, lake_root, "config", "show", "--provider", "nope")
    assert code == 2 and "unknown provider 'nope'" in line
    code, line = one_line_error(capsys, lake_root, "config", "show", "--parallel", "5000")
    assert code == 2 and "--parallel 5000" in line
