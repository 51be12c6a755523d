"""Scheduler behaviour that end-to-end fills do not reach easily: unexpected failures."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from barlake import Lake, ProviderError
from barlake.domain.ranges import DateRange
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
    assert result.symbol_errors["BBB"]["stage"] == "fetch"
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
