"""The backfill roadmap's configuration examples, pasted verbatim into lake.yaml, work: each is
accepted, plans the days it says per layer and interval, and a second fill fetches nothing;
misspellings and disagreements are one-line errors; ``lake config show`` says where each value
comes from."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from click.testing import CliRunner
from tests.conftest import clock

from barlake.cli import cli, main
from barlake.config import (
    INTRADAY_INTERVALS,
    IntervalName,
    LakeConfig,
    PriorityName,
    load,
    parse,
)
from barlake.domain.intervals import INTERVALS
from barlake.errors import ConfigError
from barlake.providers.demo import demo_listing_date
from barlake.retention.effective import configured_policy
from barlake.retention.policy import PRIORITIES, load_policy
from barlake.universe.tiers import tier_of

EXAMPLES = Path(__file__).parent / "data" / "roadmap"
#: One symbol per layer 0-3, each listed by the demo for the whole window (no listing-date notes).
SYMBOLS = [s for s in (f"L{i:02d}" for i in range(40)) if demo_listing_date(s) is None][:4]

#: The roadmap's built-in numbers (policies/scanner_layers.yaml, data_retention's example):
#: layer -> interval -> calendar days, and trades days.
SCANNER_LAYERS = {
    0: {"1day": 30},
    1: {"1day": 60, "1hour": 5},
    2: {"1day": 90, "1hour": 30, "5min": 30},
    3: {"1day": 120, "1hour": 60, "5min": 60, "1min": 60},
}
SCANNER_TRADES = {3: 5}
#: What each example plans: layer -> interval -> days; trades days; the explain source's start.
EXPECTED: dict[str, tuple[dict[int, dict[str, int]], dict[int, int], str]] = {
    "orchestration.yaml": (
        {n: {"1day": 30} for n in range(4)},
        {},
        "default: backfill.default_days = 30",
    ),
    "simple_options.yaml": (SCANNER_LAYERS, SCANNER_TRADES, "policy scanner_layers, layer"),
    "data_retention.yaml": (
        SCANNER_LAYERS,
        SCANNER_TRADES,
        "policy lake.yaml data_retention, layer",
    ),
    "data_management.yaml": (
        {
            0: {"1day": 30},
            1: {"1day": 60, "1hour": 60},
            2: {"1day": 90, "1hour": 90, "5min": 90},
            3: {"1day": 120, "1hour": 120, "5min": 120, "1min": 120},
        },
        {},
        "policy lake.yaml data_management, layer",
    ),
}


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    """The commands run on the tests' clock (after a session's close), not on the wall
    clock: during market hours today's session is provisional, and a second fill would
    rightly fetch it again."""
    monkeypatch.setenv("LAKE_CLOCK", clock().isoformat())


def invoke(root: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)


def ok_json(root: Path, *args: str) -> Any:
    result = invoke(root, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def with_layers(root: Path, config: str, market_cap: float | None = None) -> Path:
    """The lake at ``root`` with ``config`` as its lake.yaml and SYMBOLS at layers 0-3."""
    (root / "lake.yaml").write_text(config)
    if market_cap is None:
        assert invoke(root, "symbols", "add", ",".join(SYMBOLS)).exit_code == 0
    else:
        table = root.parent / "symbols.csv"
        table.write_text("symbol,market_cap\n" + "".join(f"{s},{market_cap}\n" for s in SYMBOLS))
        assert invoke(root, "symbols", "import", str(table)).exit_code == 0
    for layer, symbol in enumerate(SYMBOLS):
        if layer:
            assert invoke(root, "layers", "set", symbol, "--layer", str(layer)).exit_code == 0
    return root


def days_of(row: dict[str, Any]) -> int:
    return (date.fromisoformat(row["last"]) - date.fromisoformat(row["first"])).days + 1


def planned(plan: dict[str, Any]) -> dict[int, dict[str, int]]:
    """layer -> interval -> calendar days, as ``lake plan --explain --json`` gives them."""
    out: dict[int, dict[str, int]] = {}
    for row in plan["explain"]:
        if row["interval"] != "trades":
            out.setdefault(SYMBOLS.index(row["symbol"]), {})[row["interval"]] = days_of(row)
    return out


def trades_wanted(plan: dict[str, Any]) -> dict[int, int]:
    """layer -> calendar days of trades planned (the demo serves them; nothing skips them)."""
    assert all(skip["interval"] != "trades" for skip in plan["skipped"])
    return {
        SYMBOLS.index(row["symbol"]): days_of(row)
        for row in plan["explain"]
        if row["interval"] == "trades"
    }


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


# -- the four examples, verbatim -------------------------------------------------------------


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_each_example_plans_its_days_and_a_second_fill_fetches_nothing(lake_root, example):
    root = with_layers(lake_root, (EXAMPLES / example).read_text())
    days, trades, source = EXPECTED[example]
    plan = ok_json(root, "plan", "--explain")
    assert planned(plan) == days
    assert trades_wanted(plan) == trades
    assert {row["last"] for row in plan["explain"]} == {plan["explain"][0]["last"]}  # today
    for row in plan["explain"]:
        assert row["source"].startswith(source), row
    first = ok_json(root, "fill")
    assert first["status"] == "done" and first["requests"] > 0
    again = ok_json(root, "fill")
    assert (again["status"], again["requests"], again["bars_written"]) == ("done", 0, 0)


def test_the_examples_are_the_issue_text_comments_included():
    text = (EXAMPLES / "data_retention.yaml").read_text()
    assert "daily_bars: 30  # Minimum for technical analysis" in text
    assert "tick_data: 5  # Recent tick data" in text
    assert "# Disable by default" in (EXAMPLES / "orchestration.yaml").read_text()
    assert (
        'retention_policy: "scanner_layer_based"' in (EXAMPLES / "data_management.yaml").read_text()
    )


def sections(*names: str) -> LakeConfig:
    data: dict[str, Any] = {}
    for name in names:
        data |= yaml.safe_load((EXAMPLES / name).read_text())
    return parse(LakeConfig, data, "lake.yaml")


def test_data_retention_is_the_built_in_scanner_layers_policy():
    policy = configured_policy(sections("data_retention.yaml"))
    assert policy is not None
    assert policy.layers == load_policy("scanner_layers").layers
    assert policy.name == "lake.yaml data_retention"


def test_both_sections_merge_where_they_agree():
    # data_management lists the intervals and priorities, data_retention the intraday days.
    config = sections("data_retention.yaml", "data_management.yaml")
    policy = configured_policy(config)
    assert policy is not None
    assert policy.layers == load_policy("scanner_layers").layers
    layers = config.layer_retention()
    assert layers is not None
    hourly = layers[1].intervals["1hour"]
    assert hourly.days == 5
    assert "layer_1.intraday_bars" in hourly.source
    assert "data_management.scanner_layers.layer_1.intervals" in hourly.source
    assert layers[3].priority_source == "data_management.scanner_layers.layer_3.priority"


def test_intraday_bars_cover_the_intervals_data_management_lists():
    data = yaml.safe_load((EXAMPLES / "data_retention.yaml").read_text())
    data["data_management"] = {
        "scanner_layers": {"layer_3": {"retention_days": 120, "intervals": ["1day", "15min"]}}
    }
    policy = configured_policy(parse(LakeConfig, data, "lake.yaml"))
    assert policy is not None
    layer3 = policy.layers[3]
    assert {i: r.days for i, r in layer3.intervals.items()} == {"1day": 120, "15min": 60}
    assert layer3.trades is not None and layer3.trades.days == 5
    assert policy.layers[2].intervals["5min"].days == 30  # layer 2: the default intervals


def test_intraday_bars_at_layer_0_take_layer_1s_intervals():
    config = parse(
        LakeConfig,
        {"data_retention": {"layer_based": {"layer_0": {"daily_bars": 10, "intraday_bars": 3}}}},
        "lake.yaml",
    )
    policy = configured_policy(config)
    assert policy is not None
    assert {i: r.days for i, r in policy.layers[0].intervals.items()} == {"1day": 10, "1hour": 3}
    assert INTRADAY_INTERVALS[0] == INTRADAY_INTERVALS[1]
    assert policy.layers[0].priority == "low"


def test_the_spellings_lake_yaml_repeats_match_the_domain():
    assert get_args(IntervalName) == INTERVALS
    assert get_args(PriorityName) == PRIORITIES
    assert all(set(i) <= set(INTERVALS) for i in INTRADAY_INTERVALS.values())


# -- user days, tiers and flags ---------------------------------------------------------------


TIERS_ON = """\
backfill:
  orchestration:
    use_symbol_tiers: true
    always_respect_user_days: {respect}
data_retention:
  layer_based:
    layer_0:
      daily_bars: 7  # the archive tier's old lookback
"""


@pytest.mark.parametrize(("respect", "days"), [("true", 30), ("false", 7)])
def test_user_days_win_for_an_archive_symbol_at_layer_0(lake_root, respect, days):
    # The roadmap's first problem: the archive tier forced 7 days on a --days 30 backfill.
    root = with_layers(lake_root, TIERS_ON.format(respect=respect), market_cap=1e8)
    settings = {s["key"]: s["value"] for s in ok_json(root, "config", "show")["settings"]}
    assert settings["backfill.use_symbol_tiers"] is True
    assert settings["backfill.respect_user_overrides"] is (respect == "true")
    assert tier_of(1e8, load(root).backfill.tiers) == "archive"
    plan = ok_json(root, "plan", "--explain", "--days", "30", "--symbols", SYMBOLS[0])
    (row,) = plan["explain"]
    assert (row["interval"], days_of(row)) == ("1day", days)
    assert row["source"].startswith("--days 30")
    result = ok_json(root, "fill", "--days", "30", "--symbols", SYMBOLS[0])
    assert result["status"] == "done" and result["bars_written"] == row["expected_sessions"]
    gaps = invoke(root, "gaps", "--json", "--days", str(days), "--symbols", SYMBOLS[0])
    assert (gaps.exit_code, json.loads(gaps.stdout)) == (0, [])


def test_the_policy_flag_wins_over_lake_yaml(lake_root):
    root = with_layers(lake_root, (EXAMPLES / "data_retention.yaml").read_text())
    plan = ok_json(root, "plan", "--explain", "--policy", "default")
    assert planned(plan)[0] == {"1day": 365}
    assert all(row["source"].startswith("policy default,") for row in plan["explain"])
    shown = ok_json(root, "config", "show", "--policy", "default")["policy"]
    assert (shown["name"], shown["source"]) == ("default", "--policy default")


def test_without_scanner_layers_every_symbol_gets_default_days(lake_root):
    config = "backfill:\n  use_scanner_layers: false\n  default_days: 12\n"
    root = with_layers(lake_root, config)
    plan = ok_json(root, "plan", "--explain")
    assert planned(plan) == {n: {"1day": 12} for n in range(4)}
    assert all("use_scanner_layers: false" in row["source"] for row in plan["explain"])
    # a policy named on the command line still applies
    assert planned(ok_json(root, "plan", "--explain", "--policy", "scanner_layers")) == (
        SCANNER_LAYERS
    )


def test_scanner_layers_true_uses_the_lakes_own_policy_first(lake_root):
    config = "default_policy: default\nbackfill:\n  use_scanner_layers: true\n"
    root = with_layers(lake_root, config)
    assert planned(ok_json(root, "plan", "--explain"))[1] == {"1day": 365}


# -- errors -----------------------------------------------------------------------------------


def edited(example: str, old: str, new: str) -> str:
    text = (EXAMPLES / example).read_text()
    assert old in text
    return text.replace(old, new, 1)


BAD = {
    "layer_4": (
        edited("data_retention.yaml", "layer_3:", "layer_4:"),
        ["unknown key 'data_retention.layer_based.layer_4'", "did you mean 'layer_3'?"],
    ),
    "daily_bar": (
        edited("data_retention.yaml", "daily_bars: 60", "daily_bar: 60"),
        ["unknown key 'data_retention.layer_based.layer_1.daily_bar'", "'daily_bars'"],
    ),
    "layered": (
        edited("data_management.yaml", '"scanner_layer_based"', "layered"),
        ["data_management.retention_policy", "'layered'", "did you mean 'scanner_layer_based'?"],
    ),
    "management layer_4": (
        edited("data_management.yaml", "layer_3:", "layer_4:"),
        ["'data_management.scanner_layers.layer_4'", "did you mean 'layer_3'?"],
    ),
    "unknown interval": (
        edited("data_management.yaml", '"1min"]', '"1mn"]'),
        ["data_management.scanner_layers.layer_3.intervals.3", "did you mean '1min'?"],
    ),
    "priority": (
        edited("data_management.yaml", '"critical"', '"critcal"'),
        ["data_management.scanner_layers.layer_3.priority", "did you mean 'critical'?"],
    ),
    "orchestration key": (
        edited("orchestration.yaml", "always_respect_user_days", "always_respect_user_day"),
        ["'backfill.orchestration.always_respect_user_day'", "'always_respect_user_days'"],
    ),
    "scanner layers key": (
        edited("simple_options.yaml", "use_scanner_layers", "use_scanner_layer"),
        ["unknown key 'backfill.use_scanner_layer'", "did you mean 'use_scanner_layers'?"],
    ),
    "days as text": (
        edited("data_retention.yaml", "daily_bars: 30", "daily_bars: thirty"),
        ["data_retention.layer_based.layer_0.daily_bars", "integer"],
    ),
    "both spellings": (
        "backfill:\n  use_symbol_tiers: true\n  orchestration:\n    use_symbol_tiers: false\n",
        ["backfill.orchestration.use_symbol_tiers (false)", "backfill.use_symbol_tiers (true)"],
    ),
    "user days twice": (
        (EXAMPLES / "orchestration.yaml").read_text() + "  respect_user_overrides: false\n",
        ["backfill.orchestration.always_respect_user_days (true)", "respect_user_overrides"],
    ),
    "daily days disagree": (
        (EXAMPLES / "data_retention.yaml").read_text()
        + edited("data_management.yaml", "retention_days: 90", "retention_days: 95"),
        [
            "data_retention.layer_based.layer_2.daily_bars (90)",
            "data_management.scanner_layers.layer_2.retention_days (95)",
        ],
    ),
    "intraday outlasts the layer": (
        edited("data_retention.yaml", "intraday_bars: 30", "intraday_bars: 95")
        + (EXAMPLES / "data_management.yaml").read_text(),
        [
            "data_retention.layer_based.layer_2.intraday_bars (95)",
            "data_management.scanner_layers.layer_2.retention_days (90)",
        ],
    ),
    "intraday none but listed": (
        edited("data_retention.yaml", "intraday_bars: 5", "intraday_bars: 0")
        + (EXAMPLES / "data_management.yaml").read_text(),
        [
            "data_retention.layer_based.layer_1.intraday_bars (0)",
            "data_management.scanner_layers.layer_1.intervals (1day, 1hour)",
        ],
    ),
    "default policy too": (
        "default_policy: scanner_layers\n" + (EXAMPLES / "data_retention.yaml").read_text(),
        ["default_policy (scanner_layers)", "data_retention"],
    ),
    "layers off with a policy": (
        "backfill:\n  use_scanner_layers: false\n"
        + (EXAMPLES / "data_management.yaml").read_text(),
        ["backfill.use_scanner_layers (false", "data_management"],
    ),
    "two backfill sections": (
        (EXAMPLES / "orchestration.yaml").read_text()
        + (EXAMPLES / "simple_options.yaml").read_text(),
        ["key 'backfill' appears twice (lines 1 and 5)", "merge"],
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sections_are_one_line_errors_exit_2(lake_root, capsys, case):
    config, expected = BAD[case]
    (lake_root / "lake.yaml").write_text(config)
    for command in (["plan", "--json"], ["config", "show"]):
        message = one_line_error(capsys, "--lake", str(lake_root), *command)
        assert message.startswith(f"error: {lake_root / 'lake.yaml'}: ")
        for part in expected:
            assert part in message, message


def test_python_users_get_the_same_error_as_a_config_error():
    with pytest.raises(ConfigError, match="layer_4"):
        parse(LakeConfig, yaml.safe_load(BAD["layer_4"][0]), "lake.yaml")


# -- lake config show -------------------------------------------------------------------------


SHOWN = """\
backfill:
  orchestration:
    use_symbol_tiers: true
  default_days: 45
providers:
  polygon:
    base_url: https://user:pw@example.com/v2?apiKey=abc123&feed=sip
    options: {api_key: topsecret, feed: iex, client_secret: s3}
alerts:
  webhook_url: https://hooks.example.com/services/T000/B000/XXXX
"""


def test_config_show_names_the_source_of_every_value(lake_root, monkeypatch):
    monkeypatch.setenv("LAKE_PARALLEL_SYMBOLS", "4")
    (lake_root / "lake.yaml").write_text(SHOWN + (EXAMPLES / "data_retention.yaml").read_text())
    data = ok_json(lake_root, "config", "show")
    assert data["file"] == str(lake_root / "lake.yaml") and data["file_exists"]
    settings = {s["key"]: (s["value"], s["source"]) for s in data["settings"]}
    assert settings["backfill.use_symbol_tiers"] == (
        True,
        "lake.yaml backfill.orchestration.use_symbol_tiers",
    )
    assert settings["backfill.parallel_symbols"] == (4, "env LAKE_PARALLEL_SYMBOLS")
    assert settings["backfill.default_days"] == (45, "lake.yaml")
    assert settings["backfill.respect_user_overrides"] == (True, "default")
    assert settings["default_provider"] == ("demo", "default")
    assert settings["providers.demo.timeout_s"] == (30, "default")  # the default provider's
    assert not any(k.startswith("backfill.orchestration") for k in settings)
    # secrets never print
    assert settings["providers.polygon.options.api_key"] == ("***", "lake.yaml")
    assert settings["providers.polygon.options.client_secret"][0] == "***"
    assert settings["providers.polygon.options.feed"][0] == "iex"
    assert settings["providers.polygon.base_url"][0] == (
        "https://***@example.com/v2?apiKey=***&feed=sip"
    )
    assert settings["alerts.webhook_url"][0] == "https://hooks.example.com/***"
    # the name of the variable that holds the API token is no secret; the token never shows
    assert settings["api.token_env"] == ("LAKE_API_TOKEN", "default")
    assert settings["worker.lease_s"] == (60, "default")
    text = json.dumps(data)
    for secret in ("topsecret", 's3"', "abc123", "pw@", "XXXX"):
        assert secret not in text

    policy = data["policy"]
    assert (policy["name"], policy["source"]) == (
        "lake.yaml data_retention",
        "lake.yaml data_retention",
    )
    rules = {(r["layer"], r["what"]): r for r in policy["rules"]}
    assert rules[(3, "1min")]["days"] == 60
    assert rules[(3, "1min")]["source"] == (
        "lake.yaml data_retention.layer_based.layer_3.intraday_bars "
        "(intervals: barlake's default for layer 3)"
    )
    assert rules[(3, "trades")]["days"] == 5
    assert rules[(0, "1day")]["source"] == "lake.yaml data_retention.layer_based.layer_0.daily_bars"
    assert rules[(2, "priority")]["value"] == "high"
    assert rules[(2, "priority")]["source"].startswith("default for layer 2")
    assert (0, "1hour") not in rules  # intraday_bars: 0
    assert {r["layer"] for r in policy["rules"]} == {0, 1, 2, 3, None}


def test_config_show_for_people(lake_root):
    (lake_root / "lake.yaml").write_text((EXAMPLES / "simple_options.yaml").read_text())
    result = invoke(lake_root, "config", "show")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["key", "value", "source"]
    assert ["backfill.use_scanner_layers", "true", "lake.yaml"] in [line.split() for line in lines]
    assert "policy: scanner_layers (from lake.yaml backfill.use_scanner_layers: true)" in lines
    (daily,) = [line for line in lines if line.split()[:3] == ["0", "1day", "30"]]
    assert daily.endswith("built-in policies/scanner_layers.yaml: layers.0.intervals.1day")


def test_config_show_layers_a_policy_leaves_out_use_the_one_below(lake_root):
    (lake_root / "lake.yaml").write_text(
        "data_management:\n  scanner_layers:\n    layer_1:\n"
        "      retention_days: 20\n      intervals: [1day]\n"
    )
    rules = ok_json(lake_root, "config", "show")["policy"]["rules"]
    by = {(r["layer"], r["what"]): r for r in rules}
    assert by[(0, "-")]["value"].startswith("no rule")
    assert by[(3, "1day")]["days"] == 20
    assert "layer 3 not defined: layer 1's" in by[(3, "1day")]["source"]


def test_config_show_without_a_policy_and_without_a_lake(lake_root, tmp_path, capsys):
    data = ok_json(lake_root, "config", "show")
    assert not data["file_exists"]
    assert data["policy"]["name"] is None
    assert "backfill.default_days (30)" in data["policy"]["source"]
    assert data["policy"]["rules"] == []
    message = one_line_error(capsys, "--lake", str(tmp_path / "nowhere"), "config", "show")
    assert "no lake at" in message
