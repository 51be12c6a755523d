"""Corporate actions from the vendors' emulators: what barlake stores equals what the vendors'
own SDKs (alpaca-py's ``CorporateActionsClient``, Massive's ``RESTClient``) read from the same
emulator, and Yahoo's chart ``events`` are parsed from an answer that carries them."""

from __future__ import annotations

import warnings
from datetime import date

import pytest

from .support import KEY, SECRET

SYMBOLS = ["AAPL", "TSLA", "MSFT"]
FIRST, LAST = date(2019, 1, 1), date(2021, 12, 31)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # alpaca-py imports websockets.legacy
    alpaca_actions = pytest.importorskip("alpaca.data.historical.corporate_actions")
    alpaca_requests = pytest.importorskip("alpaca.data.requests")
    massive = pytest.importorskip("massive")


def stored(lake) -> list[tuple]:
    return sorted(
        (r["symbol"], r["type"], r["ex_date"], r["ratio"], r["amount"], r["vendor_id"])
        for r in lake.actions()
    )


def fetched(lake, vendor: str):
    result = lake.fetch_actions(SYMBOLS, start=FIRST, end=LAST)
    assert result.errors == {} and result.actions > 10
    assert {r["source"] for r in lake.actions()} == {vendor}
    return result


def test_alpaca_py_reads_the_actions_barlake_stores(emulator, vendor_lake) -> None:
    em = emulator("alpaca", symbols=SYMBOLS)
    lake = vendor_lake("alpaca", em, SYMBOLS, actions_page_limit=7)
    result = fetched(lake, "alpaca")
    assert result.requests == len(em.log) > 2  # one batch of three symbols, in pages of 7
    client = alpaca_actions.CorporateActionsClient(KEY, SECRET, url_override=em.url)
    request = alpaca_requests.CorporateActionsRequest(
        symbols=SYMBOLS, start=FIRST, end=LAST, limit=10_000
    )
    data = client.get_corporate_actions(request).data
    theirs = []
    for s in data.get("forward_splits", []) + data.get("reverse_splits", []):
        kind = "split" if s.new_rate >= s.old_rate else "reverse_split"
        theirs.append((s.symbol, kind, s.ex_date, s.new_rate / s.old_rate, None))
    theirs += [(d.symbol, "cash_dividend", d.ex_date, None, d.rate) for d in data["cash_dividends"]]
    assert [row[:5] for row in stored(lake)] == sorted(theirs)
    assert ("AAPL", "split", date(2020, 8, 31), 4.0, None) in theirs
    assert all(row[5] for row in stored(lake))  # the vendor's ids are kept


def test_massive_client_reads_the_actions_barlake_stores(emulator, vendor_lake) -> None:
    em = emulator("polygon", symbols=SYMBOLS)
    lake = vendor_lake("polygon", em, SYMBOLS, actions_page_limit=4)
    result = fetched(lake, "polygon")
    # One symbol a request, splits then dividends, pages of 4 followed by next_url.
    assert result.requests == len(em.log) > 2 * len(SYMBOLS)
    client = massive.RESTClient(api_key=KEY, base=em.url, retries=0)
    theirs = []
    for symbol in SYMBOLS:
        for s in client.list_splits(
            ticker=symbol, execution_date_gte=FIRST, execution_date_lte=LAST, limit=2
        ):
            kind = "split" if s.split_to >= s.split_from else "reverse_split"
            ex = date.fromisoformat(s.execution_date)
            theirs.append((symbol, kind, ex, s.split_to / s.split_from, None, s.id))
        for d in client.list_dividends(
            ticker=symbol, ex_dividend_date_gte=FIRST, ex_dividend_date_lte=LAST, limit=3
        ):
            ex = date.fromisoformat(d.ex_dividend_date)
            theirs.append((symbol, "cash_dividend", ex, None, d.cash_amount, d.id))
    assert stored(lake) == sorted(theirs)


def test_yahoo_chart_events_are_parsed_and_stored(emulator, vendor_lake) -> None:
    em = emulator("yahoo", symbols=SYMBOLS)
    lake = vendor_lake("yahoo", em, SYMBOLS)
    result = fetched(lake, "yahoo")
    assert result.requests == len(SYMBOLS)  # one chart answer a symbol, events included
    from barlake.domain.ranges import DateRange
    from barlake.providers.demo.actions import demo_actions

    truth = [a.to_dict() for a in demo_actions(SYMBOLS, DateRange.inclusive(FIRST, LAST))]

    def values(rows):
        return sorted((r["symbol"], r["type"], r["ex_date"], r["ratio"]) for r in rows)

    ours = lake.actions()
    assert values(ours) == values(truth)
    # Yahoo reports dividends in today's shares; the lake keeps what was paid then.
    paid = {(r["symbol"], r["ex_date"]): r["amount"] for r in truth if r["amount"]}
    for r in ours:
        if r["amount"] is not None:
            assert r["amount"] == pytest.approx(paid[(r["symbol"], r["ex_date"])], rel=1e-5)
    assert ("TSLA", "split", date(2020, 8, 31), 5.0) in values(ours)


def test_yahoo_events_of_a_chart_answer() -> None:
    from barlake.providers.yahoo import events

    answer = {
        "meta": {"currency": "USD", "exchangeTimezoneName": "America/New_York"},
        "events": {
            "dividends": {"1597066200": {"amount": 0.205, "date": 1597066200}},
            "splits": {
                "1598880600": {
                    "date": 1598880600,
                    "numerator": 4,
                    "denominator": 1,
                    "splitRatio": "4:1",
                }
            },
        },
    }
    got = [
        (a.type, a.ex_date, a.ratio, a.amount, a.currency) for a in events("AAPL", answer, "yahoo")
    ]
    assert got == [
        ("cash_dividend", date(2020, 8, 10), None, 0.82, "USD"),
        ("split", date(2020, 8, 31), 4.0, None, None),
    ]


def test_vendor_adjusted_bars_divide_out_the_split(emulator) -> None:
    """As the vendors document: Polygon's ``adjusted=true`` (its default) and Alpaca's
    ``adjustment=split`` serve the raw bars before a split divided by its ratio."""
    day, after = date(2020, 8, 28), date(2020, 9, 1)
    poly = massive.RESTClient(api_key=KEY, base=emulator("polygon").url, retries=0)
    raw = list(poly.list_aggs("AAPL", 1, "day", day, after, adjusted=False))
    split = list(poly.list_aggs("AAPL", 1, "day", day, after))
    assert raw[0].close / split[0].close == pytest.approx(4.0)
    assert split[0].volume == pytest.approx(raw[0].volume * 4, abs=2)
    assert raw[-1].close == split[-1].close  # after the ex-date nothing changes
    historical = pytest.importorskip("alpaca.data.historical")
    enums = pytest.importorskip("alpaca.data.enums")
    timeframe = pytest.importorskip("alpaca.data.timeframe")
    alpaca = historical.StockHistoricalDataClient(KEY, SECRET, url_override=emulator("alpaca").url)

    def closes(adjustment):
        request = alpaca_requests.StockBarsRequest(
            symbol_or_symbols="AAPL",
            timeframe=timeframe.TimeFrame.Day,
            start=day,
            end=after,
            adjustment=adjustment,
            feed=enums.DataFeed.IEX,
        )
        return [b.close for b in alpaca.get_stock_bars(request).data["AAPL"]]

    unadjusted, adjusted = closes(enums.Adjustment.RAW), closes(enums.Adjustment.SPLIT)
    assert unadjusted[0] / adjusted[0] == pytest.approx(4.0)
    assert unadjusted[-1] == adjusted[-1]


@pytest.mark.parametrize("vendor", ["alpaca", "polygon"])
def test_a_fill_fetches_actions_beside_the_bars(emulator, vendor_lake, vendor) -> None:
    em = emulator(vendor, symbols=SYMBOLS)
    lake = vendor_lake(vendor, em, SYMBOLS, backfill={"fetch_actions": True})
    result = lake.fill(interval="1day", start=date(2020, 8, 24), end=date(2020, 9, 4))
    assert result.status == "done" and result.symbol_warnings == {}
    assert result.action_requests > 0 and em.requests == result.requests + result.action_requests
    assert {(r["symbol"], r["type"], r["ex_date"]) for r in lake.actions()} >= {
        ("AAPL", "split", date(2020, 8, 31)),
        ("TSLA", "split", date(2020, 8, 31)),
    }
    # The split is known: adjusted closes before it are the raw ones over 4.
    raw = lake.bars("AAPL").collect()
    adjusted = lake.bars("AAPL", adjust="splits").collect()
    assert raw["close"][0] / adjusted["close"][0] == pytest.approx(4.0)
    again = lake.fill(interval="1day", start=date(2020, 8, 24), end=date(2020, 9, 4))
    assert (again.requests, again.action_requests) == (0, 0)
