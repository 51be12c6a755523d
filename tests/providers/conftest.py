"""Fixtures for provider tests: emulators on loopback, and lakes pointed at them.

``emulator(vendor, **settings)`` starts an emulator that stops after the test;
``vendor_lake(vendor, emulator, symbols, ...)`` opens a lake whose lake.yaml points ``vendor``
at it. Every lake runs on a fixed clock (so do Yahoo's provider and emulator, whose retention
windows depend on it), and the backfill settings keep retries quick.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from barlake.lake import Lake
from barlake.providers.emulators import Emulator, open_emulator

from .support import (
    CLOCK,
    CREDENTIAL_ENV,
    KEY,
    QUICK,
    SECRET,
    VENDORS,
    clock,
    provider_entry,
    symbol_attributes,
)


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIAL_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=VENDORS)
def vendor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(vendor: str, **settings: Any) -> Emulator:
        settings.setdefault("api_key", KEY)
        settings.setdefault("api_secret", SECRET)
        if vendor == "yahoo":
            settings.setdefault("now", CLOCK)
        em = open_emulator(vendor, **settings).start()
        started.append(em)
        return em

    yield start
    for em in started:
        em.stop()


@pytest.fixture
def vendor_lake(tmp_path: Path, lake_template: Path) -> Callable[..., Lake]:
    """Opens a copy of the shared empty lake (tests/conftest.py), configured for a vendor."""

    def make(
        vendor: str,
        em: Emulator,
        symbols: list[str],
        *,
        backfill: dict[str, Any] | None = None,
        credentials: bool = True,
        **options: Any,
    ) -> Lake:
        root = tmp_path / f"lake-{vendor}"
        shutil.copytree(lake_template, root)
        config = {
            "default_provider": vendor,
            "backfill": {**QUICK, **(backfill or {})},
            "providers": {vendor: provider_entry(vendor, em, credentials=credentials, **options)},
        }
        (root / "lake.yaml").write_text(yaml.safe_dump(config))
        lake = Lake.open(root, clock=clock)
        lake.add_symbols(symbols, **symbol_attributes(vendor))
        return lake

    return make
