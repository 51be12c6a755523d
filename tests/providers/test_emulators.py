"""The emulators speak their vendors' wire formats as the vendors document them: auth, validation
and its error bodies, pagination, rate-limit headers, and faults on demand. Yahoo's and
Binance's emulators are tested in test_yahoo and test_binance."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import date

import httpx
import pytest

from barlake.errors import UsageError
from barlake.providers.emulators import Faults, parse_faults, serve

from .support import KEY, SECRET, expected

ALPACA_AUTH = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
DAILY = {"timeframe": "1Day", "start": "2024-06-03", "end": "2024-06-07T23:00:00Z", "feed": "iex"}


def get(em, path: str, params=None, headers=None) -> httpx.Response:
    return httpx.get(f"{em.url}{path}", params=params, headers=headers, timeout=5)


# -- Alpaca --------------------------------------------------------------------------------


def test_alpaca_wants_both_headers_and_refuses_with_a_code(emulator) -> None:
    em = emulator("alpaca")
    refused = {"code": 40110000, "message": "request is not authorized"}
    for headers in ({}, {"APCA-API-KEY-ID": KEY}, {**ALPACA_AUTH, "APCA-API-SECRET-KEY": "no"}):
        answer = get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, headers)
        assert (answer.status_code, answer.json()) == (401, refused)
        assert answer.headers["X-RateLimit-Limit"] == "10000"  # a refusal counts nothing
        assert answer.headers["X-RateLimit-Remaining"] == "10000"


def test_alpaca_sends_rate_limit_headers_on_every_answer(emulator) -> None:
    em = emulator("alpaca")  # no rate_limit given: the paid plan's 10,000 a minute
    ok = get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, ALPACA_AUTH)
    bad = get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY, "limit": "0"}, ALPACA_AUTH)
    assert (ok.status_code, bad.status_code) == (200, 422)
    assert [a.headers["X-RateLimit-Limit"] for a in (ok, bad)] == ["10000", "10000"]
    assert [a.headers["X-RateLimit-Remaining"] for a in (ok, bad)] == ["9999", "9998"]
    assert 55 < int(ok.headers["X-RateLimit-Reset"]) - time.time() <= 61


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"timeframe": "60Min"}, 422, "invalid timeframe"),
        ({"timeframe": "1day"}, 422, "invalid timeframe"),
        ({"limit": "10001"}, 422, "invalid limit: must be in range 1-10000"),
        ({"start": "yesterday"}, 422, "invalid start"),
        ({"feed": "nasdaq"}, 422, "invalid feed"),
        ({"adjustment": "split,magic"}, 422, "invalid adjustment"),
        ({"symbols": ""}, 400, "missing symbols"),
        (
            {"feed": "sip", "end": None},
            403,
            "subscription does not permit querying recent SIP data",
        ),
    ],
)
def test_alpaca_validates_like_the_vendor(emulator, change, status, message) -> None:
    em = emulator("alpaca")
    params = {k: v for k, v in {"symbols": "AAPL", **DAILY, **change}.items() if v is not None}
    answer = get(em, "/v2/stocks/bars", params, ALPACA_AUTH)
    assert answer.status_code == status
    assert answer.json()["message"] == message and isinstance(answer.json()["code"], int)


def test_alpaca_pages_symbol_first_with_a_shared_limit(emulator) -> None:
    em = emulator("alpaca", symbols=["AAA", "BBB"])
    params = {"symbols": "CCC,BBB,AAA", **DAILY, "limit": "3"}
    pages = []
    while True:
        body = get(em, "/v2/stocks/bars", params, ALPACA_AUTH).json()
        pages.append(body["bars"])
        if body["next_page_token"] is None:
            break
        params["page_token"] = body["next_page_token"]
    # 2 known symbols x 5 sessions = 10 bars: pages of 3, 3, 3, 1; AAA spans two pages.
    assert [{s: len(b) for s, b in page.items()} for page in pages] == [
        {"AAA": 3},
        {"AAA": 2, "BBB": 1},
        {"BBB": 3},
        {"BBB": 1},
    ]
    first = pages[0]["AAA"][0]
    assert first["t"] == "2024-06-03T04:00:00Z"  # midnight New York time
    assert set(first) == {"t", "o", "h", "l", "c", "v", "n", "vw"} and isinstance(first["v"], int)
    want = expected(["AAA"], "1day", date(2024, 6, 3), date(2024, 6, 7)).row(0, named=True)
    assert (first["o"], first["c"], first["n"]) == (want["open"], want["close"], want["trades"])
    token = base64.b64decode(params["page_token"]).decode()
    assert token.startswith("BBB|D|2024-06-06T04:00:00.000000000")


def test_alpaca_single_symbol_endpoint_and_empty_answers(emulator) -> None:
    em = emulator("alpaca", symbols=["AAPL"])
    body = get(em, "/v2/stocks/AAPL/bars", DAILY, ALPACA_AUTH).json()
    assert body["symbol"] == "AAPL" and len(body["bars"]) == 5
    body = get(em, "/v2/stocks/GHOST/bars", DAILY, ALPACA_AUTH).json()
    assert body == {"bars": None, "symbol": "GHOST", "next_page_token": None}
    body = get(em, "/v2/stocks/bars", {"symbols": "GHOST", **DAILY}, ALPACA_AUTH).json()
    assert body == {"bars": {}, "next_page_token": None}


def test_alpaca_intraday_includes_extended_hours_on_the_clock_hour(emulator) -> None:
    em = emulator("alpaca")
    params = {"symbols": "AAPL", "timeframe": "1Hour", "start": "2024-06-03", "end": "2024-06-04"}
    stamps = [
        b["t"] for b in get(em, "/v2/stocks/bars", params, ALPACA_AUTH).json()["bars"]["AAPL"]
    ]
    # 08:00 pre-market, 09:00 (holding 09:30-10:00) .. 15:00, then 16:00 post-market (EDT).
    assert stamps[0] == "2024-06-03T12:00:00Z" and stamps[1] == "2024-06-03T13:00:00Z"
    assert stamps[-1] == "2024-06-03T20:00:00Z" and len(stamps) == 9


def test_alpaca_rate_limit_headers_and_429(emulator) -> None:
    em = emulator("alpaca", rate_limit=2, window_s=30)
    answers = [get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, ALPACA_AUTH) for _ in "abc"]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[2].json()["message"] == "rate limit exceeded"
    assert 25 < int(answers[2].headers["X-RateLimit-Reset"]) - time.time() <= 31


# -- Polygon -------------------------------------------------------------------------------

AGGS = "/v2/aggs/ticker/AAPL/range/1/day/2024-06-03/2024-06-07"


def test_polygon_key_in_query_or_bearer(emulator) -> None:
    em = emulator("polygon")
    assert get(em, AGGS, {"apiKey": KEY}).status_code == 200
    assert get(em, AGGS, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    missing, wrong = get(em, AGGS), get(em, AGGS, {"apiKey": "nope"})
    assert (missing.status_code, missing.json()["error"]) == (401, "API Key was not provided")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "Unknown API Key")
    assert wrong.json()["status"] == "ERROR" and wrong.json()["request_id"]


def test_polygon_next_url_carries_no_key_and_pages_through(emulator) -> None:
    em = emulator("polygon")
    body = get(em, AGGS, {"apiKey": KEY, "limit": "2", "adjusted": "false"}).json()
    assert body["adjusted"] is False and body["resultsCount"] == 2
    assert body["results"][0]["t"] == 1717387200000  # 2024-06-03 00:00 EDT
    assert set(body["results"][0]) == {"v", "vw", "o", "c", "h", "l", "t", "n"}
    seen = [r["t"] for r in body["results"]]
    while "next_url" in body:
        assert KEY not in body["next_url"] and "cursor=" in body["next_url"]
        body = httpx.get(body["next_url"], headers={"Authorization": f"Bearer {KEY}"}).json()
        seen += [r["t"] for r in body.get("results", [])]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen)


@pytest.mark.parametrize(
    ("path", "params", "status", "word"),
    [
        ("/v2/aggs/ticker/AAPL/range/1/day/2024-13-01/2024-06-07", {}, 400, "from"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2024-06-03/2024-06-07", {"sort": "up"}, 400, "sort"),
        ("/v2/aggs/ticker/AAPL/range/1/day/2024-06-03/2024-06-07", {"limit": "0"}, 400, "limit"),
        ("/v2/aggs/grouped/locale/us/market/stocks/2999-01-01", {}, 403, "today's data"),
        ("/v2/nothing/here", {}, 404, ""),
    ],
)
def test_polygon_refusals(emulator, path, params, status, word) -> None:
    em = emulator("polygon")
    answer = get(em, path, {"apiKey": KEY, **params})
    assert answer.status_code == status
    assert word in (answer.json().get("error") or answer.json().get("message") or "")


def test_polygon_grouped_daily_is_the_market_at_the_close(emulator) -> None:
    em = emulator("polygon", symbols=["AAPL", "MSFT", "ZZZ"])
    body = get(em, "/v2/aggs/grouped/locale/us/market/stocks/2024-06-03", {"apiKey": KEY}).json()
    assert sorted(r["T"] for r in body["results"]) == ["AAPL", "MSFT", "ZZZ"]
    assert {r["t"] for r in body["results"]} == {1717444800000}  # 16:00 EDT
    holiday = get(em, "/v2/aggs/grouped/locale/us/market/stocks/2024-06-19", {"apiKey": KEY})
    assert "results" not in holiday.json() and holiday.json()["resultsCount"] == 0


def test_polygon_429_body_and_retry_after(emulator) -> None:
    em = emulator("polygon", rate_limit=1, window_s=30)
    first, second = get(em, AGGS, {"apiKey": KEY}), get(em, AGGS, {"apiKey": KEY})
    assert (first.status_code, second.status_code) == (200, 429)
    assert second.json()["error"].startswith("You've exceeded the maximum requests per minute")
    assert 25 <= int(second.headers["Retry-After"]) <= 30


# -- what was served -----------------------------------------------------------------------


def test_duplicates_count_a_query_answered_200_twice(emulator) -> None:
    em = emulator("alpaca", faults={"5xx": 1.0})
    failed = get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, ALPACA_AUTH)
    assert failed.status_code == 500
    em.faults = Faults(None)
    # the failed call's retry is the first answer of 200 to that query: no duplicate
    for symbols in ("AAPL", "MSFT", "AAPL"):
        answer = get(em, "/v2/stocks/bars", {"symbols": symbols, **DAILY}, ALPACA_AUTH)
        assert answer.status_code == 200
    page = get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY, "limit": "2"}, ALPACA_AUTH)
    assert page.status_code == 200  # another query of the same symbols: not a duplicate
    assert em.duplicates == 1
    assert [status for _, status in em.arrivals] == [500, 200, 200, 200, 200]
    poly = emulator("polygon")
    # the same query with another way of giving the key is the same request
    assert get(poly, AGGS, {"apiKey": KEY}).status_code == 200
    assert get(poly, AGGS, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert poly.duplicates == 1
    em.forget()
    assert (em.duplicates, em.arrivals, em.log) == (0, [], [])
    assert get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, ALPACA_AUTH).status_code == 200
    assert em.duplicates == 0


# -- faults and serving --------------------------------------------------------------------


def test_fault_specs_parse_and_refuse_nonsense() -> None:
    assert parse_faults("5xx=0.1, slow=0.05") == {"5xx": 0.1, "slow": 0.05}
    assert parse_faults(None) == {}
    for bad, word in (
        ("lag=0.1", "unknown fault"),
        ("5xx=2", "probabilities"),
        ("5xx", "NAME=RATE"),
    ):
        with pytest.raises(UsageError, match=word):
            parse_faults(bad)


def test_faults_are_seeded_and_forcible() -> None:
    runs = [Faults("5xx=0.3,nan=0.3", seed=5) for _ in "ab"]
    draws = [[faults.draw() for _ in range(20)] for faults in runs]
    assert draws[0] == draws[1] and any(draws[0]) and not all(draws[0])
    faults = Faults(seed=1)
    faults.force("truncated", 2)
    assert [faults.draw() for _ in "abc"] == [{"truncated"}, {"truncated"}, set()]
    assert faults.injected["truncated"] == 2


@pytest.mark.parametrize("fault", ["truncated", "malformed", "5xx"])
def test_faults_break_the_wire(emulator, fault) -> None:
    em = emulator("polygon")
    em.faults.force(fault)
    if fault == "truncated":
        with pytest.raises(httpx.RemoteProtocolError):
            get(em, AGGS, {"apiKey": KEY})
    else:
        answer = get(em, AGGS, {"apiKey": KEY})
        assert answer.status_code == (500 if fault == "5xx" else 200)
        if fault == "malformed":
            with pytest.raises(json.JSONDecodeError):
                answer.json()
    assert get(em, AGGS, {"apiKey": KEY}).json()["resultsCount"] == 5


def test_serve_blocks_until_stopped() -> None:
    ready = threading.Event()
    started = []

    def on_ready(em) -> None:
        started.append(em)
        ready.set()

    thread = threading.Thread(
        target=serve, args=("alpaca", 0, KEY, SECRET, None, "slow=0"), kwargs={"on_ready": on_ready}
    )
    thread.start()
    assert ready.wait(10)
    em = started[0]
    assert get(em, "/v2/stocks/bars", {"symbols": "AAPL", **DAILY}, ALPACA_AUTH).status_code == 200
    assert thread.is_alive()
    em.stop()
    thread.join(5)
    assert not thread.is_alive()
    with pytest.raises(UsageError, match=r"no emulator.*yahoo, binance"):
        serve("tiingo")
