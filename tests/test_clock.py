"""One clock: ``Lake(clock=...)`` is "now" for the gap search, the job and the providers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from barlake import DateRange, Lake
from barlake.providers.yahoo import YahooProvider
from barlake.wiring import Providers

#: 11:00 in New York on a Tuesday: the session of 2024-06-04 is in progress.
MID_SESSION = datetime(2024, 6, 4, 15, 0, tzinfo=UTC)


def test_the_demo_serves_bars_as_of_the_lakes_clock(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake", clock=lambda: MID_SESSION)
    lake.add_symbols("AAA")
    result = lake.fill(interval="1min", start=date(2024, 6, 3), end=date(2024, 6, 4))
    assert result.status == "done"
    bars = lake.bars("AAA", interval="1min").collect()
    today = bars.filter(pl.col("ts").dt.date() == date(2024, 6, 4))
    # 13:30 to 14:59 UTC: the 90 minutes before "now", none after it.
    assert today.height == 90
    assert today["ts"].max() == datetime(2024, 6, 4, 14, 59, tzinfo=UTC)
    ledger = lake.catalog.ledger("1min", DateRange(date(2024, 6, 3), date(2024, 6, 5)))
    # 06-03 had closed: final; 06-04 had not: provisional, fetched again later
    rows = ledger.sort("start_date").select("start_date", "end_date", "final").rows()
    assert rows == [
        (date(2024, 6, 3), date(2024, 6, 4), True),
        (date(2024, 6, 4), date(2024, 6, 5), False),
    ]


def test_providers_built_by_the_lake_carry_its_clock(tmp_path: Path) -> None:
    lake = Lake.init(tmp_path / "lake", clock=lambda: MID_SESSION)
    yahoo = lake.services.providers.open("yahoo")
    assert isinstance(yahoo, YahooProvider)
    assert yahoo.clock() == MID_SESSION
    assert isinstance(lake.services.providers, Providers)
    assert lake.services.providers.open("demo").clock() == MID_SESSION  # type: ignore[attr-defined]
