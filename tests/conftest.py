"""Shared fixtures: a fixed clock, a cache directory per test, and fresh lakes copied from one
initialised template."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from barlake.calendars.calendar import cache_dir, get_calendar
from barlake.domain.ranges import DateRange
from barlake.lake import Lake

#: Tests never depend on today's date: every lake they open runs on this clock.
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)


#: Debian's Chromium, which the browser tests drive through Playwright, and how they start it.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def clock() -> datetime:
    return CLOCK


@pytest.fixture
def chromium():
    """A headless Chromium driven by Playwright (closed after the test); skips the test when
    Debian's chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(autouse=True)
def _cache_dir_per_test(tmp_path_factory, monkeypatch):
    """Rate-limit windows that processes share through the cache directory stay inside one test
    (and out of the home directory); calendars, slow to build, still come from the real cache."""
    cache = tmp_path_factory.mktemp("cache")
    with contextlib.suppress(OSError):
        calendars = cache_dir() / "calendars"
        calendars.mkdir(parents=True, exist_ok=True)
        (cache / "calendars").symlink_to(calendars, target_is_directory=True)
    monkeypatch.setenv("BARLAKE_CACHE_DIR", str(cache))


# -- a lake with every kind of coverage cell --------------------------------------------------

JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
HOLES = (date(2024, 6, 6), date(2024, 6, 20))
LISTED = date(2024, 6, 17)
# 15:00 UTC on 2024-06-28, while the session trades: bars fetched then are provisional.
MIDDAY = datetime(2024, 6, 28, 15, tzinfo=UTC)


def xnys(first: date, last: date) -> list[date]:
    days = get_calendar("XNYS").sessions_in(DateRange.inclusive(first, last))
    return [date.fromisoformat(str(d)) for d in days]


def write_daily(lake: Lake, symbol: str, days: list[date]) -> None:
    n = len(days)
    lake.store.write(
        "1day",
        pl.DataFrame(
            {
                "symbol": [symbol] * n,
                "ts": [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in days],
                "open": [10.0] * n,
                "high": [11.0] * n,
                "low": [9.0] * n,
                "close": [10.5] * n,
                "volume": [100.0] * n,
            }
        ),
    )


@pytest.fixture(scope="session")
def planted_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """June 2024 with every kind of cell (built once, copied for each test):

    FULL   filled by the demo after the close: all stored, final
    HALT1  filled by the demo: halted sessions came back empty in a final range
    HOLE   bars written directly, two sessions left out, nothing in the ledger
    PROV   bars written directly to 06-21, the last week fetched at 15:00 UTC on 06-28
    LATE   listed on 06-17 and never filled: not expected before, missing after
    """
    root = tmp_path_factory.mktemp("planted") / "lake"
    lake = Lake.init(root, clock=clock)
    lake.add_symbols("FULL,HALT1,HOLE,PROV")
    lake.add_symbols("LATE", listed_on=LISTED)
    assert lake.fill("FULL,HALT1", provider="demo", **JUNE).ok
    june = xnys(JUNE["start"], JUNE["end"])
    write_daily(lake, "HOLE", [d for d in june if d not in HOLES])
    write_daily(lake, "PROV", [d for d in june if d <= date(2024, 6, 21)])
    midday = Lake.open(root, clock=lambda: MIDDAY)
    assert midday.fill("PROV", provider="demo", start=date(2024, 6, 24), end=JUNE["end"]).ok
    return root


@pytest.fixture
def planted(planted_template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(planted_template, root)
    return Lake.open(root, clock=clock)


@pytest.fixture(scope="session")
def lake_template(tmp_path_factory):
    """An initialised, empty lake; tests copy it rather than pay for ``Lake.init`` each time."""
    root = tmp_path_factory.mktemp("template") / "lake"
    Lake.init(root, clock=clock)
    return root


@pytest.fixture
def lake_root(tmp_path, lake_template):
    root = tmp_path / "lake"
    shutil.copytree(lake_template, root)
    return root


@pytest.fixture
def lake(lake_root):
    return Lake.open(lake_root, clock=clock)


# -- object storage ---------------------------------------------------------------------------

from tests.s3support import bucket, s3_server  # noqa: E402, F401  (fixtures for every test)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the S3 server are marked ``s3`` (``-m s3`` runs them alone)."""
    for item in items:
        if "s3_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server's superuser URL (``tests/pgserver.py``); the tests that use it are
    skipped with the reason where none can be had, and fail instead in CI."""
    import os

    import pgserver

    why = pgserver.missing()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the PostgreSQL tests: {why}")
        pytest.skip(why)
    with pgserver.cluster() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new empty database for this test (dropped after it)."""
    import pgserver

    with pgserver.database(postgres_server) as url:
        yield url
