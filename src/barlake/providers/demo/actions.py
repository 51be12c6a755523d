"""The demo's corporate actions: cash dividends and splits, for vendors that report them (Yahoo's
``events``; its ``adjclose`` is the close adjusted for the dividends since).

The demo's prices are split-adjusted, as Yahoo's are: a split is an event, not a jump. Splits
are the real ones of well-known tickers; dividends are quarterly for the well-known tickers
that pay them (``PAYERS``) and about two other stocks in five, their months, day and yield
drawn from the name's hash, each paid on its ex-date's session at
a share of the close before it. Crypto pairs pay none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from barlake.domain.ranges import DateRange
from barlake.domain.symbols import is_crypto_pair
from barlake.providers.demo.names import LISTED
from barlake.providers.demo.series import NEVER, draws, frame_of, profile_of


@dataclass(frozen=True)
class Dividend:
    """A cash dividend: its ex-date, the amount a share, and what it leaves of the close
    before it (the factor ``adjclose`` applies to earlier closes)."""

    session: date
    amount: float
    factor: float


@dataclass(frozen=True)
class Split:
    """A split of ``numerator`` new shares for ``denominator`` old ones on ``session``."""

    session: date
    numerator: int
    denominator: int


#: Real splits of well-known tickers.
SPLITS: dict[str, tuple[Split, ...]] = {
    "AAPL": (Split(date(2014, 6, 9), 7, 1), Split(date(2020, 8, 31), 4, 1)),
    "TSLA": (Split(date(2020, 8, 31), 5, 1), Split(date(2022, 8, 25), 3, 1)),
    "NVDA": (Split(date(2021, 7, 20), 4, 1), Split(date(2024, 6, 10), 10, 1)),
    "AMZN": (Split(date(2022, 6, 6), 20, 1),),
    "GOOGL": (Split(date(2022, 7, 18), 20, 1),),
    "GOOG": (Split(date(2022, 7, 18), 20, 1),),
    "WMT": (Split(date(2024, 2, 26), 3, 1),),
}


#: The well-known tickers (``names.LISTED``) that pay dividends; the others pay none.
PAYERS = frozenset(
    {"AAPL", "MSFT", "JPM", "JNJ", "XOM", "PG", "KO", "PEP", "WMT", "HD", "CVX", "UNH", "V"}
    | {"MA", "IBM", "INTC", "CSCO", "ORCL", "BAC", "SPY", "QQQ", "IWM", "DIA"}
)


def demo_splits(symbol: str, window: DateRange) -> list[Split]:
    """The splits of ``symbol`` on sessions inside ``window``."""
    return [s for s in SPLITS.get(symbol, ()) if window.start <= s.session < window.end]


def demo_dividends(symbol: str, window: DateRange) -> list[Dividend]:
    """The dividends of ``symbol`` whose ex-date is a session of it inside ``window``."""
    seed = profile_of(symbol).seed
    drawn = not is_crypto_pair(symbol) and (seed >> 48) % 5 < 2
    if not (symbol in PAYERS if symbol in LISTED else drawn):
        return []
    phase, day, share = seed % 3, 10 + (seed >> 4) % 15, 0.002 + ((seed >> 52) % 8) * 0.0005
    # A week before the window holds the close before its first ex-date.
    around = DateRange(window.start - timedelta(days=7), window.end)
    (plan,) = draws([symbol], "1day", around, NEVER)
    daily = frame_of([plan], "1day")
    days = daily["ts"].dt.date().to_numpy().astype("datetime64[D]")
    closes = daily["close"].to_numpy()
    out = []
    month = date(around.start.year, around.start.month, 1)
    while month < window.end:
        if (month.month - phase) % 3 == 0:
            i = int(np.searchsorted(days, np.datetime64(month.replace(day=day), "D")))
            ex = date.fromisoformat(str(days[i])) if i < len(days) else None
            if ex is not None and i > 0 and window.start <= ex < window.end:
                amount = round(float(closes[i - 1]) * share, 4)
                out.append(Dividend(ex, amount, 1 - amount / float(closes[i - 1])))
        month = (month + timedelta(days=32)).replace(day=1)
    return out
