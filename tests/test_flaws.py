"""The one rule of what makes a bar impossible, as the scheduler and ``lake check`` both use it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from barlake.domain import bars
from barlake.quality import rules

START = datetime(2024, 6, 3, tzinfo=UTC)
GOOD = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0}
BROKEN = {
    "price": [{"open": 0.0}, {"close": float("nan")}, {"low": float("inf")}, {"high": None}],
    "ohlc": [{"high": 9.5}, {"low": 10.2}, {"high": 8.0, "low": 12.0}],
    "volume": [{"volume": -1.0}, {"volume": float("nan")}, {"volume": None}],
    "key": [{"symbol": None}, {"ts": None}],
}


def frame(changes: list[dict[str, object]], symbol: str = "AAA") -> pl.DataFrame:
    rows = [
        {"symbol": symbol, "ts": START + timedelta(days=i), **GOOD, **change}
        for i, change in enumerate(changes)
    ]
    return bars.conform(pl.DataFrame(rows, schema_overrides={"ts": pl.Datetime("us", "UTC")}))


def test_a_sound_bar_has_no_flaw() -> None:
    good = frame([{}])
    assert good.select(bars.flaw()).item() is None
    assert bars.invalid_rows(good).to_list() == [False]


@pytest.mark.parametrize("name", list(bars.FLAWS))
def test_each_flaw_names_its_bars(name: str) -> None:
    broken = frame(BROKEN[name])
    assert broken.select(bars.flaw())["flaw"].to_list() == [name] * broken.height
    assert bars.invalid_rows(broken).all()
    for other, bad in bars.FLAWS.items():
        if other != name:
            assert not broken.select(bad).to_series().any(), other  # one flaw each


def test_the_check_finds_what_the_scheduler_rejects() -> None:
    stored = pl.concat(
        [frame([{}, {}], "GOOD")]
        + [frame(BROKEN[rule], f"BAD_{rule}") for rule in ("price", "ohlc", "volume")]
    )
    found = {(f.rule, f.symbol, f.message.split()[0]) for f in rules.bar_rules(stored, "1day")}
    assert found == {
        ("price", "BAD_price", "4"),
        ("ohlc", "BAD_ohlc", "3"),
        ("volume", "BAD_volume", "3"),
    }
    assert rules.sound(stored)["symbol"].unique().sort().to_list() == [
        "BAD_ohlc",
        "BAD_volume",
        "GOOD",
    ]
