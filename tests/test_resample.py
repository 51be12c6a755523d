"""Resampling: coarser bars from the lake's finer ones, on read (``Lake.bars(...,
resample_from=...)``) and stored by a fill (lake.yaml ``backfill.resample``).

The expected bars are computed here with plain polars group-bys over the raw rows, never with
barlake's own aggregation."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from barlake import UsageError
from barlake.calendars.calendar import get_calendar
from barlake.cli import cli
from barlake.cli.exits import EXIT_USAGE
from barlake.domain.bars import SCHEMA
from barlake.errors import ConfigError, PermanentError
from barlake.lake import Lake
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoProvider

NOW = datetime(2024, 12, 10, 22, tzinfo=UTC)
LATER = datetime(2025, 2, 5, 22, tzinfo=UTC)
NEW_YORK = "America/New_York"
# Thanksgiving week: no session on Thursday 28 November, an early close (13:00) on Friday 29.
WEEK = {"start": date(2024, 11, 25), "end": date(2024, 12, 6)}
SYMBOLS = ["AAPL", "MSFT"]
RESAMPLE = "backfill:\n  resample: {5min: 1min, 1hour: 1min}\n"


class Counting(DemoProvider):
    """The demo provider, counting the requests it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[Request] = []

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        self.asked.append(request)
        return await super().fetch_page(request, cursor)


def open_lake(
    root: Path, provider: Counting, config: str | None = RESAMPLE, now: datetime = NOW
) -> Lake:
    Lake.init(root, clock=lambda: now, providers={"demo": provider})
    if config is not None:
        (root / "lake.yaml").write_text(config)
    return Lake.open(root, clock=lambda: now, providers={"demo": provider})


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake holding two weeks of 1min bars of two symbols, and nothing else."""
    root = tmp_path_factory.mktemp("resample") / "lake"
    lake = open_lake(root, Counting())
    lake.add_symbols(SYMBOLS)
    assert lake.fill(interval="1min", provider="demo", **WEEK).ok
    return root


@pytest.fixture
def lake(minutes: Path, tmp_path: Path) -> tuple[Lake, Counting]:
    root = tmp_path / "lake"
    shutil.copytree(minutes, root)
    provider = Counting()
    return open_lake(root, provider), provider


#: How the vendors aggregate each column, as their documentation states it.
CONVENTIONS = {
    "open": "first",
    "high": "max",
    "low": "min",
    "close": "last",
    "volume": "sum",
    "trades": "sum",
}


def vendor(fine: str) -> list[pl.Expr]:
    """The vendors' aggregation of each column, and the source the lake gives resampled bars."""
    exprs = [getattr(pl.col(name), how)() for name, how in CONVENTIONS.items()]
    vwap = (pl.col("vwap") * pl.col("volume")).sum() / pl.col("volume").sum()
    return [*exprs, vwap.alias("vwap"), pl.format("{} resampled from " + fine, "source").first()]


def vendor_style(raw: pl.DataFrame, every: str, fine: str) -> pl.DataFrame:
    """The vendors' aggregation of ``raw`` bars into ``every`` buckets of the New York clock,
    labelled by their start: first open, highest high, lowest low, last close, summed volume
    and trades, volume-weighted vwap."""
    local = pl.col("ts").dt.convert_time_zone(NEW_YORK)
    return (
        raw.sort("symbol", "ts")
        .group_by("symbol", local.dt.truncate(every).dt.convert_time_zone("UTC").alias("start"))
        .agg(vendor(fine))
        .rename({"start": "ts"})
        .select(list(SCHEMA))
        .sort("symbol", "ts")
    )


@pytest.mark.parametrize(("interval", "every"), [("5min", "5m"), ("15min", "15m"), ("1hour", "1h")])
def test_resampled_bars_equal_the_vendor_aggregation_of_the_1min_rows(
    lake: tuple[Lake, Counting], interval: str, every: str
) -> None:
    lake_, _ = lake
    raw = lake_.bars(SYMBOLS, interval="1min", **WEEK).collect()
    got = lake_.bars(SYMBOLS, interval=interval, resample_from="1min", **WEEK).collect()  # type: ignore[arg-type]
    assert got.schema == pl.Schema(SCHEMA)
    assert_frame_equal(got, vendor_style(raw, every, "1min"), check_exact=False, rel_tol=1e-12)
    # Session-open alignment: every New York session's first bar starts 09:30 (5min, 15min)
    # or on the clock hour before it (1hour), as calendar.first_bar stamps fetched ones.
    cal = get_calendar("XNYS")
    day = pl.col("ts").dt.convert_time_zone(NEW_YORK).dt.date().alias("day")
    firsts = got.group_by("symbol", day).agg(pl.col("ts").min().alias("first"))
    assert firsts.height == 2 * 9
    for _, session, first in firsts.iter_rows():
        assert first == cal.first_bar(session, interval)  # type: ignore[arg-type]


def test_an_early_close_ends_the_last_hour_at_the_close(lake: tuple[Lake, Counting]) -> None:
    lake_, _ = lake
    friday = date(2024, 11, 29)
    hours = lake_.bars("AAPL", interval="1hour", resample_from="1min", start=friday, end=friday)
    got = hours.collect()
    local = got["ts"].dt.convert_time_zone(NEW_YORK).dt.hour().to_list()
    assert local == [9, 10, 11, 12]  # 09:00 holds 09:30-10:00; nothing after the 13:00 close
    assert got.height == get_calendar("XNYS").bars_in_session(friday, "1hour")
    raw = lake_.bars("AAPL", interval="1min", start=friday, end=friday).collect()
    first_half = raw.filter(pl.col("ts") < datetime(2024, 11, 29, 15, tzinfo=UTC))
    assert first_half.height == 30
    assert got["volume"][0] == first_half["volume"].sum()
    assert got["close"][-1] == raw["close"][-1]


def test_a_partial_last_bar_holds_only_the_minutes_before_an_early_close(tmp_path: Path) -> None:
    # London closes at 12:30 on Christmas Eve: the 12:00 hour holds 30 minutes.
    lake = Lake.init(tmp_path / "lake", clock=lambda: LATER)
    lake.add_symbols("VOD", calendar="XLON")
    eve = date(2024, 12, 24)
    opened, closed = get_calendar("XLON").open_close(eve)
    n = int((closed - opened).total_seconds() // 60)
    ts = [opened + timedelta(minutes=i) for i in range(n)]
    price = [100.0 + i / 100 for i in range(n)]
    minutes = pl.DataFrame(
        {
            "symbol": ["VOD"] * n,
            "ts": ts,
            "open": price,
            "high": [p + 0.5 for p in price],
            "low": [p - 0.5 for p in price],
            "close": price,
            "volume": [float(10 + i) for i in range(n)],
            "vwap": price,
            "trades": [None] * n,
            "source": ["test"] * n,
        }
    )
    lake.store.write("1min", minutes)
    got = lake.bars("VOD", interval="1hour", resample_from="1min", start=eve, end=eve).collect()
    assert [t.hour for t in got["ts"]] == [8, 9, 10, 11, 12]
    last = minutes.filter(pl.col("ts") >= datetime(2024, 12, 24, 12, tzinfo=UTC))
    assert last.height == 30
    assert got.row(-1, named=True)["volume"] == last["volume"].sum()
    assert got.row(-1, named=True)["close"] == last["close"][-1]
    assert got["trades"].is_null().all()  # no counts in, none made up


def test_weeks_and_months_follow_the_exchange_around_holidays(tmp_path: Path) -> None:
    lake = open_lake(tmp_path / "lake", Counting(), config=None, now=LATER)
    lake.add_symbols("AAPL")
    stored = {"start": date(2024, 10, 28), "end": date(2025, 1, 31)}
    assert lake.fill(interval="1day", provider="demo", **stored).ok
    span = {"start": date(2024, 11, 1), "end": date(2025, 1, 31)}
    daily = lake.bars("AAPL", **stored).collect()
    weeks = lake.bars("AAPL", interval="1week", **span).collect()
    months = lake.bars("AAPL", interval="1month", **span).collect()

    def by(every: str) -> pl.DataFrame:
        # Plain group-by of the daily rows: Monday weeks or calendar months (all that the
        # span touches), stamped by their first stored session.
        key = pl.col("ts").dt.truncate(every)
        first = datetime.combine(span["start"], datetime.min.time(), UTC)
        return (
            daily.filter(key >= pl.lit(first).dt.truncate(every))
            .group_by("symbol", key.alias("k"))
            .agg(pl.col("ts").min(), *vendor("1day"))
            .select(list(SCHEMA))
            .sort("symbol", "ts")
        )

    assert_frame_equal(weeks, by("1w"), check_exact=False, rel_tol=1e-12)
    assert_frame_equal(months, by("1mo"), check_exact=False, rel_tol=1e-12)
    stamps = weeks["ts"].dt.date().to_list()
    assert stamps[0] == date(2024, 10, 28)  # 1 November is a Friday: its week, whole
    assert date(2024, 11, 25) in stamps  # Thanksgiving week: Monday, 4 sessions
    assert date(2025, 1, 21) in stamps  # Martin Luther King Day: the week starts Tuesday
    assert date(2025, 1, 20) not in stamps
    # Holidays (Thanksgiving, Christmas, New Year, MLK Day, and 9 January 2025, a national
    # day of mourning) leave five weeks of four sessions.
    weekly_sessions = daily.group_by(pl.col("ts").dt.truncate("1w")).len()
    assert weekly_sessions.filter(pl.col("len") == 4).height == 5
    firsts = [date(2024, 11, 1), date(2024, 12, 2), date(2025, 1, 2)]  # 1 January: closed
    assert months["ts"].dt.date().to_list() == firsts
    # A window touching a week or month reads it whole, stamped by its first session.
    boxing = lake.bars("AAPL", interval="1week", start=date(2024, 12, 26), end=date(2024, 12, 26))
    one = boxing.collect()
    assert one["ts"].dt.date().to_list() == [date(2024, 12, 23)]
    monday = datetime(2024, 12, 23, tzinfo=UTC)
    christmas_week = daily.filter(pl.col("ts").dt.truncate("1w") == monday)
    assert christmas_week.height == 4  # no session on the 25th
    assert one["volume"][0] == christmas_week["volume"].sum()
    jan = lake.bars("AAPL", interval="1month", start=date(2025, 1, 15), end=date(2025, 1, 15))
    assert jan.collect()["ts"].dt.date().to_list() == [date(2025, 1, 2)]


def test_a_5min_fill_after_1min_makes_no_request(lake: tuple[Lake, Counting]) -> None:
    lake_, provider = lake
    plan = lake_.plan(interval="5min", provider="demo", **WEEK)
    assert plan.total_requests == 0
    assert plan.to_dict()["resampled_sessions"] == 2 * 9
    result = lake_.fill(interval="5min", provider="demo", **WEEK)
    assert result.ok
    assert provider.asked == []
    assert result.requests == 0
    stored = lake_.bars(interval="5min", **WEEK).collect()
    on_read = lake_.bars(interval="5min", resample_from="1min", **WEEK).collect()
    assert stored.height == 2 * (8 * 78 + 42)  # the early close has 42 five-minute bars
    assert result.bars_written == stored.height
    assert_frame_equal(stored, on_read)
    assert stored["source"].unique().to_list() == ["demo resampled from 1min"]
    ledger = lake_.catalog.query(
        "SELECT provider, symbol, start_date, end_date, bars, final, job_id FROM ledger "
        "WHERE interval = '5min' ORDER BY symbol"
    )
    assert ledger["provider"].to_list() == ["resample", "resample"]
    assert ledger["bars"].to_list() == [8 * 78 + 42] * 2
    assert ledger["final"].all()
    assert set(ledger["job_id"]) == {result.job_id}
    assert lake_.gaps(interval="5min", **WEEK) == []
    assert lake_.plan(interval="5min", provider="demo", **WEEK).to_dict()["resampled"] == []
    status = lake_.status(result.job_id)
    assert status["status"] == "done"


def test_sessions_without_1min_bars_are_fetched(lake: tuple[Lake, Counting]) -> None:
    lake_, provider = lake
    wider = {"start": date(2024, 11, 18), "end": date(2024, 12, 6)}
    result = lake_.fill(interval="5min", provider="demo", **wider)
    assert result.ok
    assert provider.asked, "the week before has no 1min bars: it is fetched"
    assert {r.interval for r in provider.asked} == {"5min"}
    assert all(r.range.end <= WEEK["start"] for r in provider.asked)
    sources = (
        lake_.bars(interval="5min", **wider)
        .collect()
        .group_by(pl.col("ts").dt.date() >= WEEK["start"])
        .agg(pl.col("source").unique())
    )
    found = {k: v for k, v in sources.iter_rows()}
    assert found == {False: ["demo"], True: ["demo resampled from 1min"]}


def test_one_fill_of_1min_and_5min_fetches_only_the_1min_bars(tmp_path: Path) -> None:
    provider = Counting()
    lake = open_lake(tmp_path / "lake", provider)
    lake.add_symbols(SYMBOLS)
    plan = lake.plan(interval=["1min", "5min", "1hour"], provider="demo", **WEEK)
    assert {r.request.interval for r in plan.requests} == {"1min"}
    result = lake.fill(interval=["1min", "5min", "1hour"], provider="demo", **WEEK)
    assert result.ok
    assert {r.interval for r in provider.asked} == {"1min"}
    for interval in ("5min", "1hour"):
        stored = lake.bars(interval=interval, **WEEK).collect()  # type: ignore[arg-type]
        on_read = lake.bars(interval=interval, resample_from="1min", **WEEK).collect()  # type: ignore[arg-type]
        assert stored.height > 0
        assert_frame_equal(stored, on_read)
    assert lake.gaps(interval=["1min", "5min", "1hour"], **WEEK) == []


def test_without_the_setting_5min_bars_are_fetched(minutes: Path, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(minutes, root)
    (root / "lake.yaml").unlink()
    provider = Counting()
    lake = Lake.open(root, clock=lambda: NOW, providers={"demo": provider})
    assert lake.plan(interval="5min", provider="demo", **WEEK).total_requests > 0
    assert lake.fill(interval="5min", provider="demo", **WEEK).requests > 0
    assert {r.interval for r in provider.asked} == {"5min"}


def test_halted_sessions_stay_covered_when_resampled(tmp_path: Path) -> None:
    provider = Counting()
    lake = open_lake(tmp_path / "lake", provider)
    lake.add_symbols("HALTA")
    assert lake.fill(interval="1min", provider="demo", **WEEK).ok
    halted = lake.catalog.query(
        "SELECT count(*) AS n FROM ledger WHERE interval = '1min' AND bars = 0 AND final"
    )["n"][0]
    assert halted > 0
    asked = len(provider.asked)
    result = lake.fill(interval="5min", provider="demo", **WEEK)
    assert result.ok
    assert result.symbol_warnings == {}
    assert len(provider.asked) == asked
    assert lake.gaps("HALTA", interval="5min", **WEEK) == []
    empty = lake.catalog.query(
        "SELECT count(*) AS n FROM ledger WHERE interval = '5min' AND bars = 0 AND final"
    )["n"][0]
    assert empty == halted


def test_resampling_refuses_a_source_that_does_not_fit(lake: tuple[Lake, Counting]) -> None:
    lake_, _ = lake
    with pytest.raises(UsageError, match=r"cannot resample 5min bars from 15min bars.*1min"):
        lake_.bars(interval="5min", resample_from="15min")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="cannot resample 1week bars from 1min"):
        lake_.bars(interval="1week", resample_from="1min")
    with pytest.raises(UsageError, match="unknown interval '2min'"):
        lake_.bars(interval="2min", resample_from="1min")  # type: ignore[arg-type]


def test_lake_yaml_refuses_a_resample_that_does_not_fit(tmp_path: Path) -> None:
    lake = open_lake(tmp_path / "lake", Counting(), config="backfill:\n  resample: {5min: 15min}\n")
    with pytest.raises(ConfigError, match=r"backfill\.resample\.5min: 15min bars cannot make"):
        lake.plan(interval="5min", provider="demo", **WEEK)


def test_lake_plan_lists_the_sessions_it_resamples(minutes: Path, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    shutil.copytree(minutes, root)
    dates = ["--start", "2024-11-25", "--end", "2024-12-06"]
    args = ["--lake", str(root), "plan", "--provider", "demo", "--interval", "5min", *dates]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    line = "resampled 5min from stored 1min bars (no request): 18 session(s) of AAPL,MSFT"
    assert line in result.output
    assert "0 request(s)" in result.output


def test_a_resample_lake_yaml_cannot_do_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    open_lake(root, Counting(), config="backfill:\n  resample: {1hour: 1day}\n")
    args = ["--lake", str(root), "plan", "--provider", "demo", "--interval", "1hour", "--days", "5"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE
    assert "Traceback" not in result.output
    message = (
        "backfill.resample.1hour: 1day bars cannot make 1hour bars (the source must be a finer "
        "intraday interval that divides it); use 1min or 5min or 15min or 30min"
    )
    assert message in result.output


class FailingMinutes(Counting):
    """The demo provider, refusing MSFT's 1min bars."""

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        if request.interval == "1min" and "MSFT" in request.symbols:
            self.asked.append(request)
            raise PermanentError("MSFT 1min: not entitled", symbol="MSFT")
        return await super().fetch_page(request, cursor)


def test_a_session_whose_1min_fetch_failed_stays_a_5min_gap(tmp_path: Path) -> None:
    provider = FailingMinutes()
    lake = open_lake(tmp_path / "lake", provider)
    lake.add_symbols(SYMBOLS)
    result = lake.fill(interval=["1min", "5min"], provider="demo", **WEEK)
    assert result.status == "partial"
    assert {r.interval for r in provider.asked} == {"1min"}
    stages = {(e["interval"], e["stage"]) for e in result.symbol_errors["MSFT"]}
    assert stages == {("1min", "fetch"), ("5min", "resample")}
    assert "AAPL" not in result.symbol_errors
    assert lake.bars("MSFT", interval="5min", **WEEK).collect().is_empty()
    gaps = lake.gaps(interval="5min", **WEEK)
    assert [(g.symbol, g.sessions) for g in gaps] == [("MSFT", 9)]
    # Once MSFT's 1min bars are stored, the next 5min fill resamples them: no 5min request.
    lake = Lake.open(tmp_path / "lake", clock=lambda: NOW, providers={"demo": Counting()})
    assert lake.fill(interval="1min", provider="demo", **WEEK).ok
    again = lake.fill(interval="5min", provider="demo", **WEEK)
    assert again.ok
    assert again.requests == 0
    assert lake.gaps(interval="5min", **WEEK) == []


def test_resampled_bars_can_be_resampled_again_in_the_same_fill(tmp_path: Path) -> None:
    provider = Counting()
    config = "backfill:\n  resample: {5min: 1min, 15min: 5min, 1hour: 15min}\n"
    lake = open_lake(tmp_path / "lake", provider, config=config)
    lake.add_symbols(SYMBOLS)
    intervals = ["1min", "5min", "15min", "1hour"]
    result = lake.fill(interval=intervals, provider="demo", **WEEK)
    assert result.ok
    assert {r.interval for r in provider.asked} == {"1min"}
    for interval in ("15min", "1hour"):
        stored = lake.bars(interval=interval, **WEEK).collect()  # type: ignore[arg-type]
        direct = lake.bars(interval=interval, resample_from="1min", **WEEK).collect()  # type: ignore[arg-type]
        assert_frame_equal(stored, direct, check_exact=False, rel_tol=1e-12)
    assert lake.gaps(interval=intervals, **WEEK) == []


class NoFiveMinutes(Counting):
    """The demo provider, without 5min bars."""

    def __init__(self) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, intervals=("1min", "1day"))


def test_an_interval_the_provider_lacks_is_made_from_stored_bars(
    lake: tuple[Lake, Counting], tmp_path: Path
) -> None:
    lake_, _ = lake
    provider = NoFiveMinutes()
    lake_ = Lake.open(lake_.root, clock=lambda: NOW, providers={"demo": provider})
    wider = {"start": date(2024, 11, 18), "end": date(2024, 12, 6)}
    plan = lake_.plan(interval="5min", provider="demo", **wider)
    assert plan.total_requests == 0
    (skip,) = plan.skipped
    assert skip.symbols == ("AAPL", "MSFT")
    assert "demo does not serve 5min bars" in skip.reason
    assert "not stored for 10 session(s): fill 1min first" in skip.reason
    result = lake_.fill(interval="5min", provider="demo", **wider)
    assert result.ok
    assert provider.asked == []
    assert {g.range.start for g in lake_.gaps(interval="5min", **wider)} == {wider["start"]}
    assert lake_.gaps(interval="5min", **WEEK) == []
