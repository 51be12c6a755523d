"""Retention policies: the shipped files, windows in days and sessions, lookup, bad files."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from barlake.calendars.calendar import get_calendar
from barlake.domain.ranges import DateRange
from barlake.errors import ConfigError, UsageError
from barlake.retention.policy import (
    Policy,
    Retention,
    builtin_policies,
    load_policy,
    priority_rank,
    read_policy,
)

REPO = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "data" / "policies"
XNYS = get_calendar("XNYS")
FRIDAY = date(2024, 7, 5)  # the day after Independence Day, a holiday


def numbers(policy: Policy) -> dict[int, dict[str, int | None]]:
    """Every layer's fill days, with trades, as plain numbers."""
    out: dict[int, dict[str, int | None]] = {}
    for layer, lp in policy.layers.items():
        out[layer] = {interval: r.days for interval, r in lp.intervals.items()}
        if lp.trades is not None:
            out[layer]["trades"] = lp.trades.days
    return out


# --- the shipped policies ------------------------------------------------------------------------


def test_builtin_policies_without_the_package_link(monkeypatch, tmp_path):
    """A checkout whose symlink was lost (core.symlinks=false) still finds the repository folder."""
    monkeypatch.setattr("barlake.retention.policy._PACKAGE_DIR", tmp_path / "missing")
    assert {"default", "scanner_layers"} <= set(builtin_policies())


def test_builtin_policies_are_the_repository_files():
    found = builtin_policies()
    assert {"default", "scanner_layers"} <= set(found)
    for name, path in found.items():
        assert path == (REPO / "policies" / f"{name}.yaml").resolve()


def test_scanner_layers_has_the_roadmap_numbers():
    policy = load_policy("scanner_layers")
    assert policy.name == "scanner_layers"
    assert numbers(policy) == {
        0: {"1day": 30},
        1: {"1day": 60, "1hour": 5},
        2: {"1day": 90, "1hour": 30, "5min": 30},
        3: {"1day": 120, "1hour": 60, "5min": 60, "1min": 60, "trades": 5},
    }
    assert [policy.layers[n].priority for n in (0, 1, 2, 3)] == [
        "low",
        "medium",
        "high",
        "critical",
    ]
    assert policy.liquidity.lookback_sessions == 20
    assert policy.liquidity.layer1_min_dollar_volume == 5_000_000
    for lp in policy.layers.values():  # keep = fill throughout
        for r in [*lp.intervals.values(), lp.trades]:
            assert r is None or (r.keep_days, r.keep_sessions, r.sessions) == (None, None, None)


def test_default_policy():
    policy = load_policy("default")
    assert numbers(policy) == {
        0: {"1day": 365},
        1: {"1day": 365},
        2: {"1day": 365, "1hour": 30},
        3: {"1day": 365, "1hour": 30, "5min": 30, "1min": 10},
    }
    assert policy.intervals_for(3) == ["1day", "1hour", "5min", "1min"]
    assert policy.window(3, "trades", FRIDAY) is None


def test_priority_rank():
    ranks = [priority_rank(p) for p in ("low", "medium", "high", "critical")]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 4


# --- windows -------------------------------------------------------------------------------------


def test_window_in_days_ends_today_inclusive():
    policy = load_policy("scanner_layers")
    window = policy.window(3, "1min", FRIDAY)
    assert window == DateRange(date(2024, 5, 7), date(2024, 7, 6))
    assert window.days == 60
    assert window.last == FRIDAY
    assert policy.window(0, "1day", FRIDAY) == DateRange(date(2024, 6, 6), date(2024, 7, 6))
    assert policy.window(3, "trades", FRIDAY) == DateRange(date(2024, 7, 1), date(2024, 7, 6))
    assert Retention(days=1).window(FRIDAY) == DateRange(FRIDAY, FRIDAY + timedelta(days=1))


def test_window_in_sessions_skips_holidays():
    window = Retention(sessions=5).window(FRIDAY, XNYS)
    assert window == DateRange(date(2024, 6, 28), date(2024, 7, 6))
    sessions = [str(d) for d in XNYS.sessions_in(window)]
    assert sessions == ["2024-06-28", "2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05"]


def test_window_in_sessions_on_a_weekend_ends_today():
    saturday = date(2024, 7, 6)
    assert Retention(sessions=1).window(saturday, XNYS) == DateRange(FRIDAY, date(2024, 7, 7))


def test_sessions_need_a_calendar():
    with pytest.raises(UsageError, match="calendar"):
        Retention(sessions=5).window(FRIDAY)


def test_keep_window_contains_the_fill_window():
    assert Retention(days=30).keep_window(FRIDAY) == Retention(days=30).window(FRIDAY)
    keep = Retention(days=30, keep_days=365).keep_window(FRIDAY)
    assert keep == DateRange(date(2023, 7, 7), date(2024, 7, 6))
    # three sessions reach back less far than ten days: keep never shrinks below fill
    mixed = Retention(days=10, keep_sessions=3)
    assert mixed.keep_window(FRIDAY, XNYS) == mixed.window(FRIDAY, XNYS)
    longer = Retention(sessions=5, keep_days=30).keep_window(FRIDAY, XNYS)
    assert longer == DateRange(date(2024, 6, 6), date(2024, 7, 6))


def test_policy_windows_from_yaml_sessions(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("layers:\n  '2':\n    intervals:\n      5min: {sessions: 5, keep_sessions: 10}")
    policy = read_policy(path)
    assert policy.name == "s"  # the file's stem when the file gives none
    assert policy.window(2, "5min", FRIDAY, XNYS) == DateRange(date(2024, 6, 28), date(2024, 7, 6))
    keep = policy.keep_window(2, "5min", FRIDAY, XNYS)
    assert keep == DateRange(date(2024, 6, 21), date(2024, 7, 6))
    assert XNYS.session_count(keep) == 10


@given(
    n=st.integers(1, 400),
    today=st.dates(date(2000, 1, 1), date(2025, 12, 31)),
)
def test_windows_have_the_asked_length(n, today):
    days = Retention(days=n).window(today)
    assert (days.days, days.last) == (n, today)
    sessions = Retention(sessions=n).window(today, XNYS)
    assert sessions.last == today
    inside = XNYS.sessions_in(sessions)
    assert len(inside) == n
    assert inside[0] == np.datetime64(sessions.start, "D")


# --- layers --------------------------------------------------------------------------------------


def test_missing_layer_falls_back_to_the_highest_below():
    policy = Policy.model_validate(
        {
            "name": "gappy",
            "layers": {
                "1": {"intervals": {"1day": 60}},
                3: {"priority": "critical", "intervals": {"1day": 120, "1min": 5}},
            },
        }
    )
    assert policy.for_layer(0) is None
    assert policy.for_layer(1) is policy.layers[1]
    assert policy.for_layer(2) is policy.layers[1]
    assert policy.for_layer(3) is policy.layers[3]
    assert policy.for_layer(7) is policy.layers[3]
    assert policy.window(0, "1day", FRIDAY) is None
    assert policy.intervals_for(0) == []
    assert policy.intervals_for(2) == ["1day"]
    assert policy.window(2, "1day", FRIDAY) == policy.window(1, "1day", FRIDAY)
    assert policy.window(2, "1min", FRIDAY) is None
    assert policy.layers[1].priority == "medium"


# --- lookup --------------------------------------------------------------------------------------


def write(path: Path, description: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"description: {description}\nlayers:\n  0:\n    intervals:\n      1day: 7\n")
    return path


def test_lake_folder_shadows_builtin(tmp_path):
    lake = tmp_path / "lake"
    write(lake / "policies" / "default.yaml", "the lake's own")
    write(lake / "policies" / "mine.yaml", "mine")
    assert load_policy("default", lake).description == "the lake's own"
    assert load_policy("mine", lake).description == "mine"
    assert load_policy("mine.yaml", lake).description == "mine"
    assert load_policy("scanner_layers", lake).name == "scanner_layers"  # built-in
    assert load_policy("default").name == "default"  # no lake: built-in


def test_a_path_wins(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    write(lake / "policies" / "default.yaml", "the lake's own")
    elsewhere = write(tmp_path / "elsewhere" / "default.yaml", "by path")
    assert load_policy(str(elsewhere), lake).description == "by path"
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert load_policy("default.yaml", lake).description == "by path"
    assert load_policy("./default.yaml").description == "by path"
    assert load_policy("default", lake).description == "the lake's own"  # a bare name is a name


def test_unknown_name_lists_the_available_ones(tmp_path):
    write(tmp_path / "policies" / "mine.yaml", "mine")
    with pytest.raises(ConfigError) as info:
        load_policy("scanner", tmp_path)
    message = str(info.value)
    assert "'scanner'" in message
    assert "default, mine, scanner_layers" in message


def test_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_policy(str(tmp_path / "nope" / "p.yaml"))


# --- bad files -----------------------------------------------------------------------------------


BAD_FILES = [
    ("unknown_key.yaml", ["'layers.3.prioritty'", "did you mean 'priority'"]),
    ("unknown_top_key.yaml", ["'layer'", "did you mean 'layers'"]),
    ("unknown_liquidity_key.yaml", ["liquidity.lookback_session", "'lookback_sessions'"]),
    ("negative_days.yaml", ["layers.1.intervals.1day.days", "greater than or equal to 1"]),
    ("zero_sessions.yaml", ["layers.2.intervals.5min.sessions", "greater than or equal to 1"]),
    ("negative_trades.yaml", ["layers.3.trades.days", "greater than or equal to 1"]),
    ("days_and_sessions.yaml", ["layers.3.intervals.1min", "exactly one of days or sessions"]),
    ("keep_shorter.yaml", ["layers.0.intervals.1day", "keep_days (10) is shorter"]),
    ("days_as_text.yaml", ["layers.0.intervals.1day", "number of calendar days"]),
    ("unknown_interval.yaml", ["'layers.0.intervals.1dya'", "did you mean '1day'"]),
    ("layer_prefixed.yaml", ["'layers.layer_3'", "did you mean '3'"]),
    ("layer_word.yaml", ["'layers.three'", "use one of: 0, 1, 2, 3"]),
    ("layer_out_of_range.yaml", ["'layers.4'", "use one of: 0, 1, 2, 3"]),
    ("unknown_priority.yaml", ["layers.2.priority", "did you mean 'high'"]),
    (
        "unknown_priority_word.yaml",
        ["layers.2.priority", "'low', 'medium', 'high' or 'critical'"],
    ),
    ("no_layers.yaml", ["layers:", "at least 1 item"]),
    ("not_yaml.yaml", ["not valid YAML", "line 5"]),
    ("not_a_mapping.yaml", ["expected a mapping"]),
]


@pytest.mark.parametrize(("file", "expected"), BAD_FILES)
def test_bad_policy_files(file, expected):
    path = BAD / file
    with pytest.raises(ConfigError) as info:
        load_policy(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


def test_every_bad_file_is_tested():
    assert {p.name for p in BAD.glob("*.yaml")} == {file for file, _ in BAD_FILES}
