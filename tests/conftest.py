"""Shared fixtures: a fixed clock, and fresh lakes copied from one initialised template."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest

from barlake.lake import Lake

#: Tests never depend on today's date: every lake they open runs on this clock.
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)


def clock() -> datetime:
    return CLOCK


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
