"""Helpers shared by the provider tests: constants, lake.yaml entries, reading bars back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from barlake.domain.ranges import DateRange
from barlake.providers.base import Provider, Request
from barlake.providers.demo import generate
from barlake.providers.demo.grids import clock_bars
from barlake.providers.demo.trades import session_trades
from barlake.providers.emulators import EMULATORS, Emulator
from barlake.providers.emulators.polygon import EXCHANGE_IDS

VENDORS = ["alpaca", "polygon", "yahoo", "binance"]
#: Vendors whose market data needs no key (their documentation says so).
KEYLESS = ("yahoo", "binance")
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)
KEY, SECRET = "pk-test-3f9a1c", "sk-test-77e0b2d4"
#: Environment variables that could leak real credentials into a test.
CREDENTIAL_ENV = ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "POLYGON_API_KEY", "MASSIVE_API_KEY")
#: Fast retries; bar requests alone (the tests count them: actions have their own tests).
QUICK = {
    "backoff_base_s": 0.01,
    "backoff_cap_s": 0.05,
    "max_attempts": 6,
    "fetch_actions": False,
}


def clock() -> datetime:
    return CLOCK


def provider_entry(
    vendor: str, em: Emulator, *, credentials: bool = True, **options: Any
) -> dict[str, Any]:
    """lake.yaml's ``providers.<vendor>`` entry for an emulator (scheduler limit out of the way)."""
    if credentials and vendor not in KEYLESS:
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


def stored_trades(root: Path) -> pl.DataFrame:
    """Every print in the lake's trades files, sorted."""
    files = sorted((root / "trades").rglob("*.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files]).sort(
        "symbol", "ts"
    )


def trade_truth(symbols: Sequence[str], days: Sequence[date], per_minute: int) -> pl.DataFrame:
    """The demo's prints, which the emulators serve (``per_minute`` of them a minute)."""
    frames = [session_trades(s, d, per_minute=per_minute) for s in symbols for d in days]
    return pl.concat(frames).sort("symbol", "ts")


def as_vendor_writes(vendor: str, frame: pl.DataFrame) -> pl.DataFrame:
    """The demo's prints as ``vendor``'s provider hands them on: Alpaca's as they are,
    Massive's with the vendor's exchange ids as text and no condition on a regular sale (its
    other condition ids come back as their SIP codes)."""
    frame = frame.with_columns(pl.lit(vendor).alias("source"))
    if vendor == "alpaca":
        return frame
    exchanges = {k: str(v) for k, v in EXCHANGE_IDS.items()}
    return frame.with_columns(
        pl.col("exchange").replace_strict(exchanges),
        pl.col("conditions").list.eval(pl.element().filter(pl.element() != "@")),
    )


def names(vendor: str, symbols: list[str]) -> list[str]:
    """``symbols`` as ``vendor`` spells them: Yahoo writes share classes with a dash (BRK-B);
    Binance lists crypto pairs, which the demo trades 24/7 (AAPL -> AAPLUSDT)."""
    if vendor == "yahoo":
        return [s.replace("/", "-") for s in symbols]
    if vendor == "binance":
        return [s.replace("/", "") + "USDT" for s in symbols]
    return list(symbols)


def symbol_attributes(vendor: str) -> dict[str, str]:
    """Catalog attributes of ``vendor``'s symbols: Binance's trade on the 24/7 calendar."""
    return {"asset_class": "crypto"} if vendor == "binance" else {}


def page_options(vendor: str, bars: int, interval: str = "1day") -> dict[str, int]:
    """Options giving pages of ``bars`` bars of ``interval`` (a stock's; a crypto pair trades
    24 hours a day, so it gets pages three times larger, for as many pages per day as a stock's
    7 hourly bars). Polygon's limit counts the minute bars that hourly bars are made of; Yahoo
    has no pages (one answer per request)."""
    if vendor == "yahoo":
        return {}
    hourly = interval == "1hour"
    scale = {"polygon": 60, "binance": 3}.get(vendor, 1) if hourly else 1
    return {"page_limit": bars * scale}


def expected(
    symbols: list[str], interval: str, first: date, last: date, vendor: str | None = None
) -> pl.DataFrame:
    """The demo generator's bars, which every emulator serves: on the clock grid for the
    vendors that stamp intraday bars there (Alpaca's and Polygon's 09:00 hour)."""
    window = DateRange.inclusive(first, last)
    if vendor is not None and EMULATORS[vendor].clock_grid:
        return clock_bars(symbols, interval, window).sort("symbol", "ts")
    return generate(symbols, interval, window).sort("symbol", "ts")


def compared_columns(vendor: str | None) -> list[str]:
    """The bar columns ``vendor`` sends exactly as the generator made them: Yahoo has no vwap
    and no trade count, and Binance's vwap is quote volume over volume (see ``same_values``)."""
    columns = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trades"]
    if vendor == "yahoo":
        return columns[:-2]
    if vendor == "binance":
        return [*columns[:-2], "trades"]
    return columns


def same_values(got: pl.DataFrame, want: pl.DataFrame, vendor: str | None = None) -> bool:
    """Equal bars, whatever their ``source`` label; for Yahoo no vwap and no trade count at
    all, for Binance a vwap within 1e-9 of the generator's."""
    if got.height != want.height:
        return False
    columns = compared_columns(vendor)
    if not got.select(columns).equals(want.select(columns)):
        return False
    if vendor == "yahoo":
        return got["vwap"].null_count() == got["trades"].null_count() == got.height
    if vendor == "binance":
        return bool(((got["vwap"] / want["vwap"] - 1).abs() < 1e-9).all())
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


def fetch_all(provider: Provider, request: Request) -> tuple[pl.DataFrame, int]:
    """Every page of ``request`` from ``provider`` (closed afterwards), and how many pages."""

    async def run() -> tuple[pl.DataFrame, int]:
        frames, cursor = [], None
        try:
            while True:
                page = await provider.fetch_page(request, cursor)
                frames.append(page.bars)
                cursor = page.next_cursor
                if cursor is None:
                    return pl.concat(frames), len(frames)
        finally:
            await provider.aclose()

    return asyncio.run(run())
