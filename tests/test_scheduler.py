"""Scheduler behaviour that end-to-end fills do not reach easily: unexpected failures."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from barlake import Lake, LakeError, ProviderError
from barlake.domain.ranges import DateRange
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoProvider

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
DATES = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}


def lake_with(tmp_path: Path, provider: DemoProvider) -> Lake:
    lake = Lake.init(tmp_path, clock=lambda: NOW, providers={"demo": provider})
    lake.add_symbols("AAA,BBB")
    return lake


def test_an_unexpected_error_fails_the_job_instead_of_skipping_requests(tmp_path: Path) -> None:
    class Broken(DemoProvider):
        async def fetch_page(self, request, cursor=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    lake = lake_with(tmp_path, Broken())
    with pytest.raises(RuntimeError, match="boom"):
        lake.fill(interval="1day", **DATES)
    status = lake.status()
    assert status["status"] == "failed"
    assert "running" not in status["progress"]


def test_a_bare_provider_error_is_a_fetch_error_of_its_symbols(tmp_path: Path) -> None:
    class Odd(DemoProvider):
        async def fetch_page(self, request, cursor=None):  # type: ignore[no-untyped-def]
            if "BBB" in request.symbols:
                msg = "the vendor answered something unexpected"
                raise ProviderError(msg)
            return await super().fetch_page(request, cursor)

    lake = lake_with(tmp_path, Odd())
    lake.add_symbols("BBB", listed_on=date(2024, 6, 10))  # its own gap, so its own request
    result = lake.fill(interval="1day", **DATES)
    assert result.status == "partial"
    assert set(result.symbol_errors) == {"BBB"}
    assert result.symbol_errors["BBB"][0]["stage"] == "fetch"
    assert lake.gaps("AAA", interval="1day", **DATES) == []


def test_a_pack_keeps_each_symbol_inside_its_own_window(tmp_path: Path) -> None:
    lake = lake_with(tmp_path, DemoProvider())
    # The demo serves BBB from long before; the catalog lists it on 2024-06-10.
    lake.add_symbols("BBB", listed_on=date(2024, 6, 10))
    plan = lake.plan(interval="1day", **DATES)
    assert [p.request.symbols for p in plan.requests] == [("AAA", "BBB")]  # one pack
    assert plan.requests[0].request.range.start == date(2024, 6, 3)
    lake.run_plan(plan)
    days = lake.bars("BBB", interval="1day", **DATES).collect()["ts"].dt.date()
    assert days.min() == date(2024, 6, 10)
    ledger = lake.catalog.ledger("1day", DateRange(date(2024, 1, 1), date(2025, 1, 1)), ["BBB"])
    assert ledger["start_date"].min() == date(2024, 6, 10)
    # Widening BBB's window later asks for the sessions before 06-10 again.
    lake.add_symbols("BBB", listed_on=date(2024, 6, 3))
    assert [g.range.start for g in lake.gaps("BBB", interval="1day", **DATES)] == [date(2024, 6, 3)]
    assert lake.plan(interval="1day", **DATES).total_requests == 1


def test_an_interval_whose_requests_are_done_is_written_while_others_are_fetched(
    tmp_path: Path,
) -> None:
    # The minute request waits (up to 5 s) for the daily bars to reach the lake: they must be
    # written as soon as the daily request is done, not at the end of the job.
    seen: list[bool] = []

    class Patient(DemoProvider):
        async def fetch_page(self, request, cursor=None):  # type: ignore[no-untyped-def]
            if request.interval == "1min" and cursor is None:
                for _ in range(500):
                    if list((tmp_path / "bars").rglob("*.parquet")):
                        break
                    await asyncio.sleep(0.01)
                seen.append(bool(list((tmp_path / "bars" / "interval=1day").rglob("*.parquet"))))
            return await super().fetch_page(request, cursor)

    lake = lake_with(tmp_path, Patient())
    daily = lake.plan(interval="1day", **DATES)
    minute = lake.plan(interval="1min", start=date(2024, 6, 3), end=date(2024, 6, 5))
    result = lake.run_plan(daily + minute)
    assert result.status == "done"
    assert seen == [True]
    assert lake.gaps(interval="1day", **DATES) == []
    assert lake.gaps(interval="1min", start=date(2024, 6, 3), end=date(2024, 6, 5)) == []


class Flaky(LakeError):
    """A failure of a kind the scheduler has never heard of, that says it may pass."""

    retryable = True


class Refused(LakeError):
    """A failure of a kind the scheduler has never heard of, that says it will not pass."""


class Busy(LakeError):
    """A failure of a kind the scheduler has never heard of, that asks everyone to wait."""

    retryable = True
    throttles = True


class Failing(DemoProvider):
    """The demo, one symbol per request, whose calls for ``symbol`` fail with ``error`` until
    ``failures`` ran out."""

    def __init__(self, symbol: str, error: LakeError, failures: int) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, symbols_per_request=1)
        self.symbol, self.error, self.failures = symbol, error, failures
        self.attempts: dict[str, int] = {}

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        for s in request.symbols:
            self.attempts[s] = self.attempts.get(s, 0) + 1
        if self.symbol in request.symbols and self.failures > 0:
            self.failures -= 1
            raise self.error
        return await super().fetch_page(request, cursor)


def quick_retries(tmp_path: Path, provider: DemoProvider) -> Lake:
    lake_with(tmp_path, provider)
    (tmp_path / "lake.yaml").write_text(
        "backfill:\n  max_attempts: 3\n  backoff_base_s: 0.001\n  backoff_cap_s: 0.002\n"
    )
    # A lake reads its lake.yaml once, when it is first used.
    return Lake.open(tmp_path, clock=lambda: NOW, providers={"demo": provider})


def test_any_retryable_lake_error_is_retried_until_it_passes(tmp_path: Path) -> None:
    provider = Failing("BBB", Flaky("the vendor hiccuped"), failures=2)
    result = quick_retries(tmp_path, provider).fill(interval="1day", **DATES)
    assert result.status == "done"
    assert provider.attempts == {"AAA": 1, "BBB": 3}
    assert result.retries == 2


def test_a_retryable_lake_error_that_persists_gives_up_after_max_attempts(tmp_path: Path) -> None:
    provider = Failing("BBB", Flaky("the vendor keeps hiccuping"), failures=99)
    lake = quick_retries(tmp_path, provider)
    result = lake.fill(interval="1day", **DATES)
    assert result.status == "partial"
    assert provider.attempts == {"AAA": 1, "BBB": 3}
    assert result.symbol_errors["BBB"][0]["error"].startswith("gave up after retries")
    assert lake.gaps("AAA", interval="1day", **DATES) == []


def test_a_throttling_lake_error_is_retried_longer_pausing_everyone(tmp_path: Path) -> None:
    busy = Busy("slow down")
    busy.retry_after = 0.001
    provider = Failing("BBB", busy, failures=99)
    result = quick_retries(tmp_path, provider).fill(interval="1day", **DATES)
    assert result.status == "partial"
    # Not the request's fault: four times max_attempts (3) waits before giving up.
    assert provider.attempts == {"AAA": 1, "BBB": 13}
    assert set(result.symbol_errors) == {"BBB"}


def test_a_lake_error_that_is_not_retryable_is_tried_once(tmp_path: Path) -> None:
    provider = Failing("BBB", Refused("no such thing"), failures=99)
    lake = quick_retries(tmp_path, provider)
    # Not a provider's failure: the job fails loudly, as for any unexpected error.
    with pytest.raises(Refused, match="no such thing"):
        lake.fill(interval="1day", **DATES)
    assert provider.attempts["BBB"] == 1
    assert lake.status()["status"] == "failed"


def test_impossible_bars_fail_their_symbol_naming_their_flaws(tmp_path: Path) -> None:
    class Broken(DemoProvider):
        async def fetch_page(self, request, cursor=None):  # type: ignore[no-untyped-def]
            page = await super().fetch_page(request, cursor)
            bbb = pl.col("symbol") == "BBB"
            bars = page.bars.with_columns(
                high=pl.when(bbb & (pl.col("ts").dt.day() == 4)).then(0.5).otherwise("high"),
                volume=pl.when(bbb & (pl.col("ts").dt.day() == 5)).then(-1.0).otherwise("volume"),
            )
            return Page(bars, page.next_cursor)

    lake = lake_with(tmp_path, Broken())
    result = lake.fill(interval="1day", **DATES)
    assert set(result.symbol_errors) == {"BBB"}
    [error] = result.symbol_errors["BBB"]
    assert (error["stage"], error["error"]) == (
        "validate",
        "2 impossible bar(s) rejected (ohlc, volume)",
    )
