"""The vendors' own SDKs parse the emulators and see the very bars barlake stores, and the very
trades its providers hand on: alpaca-py's ``StockHistoricalDataClient`` and Massive's (formerly
Polygon's) ``RESTClient``."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from barlake.calendars.calendar import get_calendar
from barlake.domain import trades as trades_

from .support import KEY, SECRET, stored, stored_trades

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


# -- trades -----------------------------------------------------------------------------------

TRADE_DAY = date(2024, 6, 3)
TRADE_COLUMNS = ["symbol", "ts", "price", "size", "exchange", "conditions", "trade_id", "tape"]


def lake_trades(vendor: str, emulator, vendor_lake, limit: int) -> tuple[object, pl.DataFrame]:
    """The trades a fill stores of AAPL and MSFT on ``TRADE_DAY``."""
    em = emulator(vendor, trades_per_minute=6)
    lake = vendor_lake(vendor, em, ["AAPL", "MSFT"], trades_page_limit=limit)
    result = lake.fill("AAPL,MSFT", interval="trades", start=TRADE_DAY, end=TRADE_DAY)
    assert (result.status, result.symbol_errors) == ("done", {})
    return em, stored_trades(lake.root).select(TRADE_COLUMNS)


def trade_frame(rows: list[tuple]) -> pl.DataFrame:
    """Rows of the lake's trade columns, ``ts`` given in epoch nanoseconds."""
    schema = {c: trades_.SCHEMA[c] for c in TRADE_COLUMNS} | {"ts": pl.Int64()}
    frame = pl.DataFrame(rows, schema=schema, orient="row")
    ts = pl.col("ts").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return frame.with_columns(ts).sort("symbol", "ts")


def nanos(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def codes(trade, table: dict) -> list[str]:
    """A print's condition ids as its SIP's codes (UTP on tape C, else CTA), by the table the
    client read from the vendor's ``/v3/reference/conditions``."""
    sip = "UTP" if trade.tape == 3 else "CTA"
    return [getattr(table[c], sip) for c in trade.conditions or []]


def test_alpaca_py_reads_the_trades_barlake_stores(emulator, vendor_lake) -> None:
    em, ours = lake_trades("alpaca", emulator, vendor_lake, limit=1000)
    opened, closed = get_calendar("XNYS").open_close(TRADE_DAY)
    request = alpaca_requests.StockTradesRequest(
        symbol_or_symbols=["AAPL", "MSFT"],
        start=opened,
        end=closed - timedelta(microseconds=1),
        feed=alpaca_enums.DataFeed.IEX,
    )
    raw = alpaca_historical.StockHistoricalDataClient(
        KEY, SECRET, url_override=em.url, raw_data=True
    ).get_stock_trades(request)
    # numpy reads the nanoseconds of `t` on its own: no barlake parser on this side.
    rows = [
        (s, nanos(t["t"]), t["p"], t["s"], t["x"], t["c"], str(t["i"]), t["z"])
        for s, prints in raw.items()
        for t in prints
    ]
    assert len(rows) == 2 * 390 * 6
    assert trade_frame(rows).equals(ours)
    # The SDK's models hold the same values (their timestamps to the microsecond).
    models = alpaca_historical.StockHistoricalDataClient(
        KEY, SECRET, url_override=em.url
    ).get_stock_trades(request)
    for symbol, prints in models.data.items():
        mine = ours.filter(pl.col("symbol") == symbol)
        theirs = [
            (t.price, t.size, t.exchange, t.conditions, str(t.id), t.tape, t.timestamp)
            for t in prints
        ]
        cut = pl.col("ts").dt.cast_time_unit("us")
        columns = ["price", "size", "exchange", "conditions", "trade_id", "tape"]
        assert theirs == mine.select(*columns, cut).rows()


def test_massive_client_reads_the_trades_barlake_stores(emulator, vendor_lake) -> None:
    em, ours = lake_trades("polygon", emulator, vendor_lake, limit=1000)
    opened, closed = get_calendar("XNYS").open_close(TRADE_DAY)
    client = massive.RESTClient(api_key=KEY, base=em.url, retries=0)
    tapes = {1: "A", 2: "B", 3: "C"}  # the vendor's documented tape numbers
    conditions = client.list_conditions(asset_class="stocks", data_type="trade", limit=2)
    table = {c.id: c.sip_mapping for c in conditions}
    assert {table[37].CTA, table[14].UTP, table[12].CTA} == {"I", "F", "T"}
    rows = []
    for symbol in ("AAPL", "MSFT"):
        prints = client.list_trades(
            symbol, timestamp_gte=opened, timestamp_lt=closed, order="asc", limit=1000
        )
        rows += [
            (
                symbol,
                t.sip_timestamp,
                t.price,
                t.size,
                str(t.exchange),
                codes(t, table),
                t.id,
                tapes[t.tape],
            )
            for t in prints
        ]
    assert len(rows) == 2 * 390 * 6
    assert trade_frame(rows).equals(ours)
    assert sum(1 for _, path in em.log if path == "/v3/trades/AAPL") > 4  # next_url pages
    # Without order=asc the vendor (and its client) answer newest first.
    newest = client.list_trades("AAPL", timestamp_gte=opened, timestamp_lt=closed, limit=1000)
    stamps = [t.sip_timestamp for t in newest]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[::-1] == ours.filter(pl.col("symbol") == "AAPL")["ts"].dt.epoch("ns").to_list()
