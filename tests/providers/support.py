"""Helpers shared by the provider tests: constants, lake.yaml entries, reading bars back."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from barlake.providers.demo import generate
from barlake.providers.emulators import Emulator
from barlake.ranges import DateRange

VENDORS = ["alpaca", "polygon"]
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)
KEY, SECRET = "pk-test-3f9a1c", "sk-test-77e0b2d4"
#: Environment variables that could leak real credentials into a test.
CREDENTIAL_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "POLYGON_API_KEY", "MASSIVE_API_KEY")
QUICK = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, "max_attempts": 6}


def clock() -> datetime:
    return CLOCK


def provider_entry(
    vendor: str, em: Emulator, *, credentials: bool = True, **options: Any
) -> dict[str, Any]:
    """lake.yaml's ``providers.<vendor>`` entry for an emulator (scheduler limit out of the way)."""
    if credentials:
        options.setdefault("api_key", KEY)
        if vendor == "alpaca":
            options.setdefault("api_secret", SECRET)
    return {
        "base_url": em.url,
        "rate_limit_per_min": 60000,
        "timeout_s": options.pop("timeout_s", 5),
        "options": options,
    }


def stored(root: Path, interval: str) -> pl.DataFrame:
    """Every bar of ``interval`` in the lake, sorted."""
    files = sorted((root / "bars" / f"interval={interval}").rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files]).sort("symbol", "ts")


def expected(symbols: list[str], interval: str, first: date, last: date) -> pl.DataFrame:
    """The demo generator's bars, which every emulator serves."""
    return generate(symbols, interval, DateRange.inclusive(first, last)).sort("symbol", "ts")


def same_values(got: pl.DataFrame, want: pl.DataFrame) -> bool:
    """Equal bars, whatever their ``source`` label."""
    return got.drop("source").equals(want.drop("source"))


def run_lake(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lake --lake ROOT ARGS`` in a subprocess, with real credentials removed from its env."""
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
    return subprocess.run(
        [sys.executable, "-m", "barlake", "--lake", str(root), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )
