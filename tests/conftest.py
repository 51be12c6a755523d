"""Shared fixtures: a fixed clock, a cache directory per test, and fresh lakes copied from one
initialised template."""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from barlake.calendars.calendar import cache_dir
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
