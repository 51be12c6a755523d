"""Corporate actions: the catalog table, the demo's splits and dividends against its raw bars,
``lake actions``, and adjusted reads checked against references computed here by hand."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest
from click.testing import CliRunner

from barlake.cli import cli
from barlake.domain.actions import Action
from barlake.domain.ranges import DateRange

START, END = date(2020, 6, 1), date(2020, 11, 30)
SPLIT_DAY = date(2020, 8, 31)


def invoke(root, *args):
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)


@pytest.fixture
def aapl(lake):
    """A lake with AAPL's daily bars of 2020-06..11 and its actions (a 4:1 split on
    2020-08-31 and a dividend before and after it)."""
    lake.add_symbols("AAPL,MSFT")
    assert lake.fill("AAPL", interval="1day", start=START, end=END).status == "done"
    fetched = lake.fetch_actions("AAPL", start=START, end=END)
    assert fetched.errors == {} and fetched.requests == 1
    return lake


def _daily_closes(lake) -> dict[date, float]:
    raw = lake.bars("AAPL", interval="1day").collect()
    return dict(zip(raw["ts"].dt.date().to_list(), raw["close"].to_list(), strict=True))


def test_the_demo_records_a_4_to_1_split_and_two_dividends_its_raw_bars_show(aapl):
    rows = aapl.actions("AAPL")
    kinds = [(r["type"], r["ex_date"]) for r in rows]
    assert ("split", SPLIT_DAY) in kinds
    dividends = [r for r in rows if r["type"] == "cash_dividend"]
    assert len(dividends) == 2
    assert [r["ratio"] for r in rows if r["type"] == "split"] == [4.0]
    closes = _daily_closes(aapl)
    days = sorted(closes)
    before = days[days.index(SPLIT_DAY) - 1]
    # Raw bars jump by the ratio on the ex-date: the session's own move is a few percent.
    assert closes[before] / closes[SPLIT_DAY] == pytest.approx(4.0, rel=0.1)
    assert all(r["source"] == "demo" for r in rows)


def test_fetching_actions_again_stores_each_once(aapl):
    again = aapl.fetch_actions("AAPL", start=START, end=END)
    assert again.actions == 3 and again.new == 0
    assert len(aapl.actions("AAPL")) == 3


def _reference(closes: dict[date, float], actions: list[dict], how: str):
    """Hand-computed backward factors: for a bar on day d, the product over actions after d
    of 1/ratio (splits) and 1 - amount / close of the session before (dividends)."""
    days = sorted(closes)

    def factor(d: date) -> tuple[float, float]:
        price, volume = 1.0, 1.0
        for a in actions:
            if a["ex_date"] <= d:
                continue
            if a["type"] == "split":
                price /= a["ratio"]
                volume *= a["ratio"]
            elif how == "total":
                prior = max(x for x in days if x < a["ex_date"])
                price *= 1 - a["amount"] / closes[prior]
        return price, volume

    return factor


@pytest.mark.parametrize("how", ["splits", "total"])
def test_adjusted_daily_closes_equal_a_hand_computed_reference(aapl, how):
    closes = _daily_closes(aapl)
    raw = aapl.bars("AAPL").collect()
    factor = _reference(closes, aapl.actions("AAPL"), how)
    adjusted = aapl.bars("AAPL", adjust=how).collect()
    assert adjusted["ts"].to_list() == raw["ts"].to_list()
    expected = [c * factor(t.date())[0] for t, c in zip(raw["ts"], raw["close"], strict=True)]
    volumes = [v * factor(t.date())[1] for t, v in zip(raw["ts"], raw["volume"], strict=True)]
    assert adjusted["close"].to_list() == pytest.approx(expected, rel=1e-12)
    assert adjusted["volume"].to_list() == pytest.approx(volumes, rel=1e-12)
    # The adjusted series has no split left in it.
    jump = adjusted.filter(pl.col("ts").dt.date() == SPLIT_DAY)["close"][0]
    before = adjusted.filter(pl.col("ts").dt.date() < SPLIT_DAY)["close"][-1]
    assert 0.8 < jump / before < 1.25
    if how == "total":
        first = expected[0] / raw["close"][0]
        assert first < 0.25 * 0.999  # two dividends shave more off than the split alone


@pytest.mark.parametrize("how", ["splits", "total"])
def test_adjusted_minute_closes_equal_a_hand_computed_reference(aapl, how):
    aapl.fill("AAPL", interval="1min", start=date(2020, 8, 27), end=date(2020, 9, 1))
    closes = _daily_closes(aapl)
    factor = _reference(closes, aapl.actions("AAPL"), how)
    raw = aapl.bars("AAPL", interval="1min").collect()
    adjusted = aapl.bars("AAPL", interval="1min", adjust=how).collect()
    assert raw.height == adjusted.height > 1000
    expected = [c * factor(t.date())[0] for t, c in zip(raw["ts"], raw["close"], strict=True)]
    assert adjusted["close"].to_list() == pytest.approx(expected, rel=1e-12)
    assert adjusted["ts"].to_list() == raw["ts"].to_list()


def test_a_split_recorded_later_changes_adjusted_reads_and_refetches_nothing(aapl):
    aapl.add_symbols("MSFT")
    aapl.fill("MSFT", interval="1day", start=START, end=END)
    before = aapl.bars("MSFT", adjust="splits").collect()
    raw = aapl.bars("MSFT").collect()
    assert before["close"].to_list() == raw["close"].to_list()
    aapl.catalog.record_actions(
        pl.DataFrame(
            [
                {
                    **Action("MSFT", "split", date(2020, 9, 15), "manual", ratio=2.0).to_dict(),
                    "fetched_at": aapl.clock(),
                }
            ]
        )
    )
    plan = aapl.plan("AAPL,MSFT", interval="1day", start=START, end=END)
    assert plan.total_requests == 0
    after = aapl.bars("MSFT", adjust="splits").collect()
    early = after.filter(pl.col("ts").dt.date() < date(2020, 9, 15))
    assert early["close"].to_list() == pytest.approx(
        [c / 2 for c in raw.filter(pl.col("ts").dt.date() < date(2020, 9, 15))["close"]]
    )


def test_an_announced_action_adjusts_nothing_yet(aapl):
    raw = aapl.bars("MSFT").collect()
    future = Action("MSFT", "split", date(2025, 6, 2), "manual", ratio=3.0).to_dict()
    aapl.catalog.record_actions(pl.DataFrame([{**future, "fetched_at": aapl.clock()}]))
    assert aapl.bars("MSFT", adjust="total").collect().equals(raw)


def test_adjust_refuses_an_unknown_mode_in_one_line(aapl):
    from barlake.errors import UsageError

    with pytest.raises(UsageError, match="adjust must be one of none, splits, total"):
        aapl.bars("AAPL", adjust="dividends")  # type: ignore[arg-type]


def test_lake_actions_list_json_and_fetch(lake_root, lake):
    lake.add_symbols("AAPL")
    fetched = invoke(
        lake_root,
        "actions",
        "fetch",
        "--symbols",
        "AAPL",
        "--start",
        "2020-06-01",
        "--end",
        "2020-11-30",
        "--json",
    )
    assert fetched.exit_code == 0, fetched.output
    assert json.loads(fetched.stdout)["actions"] == 3
    listed = invoke(lake_root, "actions", "list", "--symbols", "AAPL", "--json")
    rows = json.loads(listed.stdout)
    assert [(r["symbol"], r["type"], r["ex_date"], r["ratio"], r["source"]) for r in rows][1] == (
        "AAPL",
        "split",
        "2020-08-31",
        4.0,
        "demo",
    )
    assert all(r["amount"] > 0 for r in rows if r["type"] == "cash_dividend")
    bad = invoke(lake_root, "actions", "list", "--type", "bonus")
    assert bad.exit_code == 2 and "unknown action type 'bonus'" in bad.stderr


def test_the_readme_duckdb_split_adjusted_read_matches_lake_bars(aapl, monkeypatch):
    import re
    from pathlib import Path

    import duckdb

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    sql = re.search(r'SPLIT_ADJUSTED = """(.*?)"""', readme, re.S)
    assert sql is not None
    monkeypatch.chdir(aapl.root.parent)
    text = sql.group(1).replace("'lake/", f"'{aapl.root.name}/")
    con = duckdb.connect()
    con.execute(text.split(";")[0])
    got = con.sql(text.split(";", 1)[1]).pl()
    want = aapl.bars(adjust="splits").collect()
    assert got["close"].to_list() == pytest.approx(want["close"].to_list(), rel=1e-12)
    assert got["volume"].to_list() == pytest.approx(want["volume"].to_list(), rel=1e-12)
    assert got["ts"].to_list() == want["ts"].to_list()


def _rules(result, symbol):
    return {(f.rule, f.first, f.last) for f in result.findings if f.symbol == symbol}


def test_lake_check_knows_splits_and_reports_unexplained_jumps_and_actions_without_one(aapl):
    aapl.fill("MSFT", interval="1day", start=START, end=END)
    msft = aapl.bars("MSFT").collect()
    # An unexplained 3:1-like jump from 2020-10-01 on, and a 2:1 split on record with no jump.
    late = pl.col("ts").dt.date() < date(2020, 10, 1)
    aapl.store.write(
        "1day",
        msft.with_columns(
            *(
                pl.when(late).then(pl.col(c) * 3).otherwise(pl.col(c))
                for c in ("open", "high", "low", "close", "vwap")
            )
        ),
    )
    wrong = Action("MSFT", "split", date(2020, 7, 15), "manual", ratio=2.0).to_dict()
    aapl.catalog.record_actions(pl.DataFrame([{**wrong, "fetched_at": aapl.clock()}]))
    result = aapl.check("AAPL,MSFT", interval="1day", start=START, end=END)
    assert not [f for f in result.findings if f.symbol == "AAPL" and f.rule == "jump"]
    jumps = [f for f in result.findings if f.symbol == "MSFT" and f.rule == "jump"]
    assert [(f.first, f.last) for f in jumps] == [("2020-09-30", "2020-10-01")]
    assert "split-like jump, no corporate action on record" in jumps[0].message
    lone = [f for f in result.findings if f.rule == "action_no_jump"]
    assert [(f.symbol, f.last) for f in lone] == [("MSFT", "2020-07-15")]
    assert "ratio 2" in lone[0].message and "manual" in lone[0].message


def test_without_the_split_on_record_lake_check_flags_it(lake_root):
    from tests.conftest import clock

    from barlake.lake import Lake

    (lake_root / "lake.yaml").write_text("backfill:\n  fetch_actions: false\n")
    lake = Lake.open(lake_root, clock=clock)
    lake.add_symbols("AAPL")
    assert lake.fill("AAPL", interval="1day", start=START, end=END).actions == 0
    assert lake.actions() == []
    result = lake.check("AAPL", interval="1day", start=START, end=END)
    assert ("jump", "2020-08-28", "2020-08-31") in _rules(result, "AAPL")


def test_lake_check_reports_a_series_mixing_split_adjusted_and_raw_rows(aapl):
    raw = aapl.bars("AAPL").collect()
    yahoo = raw.filter(pl.col("ts").dt.date() >= date(2020, 10, 1)).with_columns(
        source=pl.lit("yahoo")
    )
    aapl.store.write("1day", yahoo)
    result = aapl.check("AAPL", interval="1day", start=START, end=END)
    mixed = [f for f in result.findings if f.rule == "mixed_adjustment"]
    assert [(f.symbol, f.first, f.last) for f in mixed] == [("AAPL", "2020-06-01", "2020-11-30")]
    assert "yahoo" in mixed[0].message and "demo" in mixed[0].message
    # Adjusted reads leave the splits of split-adjusted rows alone: the split is before them.
    adjusted = aapl.bars("AAPL", adjust="splits").collect()
    assert (
        adjusted.filter(pl.col("source") == "yahoo")["close"].to_list() == yahoo["close"].to_list()
    )


def test_a_fill_fetches_its_symbols_actions_once_planned_and_in_the_ledger(lake):
    lake.add_symbols("AAPL,MSFT")
    plan = lake.plan("AAPL,MSFT", interval="1day", start=START, end=END)
    assert plan.to_dict()["total_action_requests"] == 1  # one batch for both symbols
    assert plan.actions[0].symbols == ("AAPL", "MSFT")
    result = lake.fill("AAPL,MSFT", interval="1day", start=START, end=END)
    assert (result.action_requests, result.actions) == (1, len(lake.actions()))
    assert ("split", SPLIT_DAY) in {(r["type"], r["ex_date"]) for r in lake.actions("AAPL")}
    ledger = lake.catalog.ledger("actions", DateRange(START, END), ["AAPL", "MSFT"])
    assert ledger["symbol"].to_list() == ["AAPL", "MSFT"] and ledger["final"].all()
    # Nothing left to fetch: no bar request, no action request.
    again = lake.plan("AAPL,MSFT", interval="1day", start=START, end=END)
    assert (again.total_requests, len(again.actions)) == (0, 0)
    rerun = lake.fill("AAPL,MSFT", interval="1day", start=START, end=END)
    assert (rerun.requests, rerun.action_requests) == (0, 0)
    # A longer range asks only for the days not yet asked.
    longer = lake.plan("AAPL", interval="1day", start=START, end=date(2020, 12, 31))
    assert [(a.range.start, a.range.last) for a in longer.actions] == [
        (date(2020, 12, 1), date(2020, 12, 31))
    ]


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["actions", "fetch", "--provider", "binance"], 2, "serves no corporate actions"),
        (["actions", "fetch", "--symbols", "NOPE"], 2, "unknown symbol(s) NOPE"),
        (["actions", "list", "--start", "2020-13-01"], 2, "is not an ISO date"),
    ],
)
def test_bad_actions_input_is_one_line_and_writes_nothing(
    lake_root, lake, capsys, args, code, line
):
    from barlake.cli import main

    lake.add_symbols("AAPL")
    with pytest.raises(SystemExit) as exit_:
        main(["--lake", str(lake_root), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == code and line in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert lake.actions() == []


def test_intraday_total_adjustment_without_daily_bars_uses_the_last_intraday_close(lake):
    lake.add_symbols("AAPL")
    lake.fill("AAPL", interval="1min", start=date(2020, 10, 16), end=date(2020, 10, 20))
    lake.fetch_actions("AAPL", start=date(2020, 10, 16), end=date(2020, 10, 20))
    (dividend,) = [a for a in lake.actions("AAPL") if a["type"] == "cash_dividend"]
    assert dividend["ex_date"] == date(2020, 10, 20)
    raw = lake.bars("AAPL", interval="1min").collect()
    before = raw.filter(pl.col("ts").dt.date() < dividend["ex_date"])
    factor = 1 - dividend["amount"] / before["close"][-1]
    adjusted = lake.bars("AAPL", interval="1min", adjust="total").collect()
    expected = [
        c * (factor if t.date() < dividend["ex_date"] else 1.0)
        for t, c in zip(raw["ts"], raw["close"], strict=True)
    ]
    assert adjusted["close"].to_list() == pytest.approx(expected, rel=1e-12)


def test_lake_plan_lists_the_action_requests(lake_root, lake):
    lake.add_symbols("AAPL,MSFT")
    shown = invoke(
        lake_root, "plan", "AAPL", "MSFT", "--start", "2020-06-01", "--end", "2020-11-30"
    )
    assert shown.exit_code == 0, shown.output
    assert "corporate actions 2020-06-01..2020-11-30 of AAPL,MSFT" in shown.stdout
    data = json.loads(invoke(lake_root, "plan", "AAPL", "--days", "5", "--json").stdout)
    assert data["total_action_requests"] == 1 and data["action_requests"][0]["symbols"] == ["AAPL"]


def test_split_adjusted_rows_raise_no_action_without_a_jump(aapl):
    raw = aapl.bars("AAPL").collect()
    before = pl.col("ts").dt.date() < SPLIT_DAY
    yahoo = raw.with_columns(
        *(
            pl.when(before).then(pl.col(c) / 4).otherwise(pl.col(c))
            for c in ("open", "high", "low", "close", "vwap")
        ),
        source=pl.lit("yahoo"),
    )
    aapl.store.write("1day", yahoo)
    result = aapl.check("AAPL", interval="1day", start=START, end=END)
    rules = {f.rule for f in result.findings if f.symbol == "AAPL"}
    assert "action_no_jump" not in rules and "jump" not in rules and "mixed_adjustment" not in rules
    # Adjusted reads leave its splits alone: the closes are Yahoo's.
    assert (
        aapl.bars("AAPL", adjust="splits").collect()["close"].to_list() == yahoo["close"].to_list()
    )
