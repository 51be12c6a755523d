"""Nothing a fill fetched is lost or claimed silently: sessions with rejected bars, answers that
are empty for a whole symbol, symbols a provider refuses as unknown, and requests stopped part
way (Ctrl-C, retries run out)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from barlake import Lake
from barlake.cli import cli
from barlake.domain.ranges import DateRange
from barlake.errors import Interrupted, TransientError
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoProvider, generate

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
WEEK = {"start": date(2024, 6, 3), "end": date(2024, 6, 7)}  # 5 sessions
EVERYTHING = DateRange(date(2024, 1, 1), date(2025, 1, 1))


def lake_with(tmp_path: Path, provider: DemoProvider, symbols: str = "AAA,BBB") -> Lake:
    lake = Lake.init(tmp_path, clock=lambda: NOW, providers={"demo": provider})
    lake.add_symbols(symbols)
    return lake


def stored(lake: Lake, interval: str) -> pl.DataFrame:
    return lake.bars(interval=interval).collect()


def ledger(lake: Lake, interval: str) -> list[tuple[str, date, date, int, bool]]:
    rows = lake.catalog.ledger(interval, EVERYTHING)
    return [
        (s, lo, hi, n, final)
        for s, lo, hi, final, n in rows.select(
            "symbol", "start_date", "end_date", "final", "bars"
        ).iter_rows()
    ]


# -- a session with a rejected bar stays a gap ------------------------------------------------

BAD_BAR = datetime(2024, 6, 5, 15, 0, tzinfo=UTC)  # 11:00 in New York, mid-session


class OneBadBar(DemoProvider):
    """The demo, whose answers hold one impossible 15-minute bar of AAA while ``bad``."""

    def __init__(self) -> None:
        super().__init__()
        self.bad = True
        self.asked: list[Request] = []

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        self.asked.append(request)
        page = await super().fetch_page(request, cursor)
        if not self.bad:
            return page
        hit = (pl.col("symbol") == "AAA") & (pl.col("ts") == BAD_BAR)
        bars = page.bars.with_columns(close=pl.when(hit).then(float("nan")).otherwise("close"))
        return Page(bars, page.next_cursor)


def test_a_session_with_a_rejected_bar_is_fetched_again_until_it_comes_back_whole(
    tmp_path: Path,
) -> None:
    provider = OneBadBar()
    lake = lake_with(tmp_path, provider)
    first = lake.fill(interval="15min", **WEEK)
    assert first.symbol_errors["AAA"][0]["stage"] == "validate"
    on_the_day = stored(lake, "15min").filter(pl.col("ts").dt.date() == date(2024, 6, 5))
    assert dict(on_the_day.group_by("symbol").len().iter_rows()) == {"AAA": 25, "BBB": 26}
    # The other bars of the session are kept, but the session is not covered.
    gaps = lake.gaps(interval="15min", **WEEK)
    assert [(g.symbol, g.range, g.sessions) for g in gaps] == [
        ("AAA", DateRange(date(2024, 6, 5), date(2024, 6, 6)), 1)
    ]
    check = lake.check(interval="15min", **WEEK)
    assert [(f.rule, f.symbol, f.first) for f in check.findings if f.rule == "gap"] == [
        ("gap", "AAA", "2024-06-05")
    ]
    provider.bad, asked = False, len(provider.asked)
    second = lake.fill(interval="15min", **WEEK)
    assert second.status == "done"
    assert [(r.symbols, r.range) for r in provider.asked[asked:]] == [
        (("AAA",), DateRange(date(2024, 6, 5), date(2024, 6, 6)))
    ]
    assert lake.gaps(interval="15min", **WEEK) == []
    want = generate(["AAA", "BBB"], "15min", DateRange(date(2024, 6, 3), date(2024, 6, 8)))
    assert stored(lake, "15min").select(want.columns).equals(want)
    assert lake.fill(interval="15min", **WEEK).requests == 0


# -- an answer empty for every session of a symbol ---------------------------------------------


class Omitting(DemoProvider):
    """A vendor that leaves symbols it does not know out of its answer, as Alpaca does."""

    def __init__(self, unknown: str = "MSTF") -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, refuses_unknown=False)
        self.unknown = unknown
        self.calls: Counter[str] = Counter()

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        self.calls.update(request.symbols)
        page = await super().fetch_page(request, cursor)
        return Page(page.bars.filter(pl.col("symbol") != self.unknown), page.next_cursor)


def test_a_symbol_the_vendor_omits_is_a_warning_and_asked_again(tmp_path: Path) -> None:
    provider = Omitting()
    lake = lake_with(tmp_path, provider, "AAA,MSTF")
    result = lake.fill(interval="1day", **WEEK)
    assert result.status == "partial"
    assert set(result.symbol_errors) == {"MSTF"}
    [warning] = result.symbol_errors["MSTF"]
    assert warning["stage"] == "fetch"
    assert "no 1day bars for any session of 2024-06-03..2024-06-07" in warning["error"]
    assert lake.status()["progress"] == {"done": 1, "warning": 1}
    assert lake.errors()["MSTF"][0]["error"] == warning["error"]
    # Nothing is claimed: MSTF is still a gap, the check says why, the next fill asks again.
    assert [(g.symbol, g.sessions) for g in lake.gaps(interval="1day", **WEEK)] == [("MSTF", 5)]
    assert [s for s, *_ in ledger(lake, "1day")] == ["AAA"]
    findings = lake.check(interval="1day", **WEEK).findings
    assert [(f.rule, f.severity, f.symbol) for f in findings if f.rule == "no_data"] == [
        ("no_data", "warning", "MSTF")
    ]
    again = lake.fill(interval="1day", **WEEK)
    assert (again.requests, provider.calls["MSTF"], list(again.symbol_errors)) == (1, 2, ["MSTF"])


def test_an_empty_answer_covers_the_sessions_of_a_symbol_the_vendor_has_shown(
    tmp_path: Path,
) -> None:
    # NEWCO lists on 2024-06-03 (a demo rule the catalog does not know).
    provider = Omitting()
    lake = lake_with(tmp_path, provider, "NEWCO")
    assert lake.fill(interval="1day", **WEEK).status == "done"  # bars: the vendor knows it
    may = {"start": date(2024, 5, 20), "end": date(2024, 5, 31)}
    before = lake.fill(interval="1day", **may)
    assert (before.status, before.symbol_errors) == ("done", {})
    assert ("NEWCO", date(2024, 5, 20), date(2024, 6, 1), 0, True) in ledger(lake, "1day")
    assert lake.gaps(interval="1day", **may) == []
    assert lake.fill(interval="1day", **may).requests == 0
    findings = lake.check(interval="1day", **may).findings
    assert not [f for f in findings if f.rule == "no_data"]


# -- symbols a provider refuses as unknown are set aside ----------------------------------------


def run(root: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def set_aside(root: Path) -> dict[str, str | None]:
    code, out = run(root, "symbols", "list", "--json")
    assert code == 0
    return {r["symbol"]: r["set_aside"] for r in json.loads(out)}


def test_a_symbol_unknown_to_the_provider_is_set_aside_until_asked_again(lake_root: Path) -> None:
    (lake_root / "lake.yaml").write_text(
        "providers:\n  demo:\n    options:\n      unknown_symbols: [NOPE]\n"
    )
    assert run(lake_root, "symbols", "add", "AAA,NOPE")[0] == 0
    days = ("--interval", "1day", "--start", "2024-06-03")
    code, out = run(lake_root, "fill", *days, "--end", "2024-06-07", "--json")
    first = json.loads(out)
    assert (code, list(first["symbol_errors"])) == (1, ["NOPE"])
    assert set_aside(lake_root) == {"AAA": None, "NOPE": "demo"}
    assert "set_aside" in run(lake_root, "symbols", "list")[1]
    # The next fill leaves NOPE out: one request, for AAA's new week only.
    code, out = run(lake_root, "fill", *days, "--end", "2024-06-14", "--json")
    second = json.loads(out)
    assert (code, second["requests"], second["symbol_errors"]) == (0, 1, {})
    [skip] = second["skipped"]
    assert skip["symbols"] == ["NOPE"] and "--retry-failed" in skip["reason"]
    errors = json.loads(run(lake_root, "errors", "--json")[1])
    assert errors["NOPE"][0]["stage"] == "set aside"
    assert "demo does not know symbol 'NOPE'" in errors["NOPE"][0]["error"]
    # --retry-failed asks again (and sets it aside again); adding it again forgets it.
    code, out = run(lake_root, "fill", *days, "--end", "2024-06-14", "--retry-failed", "--json")
    retried = json.loads(out)
    assert (code, retried["requests"], list(retried["symbol_errors"])) == (1, 1, ["NOPE"])
    assert run(lake_root, "symbols", "add", "NOPE")[0] == 0
    assert set_aside(lake_root) == {"AAA": None, "NOPE": None}


# -- a request stopped part way keeps its whole pages --------------------------------------------


class SmallPages(DemoProvider):
    """The demo in pages of 60 bars; page ``stop_at`` never comes: it is interrupted (as by
    Ctrl-C) or, from ``fail_from`` on, fails for good."""

    def __init__(self, *, stop_at: int | None = None, fail_from: int | None = None) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, bars_per_page=60)
        self.stop_at, self.fail_from = stop_at, fail_from
        self.pages = 0
        self.asked: list[Request] = []

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        self.pages += 1
        if cursor is None:
            self.asked.append(request)
        if self.pages == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)  # the job's handler stops it
            await asyncio.sleep(60)  # cancelled by the interrupt
        if self.fail_from is not None and self.pages >= self.fail_from:
            msg = "the vendor is down"
            raise TransientError(msg)
        return await super().fetch_page(request, cursor)


def assert_kept_the_whole_pages_then_fetch_the_rest(lake: Lake, provider: SmallPages) -> None:
    # 2 symbols x 5 sessions x 26 bars in pages of 60: pages 1-3 hold all of AAA and BBB's
    # first 50 bars, ending inside its second session. Kept: AAA whole, BBB's first session.
    week = DateRange(date(2024, 6, 3), date(2024, 6, 8))
    got = stored(lake, "15min")
    assert dict(got.group_by("symbol").len().iter_rows()) == {"AAA": 130, "BBB": 26}
    want = generate(["AAA", "BBB"], "15min", week)
    kept = want.join(got.select("symbol", "ts"), on=["symbol", "ts"], how="semi")
    assert got.select(want.columns).equals(kept)  # the generator's bars, nothing half-written
    assert ledger(lake, "15min") == [
        ("AAA", date(2024, 6, 3), date(2024, 6, 8), 130, True),
        ("BBB", date(2024, 6, 3), date(2024, 6, 4), 26, True),
    ]
    gaps = lake.gaps(interval="15min", **WEEK)
    assert [(g.symbol, g.range) for g in gaps] == [("BBB", DateRange(date(2024, 6, 4), week.end))]
    provider.stop_at = provider.fail_from = None
    asked = len(provider.asked)
    again = lake.fill(interval="15min", **WEEK)
    assert again.status == "done"
    assert [(r.symbols, r.range) for r in provider.asked[asked:]] == [
        (("BBB",), DateRange(date(2024, 6, 4), week.end))
    ]
    assert stored(lake, "15min").select(want.columns).equals(want)
    assert lake.gaps(interval="15min", **WEEK) == []


def test_an_interrupted_fill_keeps_the_whole_pages_it_fetched(tmp_path: Path) -> None:
    provider = SmallPages(stop_at=4)
    lake = lake_with(tmp_path, provider)
    with pytest.raises(Interrupted, match="156 bars were saved"):
        lake.fill(interval="15min", parallel=1, **WEEK)
    assert lake.status()["status"] == "interrupted"
    assert_kept_the_whole_pages_then_fetch_the_rest(lake, provider)


def test_a_page_that_runs_out_of_retries_keeps_the_pages_before_it(tmp_path: Path) -> None:
    provider = SmallPages(fail_from=4)
    lake = lake_with(tmp_path, provider)
    (tmp_path / "lake.yaml").write_text(
        "backfill:\n  max_attempts: 2\n  backoff_base_s: 0.001\n  backoff_cap_s: 0.002\n"
    )
    lake = Lake.open(tmp_path, clock=lambda: NOW, providers={"demo": provider})
    result = lake.fill(interval="15min", **WEEK)
    assert result.status == "partial"
    assert set(result.symbol_errors) == {"AAA", "BBB"}
    assert result.bars_written == 156
    assert_kept_the_whole_pages_then_fetch_the_rest(lake, provider)
