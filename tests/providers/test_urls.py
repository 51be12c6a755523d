"""The URL rule: how symbols travel in a request URL, and the length the planner budgets."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from barlake.domain.ranges import DateRange
from barlake.providers import urls
from barlake.providers.alpaca import BASE_URL, SYMBOLS_CHARS, AlpacaProvider
from barlake.providers.base import Request

NAMES = ["AAPL", "BRK/B", "BF.B", "X-Y_Z~", "ÉCO", "A%B", "A,B"]


def sent(symbols: list[str]) -> str:
    """The ``symbols`` query value exactly as the HTTP client puts it on the wire."""
    url = httpx.URL("/v2/stocks/bars").copy_merge_params({"symbols": urls.joined(symbols)})
    (value,) = [p for p in url.query.decode().split("&") if p.startswith("symbols=")]
    return value.removeprefix("symbols=")


def test_a_symbol_is_one_percent_encoded_path_segment() -> None:
    assert urls.segment("AAPL") == "AAPL"
    assert urls.segment("BRK/B") == "BRK%2FB"
    assert urls.segment("A,B") == "A%2CB"
    assert urls.symbol_chars("BRK/B") == 7


@pytest.mark.parametrize("count", [1, 2, len(NAMES)])
def test_url_chars_is_the_length_the_client_sends(count: int) -> None:
    chosen = NAMES[:count]
    assert urls.url_chars(chosen) == len(sent(chosen))


def test_a_space_may_travel_shorter_than_counted_never_longer() -> None:
    assert len(sent(["A B"])) <= urls.url_chars(["A B"])


def test_lengths_add_up_as_lists_are_joined() -> None:
    assert urls.url_chars([]) == 0
    for cut in range(1, len(NAMES)):
        left, right = NAMES[:cut], NAMES[cut:]
        total = urls.joined_chars(urls.url_chars(left), urls.url_chars(right))
        assert total == urls.url_chars(NAMES)


def test_fits_a_budget_or_none() -> None:
    assert urls.fits(10, 10) and not urls.fits(11, 10)
    assert urls.fits(10**9, None)


def test_an_alpaca_pack_at_its_budget_stays_under_8_kb() -> None:
    """The most symbols the planner packs into one Alpaca request, with every other parameter
    and a long page token, make a URL under 8 KB."""
    size = urls.symbol_chars("SYM0000/W")
    most = (SYMBOLS_CHARS + len(urls.SEPARATOR)) // (size + len(urls.SEPARATOR))
    pack = [f"SYM{i:04d}/W" for i in range(most)]
    assert urls.fits(urls.url_chars(pack), SYMBOLS_CHARS)
    assert not urls.fits(urls.url_chars([*pack, "SYM9999/W"]), SYMBOLS_CHARS)
    assert urls.url_chars(pack) > SYMBOLS_CHARS - 20
    request = Request("alpaca", tuple(pack), "1min", DateRange(date(2024, 6, 3), date(2024, 6, 15)))
    params = AlpacaProvider().params(request, cursor="t" * 300)
    assert params is not None
    url = httpx.URL(BASE_URL + "/v2/stocks/bars").copy_merge_params(params)
    assert len(str(url)) < 8_192
