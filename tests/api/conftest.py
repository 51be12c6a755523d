"""Fixtures of the API tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support import SYMBOLS, Served, demo_lake, serving


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """50 symbols, one worker, the token set."""
    lake, provider = demo_lake(tmp_path / "lake", SYMBOLS)
    with serving(lake) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield Served(lake, provider, url, client)
