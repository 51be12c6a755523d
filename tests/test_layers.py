"""Scanner layers, policy-driven plans, events, prune and tiers (through the Lake API)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from barlake import Lake, UsageError
from barlake.calendars.calendar import get_calendar
from barlake.domain.ranges import DateRange
from barlake.providers.demo import DemoConfig, DemoProvider, demo_listing_date

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)  # a Wednesday evening, after the close
TODAY = NOW.date()
# Symbols the demo lists for all of 2024-2025 (no mid-window listing to reason about).
SYMBOLS = [s for s in (f"L{i:02d}" for i in range(40)) if demo_listing_date(s) is None][:20]


def open_lake(root: Path, config: str = "") -> Lake:
    lake = Lake.init(root, clock=lambda: NOW)
    if config:
        (root / "lake.yaml").write_text(config)
    lake.add_symbols(SYMBOLS)
    return lake


def days_back(n: int) -> date:
    return TODAY - timedelta(days=n - 1)


def stored(lake: Lake, interval: str, symbols: list[str]) -> pl.DataFrame:
    return lake.store.read(interval, symbols)  # type: ignore[arg-type]


def test_layer_updates_set_flags_and_write_events(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    counts = lake.set_layers(SYMBOLS[:2], 3, liquidity_score=12.5)
    assert counts == {"symbols": 2, "promoted": 2, "demoted": 0, "qualified": 2}
    rows = lake.symbols(SYMBOLS[:3]).to_dicts()
    assert [r["layer"] for r in rows] == [3, 3, 0]
    assert [r["layer2_qualified"] for r in rows] == [True, True, False]
    assert float(rows[0]["liquidity_score"]) == 12.5
    assert rows[0]["layer3_updated"] is not None and rows[2]["layer3_updated"] is None
    assert lake.set_layers(SYMBOLS[:1], 1)["demoted"] == 1
    events = lake.events().to_dicts()
    kinds = [(e["type"], json.loads(e["payload"])) for e in events]
    assert kinds.count(("layer.promoted", {"symbol": SYMBOLS[0], "from": 0, "to": 3})) == 1
    assert ("layer.demoted", {"symbol": SYMBOLS[0], "from": 3, "to": 1}) in kinds
    assert sum(1 for k, _ in kinds if k == "symbol.qualified") == 6  # 2 symbols x layers 1-3
    assert lake.symbols(SYMBOLS[:1])["layer3_qualified"].to_list() == [False]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_layers_import_from_scanner_files(tmp_path: Path, suffix: str) -> None:
    lake = open_lake(tmp_path / "lake")
    frame = pl.DataFrame(
        {
            "symbol": SYMBOLS[:3],
            "layer1_qualified": [True, True, False],
            "layer2_qualified": [True, False, False],
            "liquidity_score": [50.0, 7.25, 0.5],
        }
    )
    path = tmp_path / f"scan{suffix}"
    {".csv": frame.write_csv, ".parquet": frame.write_parquet, ".json": frame.write_json}[suffix](
        path
    )
    counts = lake.import_layers(path)
    assert counts["promoted"] == 2
    got = lake.symbols(SYMBOLS[:3]).select("symbol", "layer", "liquidity_score")
    assert got["layer"].to_list() == [2, 1, 0]
    assert [float(x) for x in got["liquidity_score"]] == [50.0, 7.25, 0.5]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("symbol,layer\nL00,5\n", "'layer' must be 0, 1, 2 or 3"),
        ("symbol,layer,layer1_qualified\nL00,1,true\n", "not both"),
        ("symbol,tier\nL00,gold\n", "unknown column"),
        ("symbol,layer1_qualified\nL00,perhaps\n", "true/false"),
        ("symbol,layer\nNOPE,1\n", "unknown symbol"),
        ("symbol,layer\nL00,1\nL00,2\n", "repeat"),
    ],
)
def test_layers_import_rejects_bad_files(tmp_path: Path, content: str, fragment: str) -> None:
    lake = open_lake(tmp_path / "lake")
    path = tmp_path / "scan.csv"
    path.write_text(content)
    before = lake.symbols().to_dicts()
    with pytest.raises(UsageError, match=fragment):
        lake.import_layers(path)
    assert lake.symbols().to_dicts() == before
    assert lake.events().is_empty()


def test_layers_compute_scores_from_daily_bars(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    lake.fill(SYMBOLS[:4], interval="1day", days=60)
    bars = stored(lake, "1day", SYMBOLS[:4])
    last20 = bars.sort("ts").group_by("symbol").tail(20)
    expected = last20.group_by("symbol").agg((pl.col("close") * pl.col("volume")).median())
    threshold = sorted(expected["close"].to_list())[1] + 1  # two above, two below
    policy = tmp_path / "liquid.yaml"
    policy.write_text(
        "name: liquid\nliquidity:\n  lookback_sessions: 20\n"
        f"  layer1_min_dollar_volume: {threshold}\nlayers:\n  0:\n    intervals: {{1day: 30}}\n"
    )
    counts = lake.compute_layers(str(policy))
    assert counts["promoted"] == 2
    got = dict(lake.symbols(SYMBOLS[:4]).select("symbol", "liquidity_score").iter_rows())
    for sym, dollar in expected.iter_rows():
        assert float(got[sym]) == pytest.approx(dollar / 1e6, abs=0.01)
        assert (lake.symbols([sym])["layer"].item() == 1) == (dollar >= threshold)


def test_promotion_backfills_exactly_the_extra_ranges_then_prune_after_demotion(
    tmp_path: Path,
) -> None:
    lake = open_lake(tmp_path)
    first = lake.fill(policy="scanner_layers")
    assert first.status == "done"
    daily = stored(lake, "1day", SYMBOLS)
    assert daily["ts"].min().date() >= days_back(30)
    assert set(daily["symbol"].unique()) == set(SYMBOLS)
    assert not (tmp_path / "bars" / "interval=1min").exists()

    promoted = SYMBOLS[:3]
    lake.set_layers(promoted, 3)
    plan = lake.plan(policy="scanner_layers")  # what --events will do, seen from outside
    served = lake.fill_events(policy="scanner_layers")
    assert served.status == "done"
    assert served.skipped == []
    assert served.requests_planned == plan.total_requests
    # Layer 3 keeps 5 calendar days of trades: the three sessions of Jan 11-15, 2025.
    trade_sessions = [date(2025, 1, 13), date(2025, 1, 14), date(2025, 1, 15)]
    assert {t.symbols for t in plan.trades} == {tuple(promoted)}
    assert served.trade_requests > 0 and served.trades_written > 0
    files = lake.services.trades.files()
    assert {(s, d) for s, d, _ in files} == {(s, d) for s in promoted for d in trade_sessions}
    prints = {(s, d): lake.services.trades.count(p) for s, d, p in files}
    assert served.trades_written == sum(prints.values())
    for p in plan.requests:
        r = p.request
        assert set(r.symbols) <= set(promoted)
        if r.interval == "1day":
            # Only the days layer 3 keeps beyond layer 0's 30: nothing already stored.
            assert r.range.start >= days_back(120) and r.range.end <= days_back(30)
        else:
            assert r.interval in {"1hour", "5min", "1min"}
            assert r.range.start >= days_back(60) and r.range.end <= TODAY + timedelta(days=1)
    assert {p.request.interval for p in plan.requests} == {"1day", "1hour", "5min", "1min"}
    events = lake.events()
    assert events["processed_at"].null_count() == 0
    assert set(events["job_id"].to_list()) == {served.job_id}
    again = lake.fill_events(policy="scanner_layers")
    assert (again.requests, again.bars_written, again.trade_requests) == (0, 0, 0)
    rerun = lake.fill(policy="scanner_layers")
    assert (rerun.requests, rerun.bars_written) == (0, 0)
    assert (rerun.trade_requests, rerun.trades_written) == (0, 0)

    before = {i: stored(lake, i, SYMBOLS) for i in ("1day", "1hour", "5min", "1min")}
    lake.set_layers(SYMBOLS[:1], 0)
    report = lake.prune("scanner_layers")
    after = {i: stored(lake, i, SYMBOLS) for i in ("1day", "1hour", "5min", "1min")}
    keep = days_back(30)
    for interval in before:
        gone = before[interval].join(after[interval], on=["symbol", "ts"], how="anti")
        assert set(gone["symbol"].unique()) <= {SYMBOLS[0]}
        if interval == "1day":
            assert gone["ts"].max().date() < keep
            kept = after[interval].filter(pl.col("symbol") == SYMBOLS[0])
            assert kept["ts"].min().date() >= keep
        else:
            assert after[interval].filter(pl.col("symbol") == SYMBOLS[0]).is_empty()
        assert (
            after[interval]
            .filter(pl.col("symbol") != SYMBOLS[0])
            .equals(before[interval].filter(pl.col("symbol") != SYMBOLS[0]))
        )
    assert report.bars_removed == sum(before[i].height - after[i].height for i in before)
    # Layer 0 keeps no trades: the demoted symbol's files go, the others' stay.
    kept_files = {(s, d) for s, d, _ in lake.services.trades.files()}
    assert kept_files == {(s, d) for s in promoted[1:] for d in trade_sessions}
    assert report.trades_removed == sum(n for (s, _), n in prints.items() if s == SYMBOLS[0])
    assert lake.gaps(SYMBOLS[:1], interval="trades", days=5)
    # Pruned sessions are not claimed by the ledger any more: a wider policy would refetch them.
    assert lake.gaps(SYMBOLS[:1], interval="1day", days=120)


def test_user_days_always_win_over_a_layer_policy(tmp_path: Path) -> None:
    lake = open_lake(tmp_path)
    lake.set_layers(SYMBOLS, 3)
    plan = lake.plan(policy="scanner_layers", days=10)
    assert plan.requests
    for p in plan.requests:
        assert p.request.range.start >= days_back(10)
    for origin in plan.origins:
        assert origin.requested == DateRange(days_back(10), TODAY + timedelta(days=1))
        assert origin.source.startswith("--days 10")
    assert {o.interval for o in plan.origins} == {"1day", "1hour", "5min", "1min", "trades"}
    # The policy alone would go back 120 days.
    assert min(p.request.range.start for p in lake.plan(policy="scanner_layers").requests) < (
        days_back(100)
    )


def test_tiers_change_concurrency_never_dates(tmp_path: Path) -> None:
    caps = {s: (500e9 if i < 5 else 1e9) for i, s in enumerate(SYMBOLS)}
    plain = open_lake(tmp_path / "plain")
    tiered = open_lake(
        tmp_path / "tiered",
        "backfill:\n  use_symbol_tiers: true\n  tiers:\n"
        "    priority: {min_market_cap: 200000000000, parallel: 3}\n"
        "    archive: {min_market_cap: 0, parallel: 1}\n",
    )
    for lake in (plain, tiered):
        for sym, cap in caps.items():
            lake.add_symbols([sym], market_cap=cap)
        lake.set_layers(SYMBOLS, 1)
    a = plain.plan(policy="scanner_layers").to_dict(explain=True)
    b = tiered.plan(policy="scanner_layers").to_dict(explain=True)
    assert a == b

    in_flight: dict[str, int] = {"priority": 0, "archive": 0}
    peak = dict(in_flight)

    class Counting(DemoProvider):
        def __init__(self, config: DemoConfig) -> None:
            super().__init__(config)
            # One symbol per request: both tiers then have many requests ready at once.
            self.capabilities = replace(self.capabilities, symbols_per_request=1)

        async def fetch_page(self, request, cursor=None):  # type: ignore[no-untyped-def]
            tier = "priority" if caps[request.symbols[0]] > 1e11 else "archive"
            in_flight[tier] += 1
            peak[tier] = max(peak[tier], in_flight[tier])
            try:
                return await super().fetch_page(request, cursor)
            finally:
                in_flight[tier] -= 1

    # Distinct listing dates give each symbol its own gap, so its own request.
    sessions = get_calendar().sessions_in(DateRange(days_back(40), TODAY))
    for lake in (plain, tiered):
        for sym, session in zip(SYMBOLS, sessions, strict=False):
            lake.add_symbols([sym], listed_on=date.fromisoformat(str(session)))
    counting = Counting(DemoConfig(latency_ms=20))
    tiered = Lake.open(tiered.root, clock=tiered.clock, providers={"demo": counting})
    plan = tiered.plan(interval="1hour", days=40)
    assert plan.total_requests == len(SYMBOLS)
    result = tiered.fill(interval="1hour", days=40, parallel=10)
    assert result.status == "done"
    assert peak["archive"] == 1
    assert 2 <= peak["priority"] <= 3
    plain.fill(interval="1hour", days=40)
    assert stored(plain, "1hour", SYMBOLS).equals(stored(tiered, "1hour", SYMBOLS))


BAD_POLICIES = Path(__file__).parent / "data" / "policies"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("unknown_key.yaml", "prioritty"),
        ("negative_days.yaml", "1day"),
        ("unknown_interval.yaml", "1dya"),
        ("layer_prefixed.yaml", "layer_3"),
    ],
)
def test_bad_policy_is_one_line_exit_2_naming_file_and_key(
    tmp_path: Path, name: str, key: str
) -> None:
    import subprocess
    import sys

    root = tmp_path / "lake"
    open_lake(root)
    path = BAD_POLICIES / name
    for command in (["plan", "--policy", str(path)], ["prune", "--policy", str(path)]):
        proc = subprocess.run(
            [sys.executable, "-m", "barlake", "--lake", str(root), *command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert str(path) in lines[0] and key in lines[0]
