"""Trades from Alpaca and Polygon/Massive, over loopback against their emulators: the demo's
prints come back in the lake's trades schema, page after page of every shape, one session at a
time and never its pre- or post-market prints; Massive's newest-first default is overridden;
duplicates, disorder and impossible prints are handed on as they came (the core drops or records
them), transport failures map onto ``barlake.errors`` as for bars."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from barlake.calendars.calendar import get_calendar
from barlake.config import ProviderConfig
from barlake.domain import trades as trades_
from barlake.domain.ranges import DateRange
from barlake.errors import AuthError, RateLimitError, TransientError
from barlake.providers import open_provider

from .support import KEY, SECRET, as_vendor_writes, trade_truth

TRADING = ["alpaca", "polygon"]
SYMBOLS = ("AAPL", "MSFT")
MONDAY, TUESDAY = date(2024, 6, 3), date(2024, 6, 4)
PER_MINUTE = 4  # 390 minutes x 4 = 1,560 prints a session
SESSION = 390 * PER_MINUTE
XNYS = get_calendar("XNYS")


def provider(vendor: str, em, **options: Any):
    options.setdefault("api_key", KEY)
    if vendor == "alpaca":
        options.setdefault("api_secret", SECRET)
    return open_provider(vendor, ProviderConfig(base_url=em.url, timeout_s=5, options=options))


def pages(p, symbols, window, *, before_page=None) -> list[pl.DataFrame]:
    """Every page of the trades of ``symbols`` in ``window``; ``before_page(i)`` runs before
    the i-th request (to force a fault on it)."""

    async def run() -> list[pl.DataFrame]:
        out, cursor = [], None
        try:
            while True:
                if before_page is not None:
                    before_page(len(out))
                page = await p.fetch_trades(symbols, window, cursor)
                assert page.trades.schema == trades_.SCHEMA
                out.append(page.trades)
                cursor = page.next_cursor
                if cursor is None:
                    return out
        finally:
            await p.aclose()

    return asyncio.run(run())


def truth(symbols, days) -> pl.DataFrame:
    return trade_truth(symbols, days, PER_MINUTE)


@pytest.fixture(params=TRADING)
def trading(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- pages of every shape -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "alpaca_limit", "polygon_limit"),
    [
        ("one page", 10_000, 50_000),
        ("mid-symbol", 1_000, 1_000),  # Alpaca's limit spans symbols: AAPL ends inside page 2
        ("exactly full", SESSION, SESSION // 2),  # a full page then an empty one
    ],
)
def test_pages_of_every_shape_serve_the_demo_prints(
    trading, emulator, shape, alpaca_limit, polygon_limit
) -> None:
    em = emulator(trading, trades_per_minute=PER_MINUTE)
    limit = alpaca_limit if trading == "alpaca" else polygon_limit
    p = provider(trading, em, trades_page_limit=limit)
    got = pages(p, SYMBOLS, DateRange(MONDAY, TUESDAY + timedelta(days=1)))
    want = as_vendor_writes(trading, truth(SYMBOLS, [MONDAY, TUESDAY]))
    # Oldest first per symbol and session, nothing before the open or after the close (the
    # emulator has a pre- and a post-market print per session: never asked for).
    assert pl.concat(got).sort("symbol", "ts").equals(want)
    total = 2 * len(SYMBOLS) * SESSION
    if trading == "alpaca":  # one request a page: the sessions one after the other
        expected = {"one page": 2, "mid-symbol": 8, "exactly full": 6}[shape]
        assert [f.height for f in got][:2] == (
            [2 * SESSION, 2 * SESSION] if shape == "one page" else [limit, limit]
        )
    else:  # one symbol and session a request, after the vendor's table of conditions
        expected = {"one page": 4, "mid-symbol": 8, "exactly full": 12}[shape]
    assert len(got) == expected
    assert em.requests == expected + (trading == "polygon")
    assert sum(f.height for f in got) == total
    if shape == "mid-symbol" and trading == "alpaca":
        assert got[1]["symbol"].unique(maintain_order=True).to_list() == ["AAPL", "MSFT"]
    if shape == "exactly full":
        assert any(f.is_empty() for f in got)  # a full page's successor, with nothing left
    for frame in got:
        for _, one in frame.group_by("symbol"):
            assert one["ts"].is_sorted()


def test_requests_span_the_session_only(trading, emulator) -> None:
    em = emulator(trading, trades_per_minute=PER_MINUTE)
    got = pl.concat(pages(provider(trading, em), ("AAPL",), DateRange(MONDAY, TUESDAY)))
    opened, closed = XNYS.open_close(MONDAY)
    assert got["ts"].min() >= opened and got["ts"].max() < closed
    # The emulator does serve extended hours to whoever asks for the whole day.
    midnight = int(datetime(2024, 6, 3, 4, tzinfo=UTC).timestamp()) * 10**9
    day = em.tape.between(["AAPL"], midnight, midnight + 24 * 3600 * 10**9 - 1)
    assert day.height == SESSION + 2 == got.height + 2
    assert day["ts"][0] == got["ts"][0] - timedelta(hours=1)
    assert day["ts"][-1] == got["ts"][-1] + timedelta(hours=1)


def test_a_window_without_a_session_asks_nothing(trading, emulator) -> None:
    em = emulator(trading)
    saturday = date(2024, 6, 1)
    got = pages(provider(trading, em), SYMBOLS, DateRange(saturday, saturday + timedelta(2)))
    assert [f.height for f in got] == [0] and em.requests == 0


def test_capabilities_declare_trades() -> None:
    alpaca, polygon = open_provider("alpaca"), open_provider("polygon")
    assert (alpaca.capabilities.trade_symbols, alpaca.capabilities.trades_per_page) == (
        200,
        10_000,
    )
    assert (polygon.capabilities.trade_symbols, polygon.capabilities.trades_per_page) == (
        1,
        50_000,
    )
    for name in ("yahoo", "binance"):
        caps = open_provider(name).capabilities
        assert (caps.trade_symbols, caps.trades_per_page) == (0, 0)


def test_massive_answers_newest_first_unless_asked_oldest_first(emulator) -> None:
    em = emulator("polygon", trades_per_minute=PER_MINUTE)
    import httpx

    url = f"{em.url}/v3/trades/AAPL"
    headers = {"Authorization": f"Bearer {KEY}"}
    newest = httpx.get(url, params={"timestamp": "2024-06-03", "limit": 5}, headers=headers)
    stamps = [r["sip_timestamp"] for r in newest.json()["results"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 5
    assert newest.json()["results"][0]["conditions"] == [12]  # the post-market print
    oldest = httpx.get(
        url, params={"timestamp": "2024-06-03", "order": "asc", "limit": 5}, headers=headers
    )
    stamps = [r["sip_timestamp"] for r in oldest.json()["results"]]
    assert stamps == sorted(stamps)
    # What the provider stores is oldest first whatever the vendor's default.
    got = pl.concat(pages(provider("polygon", em, trades_page_limit=500), ("AAPL",), one_day()))
    assert got["ts"].is_sorted() and got.height == SESSION


def one_day() -> DateRange:
    return DateRange(MONDAY, TUESDAY)


# -- duplicates, disorder and impossible prints ---------------------------------------------


def faulted(trading: str, emulator, fault: str) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """The pages of one session of AAPL (3 of 520 prints and one of 40) with ``fault`` forced
    on the second page, and the truth."""
    em = emulator(trading, trades_per_minute=PER_MINUTE, seed=7)
    p = provider(trading, em, trades_page_limit=520)

    def before(i: int) -> None:
        if i == 1:
            em.faults.force(fault)

    got = pages(p, ("AAPL",), one_day(), before_page=before)
    assert em.faults.injected[fault] == 1
    return got, as_vendor_writes(trading, truth(["AAPL"], [MONDAY]))


def test_a_print_sent_again_across_pages_is_handed_on(trading, emulator) -> None:
    got, want = faulted(trading, emulator, "duplicate")
    assert got[1].row(0) == got[0].row(-1)  # the vendor repeated page 1's last print
    both = pl.concat(got)
    assert both.height == want.height + 1
    assert both.unique(maintain_order=True).sort("symbol", "ts").equals(want)


def test_a_page_out_of_order_is_handed_on_as_it_came(trading, emulator) -> None:
    got, want = faulted(trading, emulator, "unordered")
    assert got[1]["ts"].is_sorted(descending=True) and not got[1]["ts"].is_sorted()
    assert pl.concat(got).sort("symbol", "ts").equals(want)


@pytest.mark.parametrize(
    ("fault", "bad"),
    [
        ("nan", pl.col("price").is_nan()),
        ("negative", pl.col("price") < 0),
        ("zero", pl.col("size") == 0),
    ],
)
def test_impossible_prints_are_handed_on_for_validation(trading, emulator, fault, bad) -> None:
    got, want = faulted(trading, emulator, fault)
    both = pl.concat(got)
    [spoiled] = both.filter(bad).rows(named=True)
    assert both.height == want.height  # nothing dropped: the core records it with its stage
    truthful = want.filter(pl.col("trade_id") == spoiled["trade_id"]).row(0, named=True)
    assert spoiled["ts"] == truthful["ts"]
    if fault == "zero":
        assert spoiled["price"] == truthful["price"]
    else:
        assert spoiled["size"] == truthful["size"]
        assert math.isnan(spoiled["price"]) or spoiled["price"] == -truthful["price"]


def test_a_print_outside_the_request_is_handed_on(trading, emulator) -> None:
    got, want = faulted(trading, emulator, "outside")
    both = pl.concat(got)
    opened, closed = XNYS.open_close(MONDAY)
    outside = both.filter((pl.col("ts") < opened) | (pl.col("ts") >= closed))
    assert outside.height == 1 and both.height == want.height + 1
    assert outside["ts"][0] < opened  # before the request: pre-market, or weeks back
    assert both.filter(pl.col("ts") >= opened).sort("ts").equals(want)


def test_every_spoiled_page_seeded_at_random_keeps_the_true_prints(trading, emulator) -> None:
    spec = "duplicate=0.3,unordered=0.3,outside=0.3,nan=0.2,negative=0.2,zero=0.2"
    em = emulator(trading, trades_per_minute=PER_MINUTE, faults=spec, seed=3)
    got = pl.concat(pages(provider(trading, em, trades_page_limit=300), SYMBOLS, one_day()))
    assert sum(em.faults.injected.values()) >= 3
    want = as_vendor_writes(trading, truth(SYMBOLS, [MONDAY]))
    opened, closed = XNYS.open_close(MONDAY)
    clean = got.filter(
        pl.col("price").is_finite()
        & (pl.col("price") > 0)
        & (pl.col("size") > 0)
        & pl.col("ts").is_between(opened, closed, closed="left")
    ).unique()
    # Every print kept clean is true; every true print not spoiled is there.
    assert clean.join(want, on=list(want.columns), how="anti").is_empty()
    spoiled = got.join(clean, on=list(want.columns), how="anti")
    missing = want.join(clean, on=list(want.columns), how="anti")
    assert missing.height <= spoiled.height
    assert missing.join(spoiled, on=["symbol", "trade_id"], how="anti").is_empty()


# -- the wire: odd values, transport failures -----------------------------------------------


def test_values_of_the_wrong_type_become_nulls_for_validation() -> None:
    from barlake.providers import alpaca, polygon

    ours = alpaca._trades(
        "alpaca",
        {
            "AAPL": [
                {"t": "2024-06-03T13:30:00.000000001Z", "x": "V", "p": "1.5", "s": 100, "i": 7},
                {"t": "not a time", "x": 4, "p": 2, "s": True, "c": "@", "i": "8", "z": "C"},
                {"t": "2024-06-03T13:30:00Z", "c": {"@": 1}, "i": 9.5},
                {"t": "2024-06-03T13:30:00Z", "c": ["@", 1.5, 4, None], "i": True},
            ]
        },
    )
    assert ours.select("exchange", "conditions", "trade_id", "tape").rows() == [
        ("V", [], "7", None),
        ("4", ["@"], "8", "C"),
        (None, None, None, None),
        (None, ["@", None, "4", None], None, None),
    ]
    assert ours["ts"].dt.epoch("ns").to_list()[:2] == [1717421400000000001, None]
    assert ours["price"].to_list()[:2] == [None, 2.0] and ours["size"].to_list()[:2] == [
        100.0,
        None,
    ]
    codes = {37: {"CTA": "I", "UTP": "I"}, 41: {"CTA": "1", "UTP": "X"}, 6: {"CTA": "I"}}
    first = {"sip_timestamp": 1717421400000000001, "price": 1.5, "size": 10, "exchange": 12}
    first |= {"conditions": [41, 37, 6, 99], "id": "52983525033527", "tape": 3}
    second = {"sip_timestamp": "soon", "price": None, "size": 1, "exchange": "?", "id": 9}
    second |= {"conditions": [41], "tape": 1}
    third = {"sip_timestamp": 1, "price": 1, "size": 1, "exchange": 1, "id": "1", "tape": 9}
    third |= {"conditions": "41"}
    massive = polygon._trades("polygon", [first, second, third], "AAPL", codes)
    # UTP's codes on tape C, CTA's on A, the other SIP's when that one has none, an id the
    # vendor's table does not list as its text; a tape outside 1-3 as its text, a bare code
    # as a list of one.
    assert massive.select("exchange", "conditions", "trade_id", "tape").rows() == [
        ("12", ["X", "I", "I", "99"], "52983525033527", "C"),
        ("?", ["1"], "9", "A"),
        ("1", ["1"], "1", "9"),
    ]
    assert massive["ts"].dt.epoch("ns").to_list() == [1717421400000000001, None, 1]


def test_a_trade_that_is_no_object_fails_the_page() -> None:
    from barlake.providers import alpaca, polygon

    with pytest.raises(TransientError, match="not an object"):
        alpaca._trades("alpaca", {"AAPL": [[1, 2]]})
    with pytest.raises(TransientError, match="not a list"):
        alpaca._trades("alpaca", {"AAPL": {"t": 1}})
    with pytest.raises(TransientError, match="not an object"):
        polygon._trades("polygon", ["x"], "AAPL", {})


@pytest.mark.parametrize(
    ("fault", "error"), [("5xx", TransientError), ("malformed", TransientError)]
)
def test_transport_faults_map_onto_errors(trading, emulator, fault, error) -> None:
    em = emulator(trading, trades_per_minute=PER_MINUTE)
    em.faults.force(fault)
    with pytest.raises(error):
        pages(provider(trading, em), ("AAPL",), one_day())


def test_refused_credentials_and_rate_limits_map_onto_errors(trading, emulator) -> None:
    # A minute's requests: one page (Massive's after its table of conditions).
    em = emulator(trading, trades_per_minute=PER_MINUTE, rate_limit=1 + (trading == "polygon"))
    with pytest.raises(AuthError):
        pages(provider(trading, em, api_key="wrong"), ("AAPL",), one_day())
    pages(provider(trading, em), ("AAPL",), one_day())
    with pytest.raises(RateLimitError) as caught:
        pages(provider(trading, em), ("AAPL",), one_day())
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)


def test_massive_condition_ids_come_back_as_each_tapes_sip_codes(emulator) -> None:
    # A truth of our own: an average-price print and a trade-through exemption on a NYSE
    # stock (tape A, CTA's codes B and 1) and on a Nasdaq one (tape C, UTP's W and X), which
    # the vendor writes with the same ids (2 and 41).
    opened, closed = XNYS.open_close(MONDAY)
    # Spanning the session, as the emulator's extended-hours prints (an hour before the first
    # and after the last) assume.
    stamps = [opened, opened + timedelta(seconds=1), closed - timedelta(seconds=2)]
    stamps.append(closed - timedelta(seconds=1))

    def truth(symbol: str, session: date) -> pl.DataFrame:
        if session != MONDAY:
            return trades_.empty()
        tape, codes = ("A", ["B", "1"]) if symbol == "NYSE1" else ("C", ["W", "X"])
        rows = [
            (symbol, stamps[i], 10.0 + i, 100.0, "N", c, str(i + 1), tape)
            for i, c in enumerate([["@"], codes, [codes[0]], ["I", "F"]])
        ]
        columns = [c for c in trades_.SCHEMA if c != "source"]
        frame = pl.DataFrame(rows, schema={c: trades_.SCHEMA[c] for c in columns}, orient="row")
        return frame.with_columns(pl.lit("test").alias("source"))

    em = emulator("polygon", trades=truth)
    got = pl.concat(pages(provider("polygon", em), ("NYSE1", "NASDAQ1"), one_day()))
    assert got.select("symbol", "conditions").rows() == [
        ("NYSE1", []),
        ("NYSE1", ["B", "1"]),
        ("NYSE1", ["B"]),
        ("NYSE1", ["I", "F"]),
        ("NASDAQ1", []),
        ("NASDAQ1", ["W", "X"]),
        ("NASDAQ1", ["W"]),
        ("NASDAQ1", ["I", "F"]),
    ]
    assert got["exchange"].unique().to_list() == ["10"]
    assert got["tape"].to_list()[::4] == ["A", "C"]
    tables = [p for _, p in em.log if p == "/v3/reference/conditions"]
    assert len(tables) == 1  # read once, for both symbols


# -- the emulators' own rules ---------------------------------------------------------------


def test_the_alpaca_emulator_validates_its_trades_query_as_the_vendor(emulator) -> None:
    import httpx

    em = emulator("alpaca", trades_per_minute=PER_MINUTE, now=datetime(2024, 6, 3, 15, tzinfo=UTC))
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}

    def get(path: str, **params: Any) -> httpx.Response:
        return httpx.get(f"{em.url}{path}", params=params, headers=headers)

    day = {"start": "2024-05-31", "end": "2024-05-31T23:59:59Z", "feed": "iex"}
    assert get("/v2/stocks/trades", **day).status_code == 400  # no symbols
    assert get("/v2/stocks/trades", symbols="AAPL", limit=10_001, **day).status_code == 422
    assert get("/v2/stocks/trades", symbols="AAPL", **{**day, "start": "soon"}).status_code == 422
    assert get("/v2/stocks/trades", symbols="AAPL", **{**day, "sort": "up"}).status_code == 422
    recent = {"start": "2024-06-03T14:00:00Z", "feed": "sip"}  # now is 15:00: SIP refused
    assert get("/v2/stocks/trades", symbols="AAPL", **recent).status_code == 403
    # Nanosecond bounds, both inclusive; the single-symbol endpoint's own shape.
    first = get("/v2/stocks/AAPL/trades", limit=2, **day).json()
    assert set(first) == {"trades", "symbol", "next_page_token"} and len(first["trades"]) == 2
    t = first["trades"][1]["t"]
    again = get("/v2/stocks/AAPL/trades", **{**day, "start": t, "end": t}).json()
    assert [p["t"] for p in again["trades"]] == [t] and again["next_page_token"] is None
    unknown = get("/v2/stocks/trades", symbols="AAPL,NOPE", limit=1, **day).json()
    assert list(unknown["trades"]) == ["AAPL"]
    em_known = emulator("alpaca", symbols=["AAPL"], trades_per_minute=PER_MINUTE)
    answer = httpx.get(
        f"{em_known.url}/v2/stocks/trades",
        params={"symbols": "MSFT", **day},
        headers=headers,
    ).json()
    assert answer == {"trades": {}, "next_page_token": None}  # symbols without prints omitted


def test_the_massive_emulator_validates_its_trades_query_as_the_vendor(emulator) -> None:
    import httpx

    em = emulator("polygon", trades_per_minute=PER_MINUTE)

    def get(**params: Any) -> httpx.Response:
        return httpx.get(f"{em.url}/v3/trades/AAPL", params={"apiKey": KEY, **params})

    assert get(timestamp="2024-06-03", limit=50_001).status_code == 400
    assert get(timestamp="2024-06-03", order="up").status_code == 400
    assert get(timestamp="2024-06-03", sort="price").status_code == 400
    assert get(timestamp="June").status_code == 400
    whole = get(timestamp="2024-06-03", limit=50_000, order="asc").json()["results"]
    assert len(whole) == SESSION + 2  # the New York day: the session and its extended hours
    assert "next_url" not in get(timestamp="2024-06-03", limit=50_000).json()
    stamps = [r["sip_timestamp"] for r in whole]
    gt = get(**{"timestamp.gt": stamps[1], "timestamp.lte": stamps[3], "order": "asc"})
    assert [r["sip_timestamp"] for r in gt.json()["results"]] == stamps[2:4]
    # A date bound is a New York day: .lt the day after keeps the whole day.
    lt = get(**{"timestamp.gte": "2024-06-03", "timestamp.lt": "2024-06-04", "limit": 50_000})
    assert len(lt.json()["results"]) == len(whole)
    assert get(timestamp="2024-06-01").json() == {"status": "OK", "request_id": ANY}
    assert "apiKey" not in get(timestamp="2024-06-03", limit=5).json()["next_url"]


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY = _Any()
