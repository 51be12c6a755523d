"""The demo's trades: one session's prints aggregate, minute by minute, to exactly the demo's
stored 1-minute bars. The aggregation here is plain polars, never barlake's own resampling."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from barlake.domain import trades
from barlake.domain.ranges import DateRange
from barlake.providers.demo import demo_halted, generate
from barlake.providers.demo.trades import MIN_PER_MINUTE, session_trades

SESSION = date(2025, 3, 4)
FIELDS = ["open", "high", "low", "close", "volume", "vwap"]


def minute_bars(prints: pl.DataFrame) -> pl.DataFrame:
    notional = (pl.col("price") * pl.col("size")).sum()
    return (
        prints.group_by(pl.col("ts").dt.truncate("1m").dt.cast_time_unit("us"))
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            (notional / pl.col("size").sum()).alias("vwap"),
            pl.len().alias("prints"),
        )
        .sort("ts")
    )


def stored(symbol: str, session: date) -> pl.DataFrame:
    return generate([symbol], "1min", DateRange.inclusive(session, session))


@pytest.mark.parametrize(
    ("symbol", "session"),
    [("AAPL", SESSION), ("SPY", date(2024, 11, 29)), ("QQQZ", SESSION), ("BTCUSDT", SESSION)],
)
def test_prints_aggregate_to_the_stored_minute_bars(symbol: str, session: date) -> None:
    prints = session_trades(symbol, session)
    bars = stored(symbol, session)
    assert bars.height > 0
    got = minute_bars(prints)
    assert got["ts"].to_list() == bars["ts"].to_list()
    assert_frame_equal(got.select(FIELDS), bars.select(FIELDS), check_exact=False, rel_tol=1e-12)
    # The trade count matches wherever the bar has enough prints for its four prices.
    enough = bars["trades"] >= MIN_PER_MINUTE
    assert (got["prints"].filter(enough) == bars["trades"].filter(enough)).all()
    assert (got["prints"] == bars["trades"].clip(MIN_PER_MINUTE)).all()


def test_prints_have_the_schema_sorted_unique_and_positive() -> None:
    prints = session_trades("AAPL", SESSION, per_minute=500)
    assert prints.schema == pl.Schema(trades.SCHEMA)
    assert prints.height == 390 * 500
    assert prints["ts"].is_sorted()
    assert prints.select(trades.KEY).is_unique().all()
    assert (prints["price"] > 0).all() and (prints["size"] > 0).all()
    # Odd lots are flagged, and only on prints that set none of the minute's prices.
    odd = prints.filter(pl.col("conditions").list.contains("I"))
    assert odd.height > 0 and (odd["size"] < 100).all()
    assert_frame_equal(
        minute_bars(prints.filter(~pl.col("conditions").list.contains("I"))).select(
            "open", "high", "low", "close"
        ),
        stored("AAPL", SESSION).select("open", "high", "low", "close"),
    )


def test_per_minute_keeps_the_bars_and_the_draws_are_deterministic() -> None:
    dense = session_trades("MSFT", SESSION, per_minute=3000)
    assert dense.height == 390 * 3000
    assert_frame_equal(
        minute_bars(dense).select(FIELDS),
        stored("MSFT", SESSION).select(FIELDS),
        check_exact=False,
        rel_tol=1e-12,
    )
    assert_frame_equal(session_trades("MSFT", SESSION), session_trades("MSFT", SESSION))
    assert not session_trades("MSFT", SESSION).equals(session_trades("MSFT", date(2025, 3, 5)))


def test_no_prints_when_the_symbol_did_not_trade() -> None:
    halted = next(
        d for d in (date(2025, 3, day) for day in range(3, 15)) if demo_halted("HALTX", d)
    )
    assert session_trades("HALTX", halted).is_empty()
    assert session_trades("AAPL", date(2025, 3, 8)).is_empty()  # a Saturday
    assert session_trades("NEWCO", date(2024, 5, 1)).is_empty()  # before its listing
