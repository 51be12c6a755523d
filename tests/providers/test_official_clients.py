"""The vendors' own SDKs parse the emulators and see the very bars barlake stores: alpaca-py's
``StockHistoricalDataClient`` and Massive's (formerly Polygon's) ``RESTClient``."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from .support import KEY, SECRET, stored

NY = ZoneInfo("America/New_York")
SYMBOLS = ["AAPL", "MSFT", "NEWCO"]
FIRST, LAST = date(2024, 5, 28), date(2024, 6, 7)
COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume", "vwap", "trades"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # alpaca-py imports websockets.legacy
    alpaca_historical = pytest.importorskip("alpaca.data.historical")
    alpaca_requests = pytest.importorskip("alpaca.data.requests")
    alpaca_timeframe = pytest.importorskip("alpaca.data.timeframe")
    alpaca_enums = pytest.importorskip("alpaca.data.enums")
    massive = pytest.importorskip("massive")


def lake_bars(vendor, emulator, vendor_lake, interval: str) -> tuple[object, pl.DataFrame]:
    em = emulator(vendor, symbols=SYMBOLS)
    lake = vendor_lake(vendor, em, SYMBOLS, page_limit=4 if interval == "1day" else 2000)
    result = lake.fill(interval=interval, start=FIRST, end=LAST)
    assert (result.status, result.symbol_errors) == ("done", {})
    return em, stored(lake.root, interval).select(COLUMNS)


def frame(rows: list[tuple]) -> pl.DataFrame:
    schema = dict(zip(COLUMNS, stored_schema(), strict=True))
    return pl.DataFrame(rows, schema=schema, orient="row").sort("symbol", "ts")


def stored_schema() -> list[pl.DataType]:
    return [pl.String(), pl.Datetime("us", "UTC"), *[pl.Float64()] * 6, pl.Int64()]


def row(symbol: str, ts: datetime, bar, trades) -> tuple:
    """One SDK bar as a row of the lake's columns."""
    return (symbol, ts, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.vwap, int(trades))


def ms_day(ms: int) -> datetime:
    return session_day(datetime.fromtimestamp(ms / 1000, UTC))


def session_day(moment: datetime) -> datetime:
    """A vendor's daily stamp as the lake keys it: the New York date at 00:00 UTC."""
    day = moment.astimezone(NY).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.mark.parametrize("interval", ["1day", "15min"])
def test_alpaca_py_reads_what_barlake_stores(emulator, vendor_lake, interval) -> None:
    em, ours = lake_bars("alpaca", emulator, vendor_lake, interval)
    client = alpaca_historical.StockHistoricalDataClient(KEY, SECRET, url_override=em.url)
    timeframe = {
        "1day": alpaca_timeframe.TimeFrame.Day,
        "15min": alpaca_timeframe.TimeFrame(15, alpaca_timeframe.TimeFrameUnit.Minute),
    }[interval]
    request = alpaca_requests.StockBarsRequest(
        symbol_or_symbols=SYMBOLS,
        timeframe=timeframe,
        start=datetime(2024, 5, 28, tzinfo=UTC),
        end=datetime(2024, 6, 8, tzinfo=UTC),
        feed=alpaca_enums.DataFeed.IEX,
        adjustment=alpaca_enums.Adjustment.RAW,
        limit=None,
    )
    data = client.get_stock_bars(request).data
    rows = [
        row(s, session_day(b.timestamp) if interval == "1day" else b.timestamp, b, b.trade_count)
        for s, bars in data.items()
        for b in bars
    ]
    theirs = frame(rows)
    if interval != "1day":  # the SDK also gets the pre- and post-market bars barlake drops
        assert (
            theirs.height
            == ours.height + 2 * ours.select("symbol", pl.col("ts").dt.date()).n_unique()
        )
        theirs = theirs.join(ours.select("symbol", "ts"), on=["symbol", "ts"]).sort("symbol", "ts")
    assert theirs.equals(ours)


def test_massive_client_reads_what_barlake_stores(emulator, vendor_lake) -> None:
    em, ours = lake_bars("polygon", emulator, vendor_lake, "1day")
    client = massive.RESTClient(api_key=KEY, base=em.url, retries=0)
    rows = []
    for symbol in SYMBOLS:
        aggs = client.list_aggs(symbol, 1, "day", FIRST, LAST, adjusted=False, limit=3)
        rows += [row(symbol, ms_day(a.timestamp), a, a.transactions) for a in aggs]
    assert frame(rows).equals(ours)
    paged = sum(1 for _, path in em.log if "/1/day/1" in path)  # next_url pages start at ms
    assert paged > 0
    grouped = client.get_grouped_daily_aggs(date(2024, 6, 3), adjusted=False)
    from_grouped = frame([row(g.ticker, ms_day(g.timestamp), g, g.transactions) for g in grouped])
    assert from_grouped.equals(ours.filter(pl.col("ts") == datetime(2024, 6, 3, tzinfo=UTC)))
