"""The demo's corporate actions: cash dividends and splits, for vendors that report them (Yahoo's
``events``; its ``adjclose`` is the close adjusted for the dividends since).

The demo's bars are raw, as an exchange prints them: its prices jump by a split's ratio on
the ex-date (``demo.splits``); Yahoo's emulator divides them back out. Splits are the real
ones of well-known tickers; dividends are quarterly for the well-known tickers
that pay them (``PAYERS``) and about two other stocks in five, their months, day and yield
drawn from the name's hash, each paid on its ex-date's session at
a share of the close before it. Crypto pairs pay none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from barlake.domain.actions import Action, split
from barlake.domain.ranges import DateRange
from barlake.domain.symbols import is_crypto_pair
from barlake.providers.demo.names import LISTED
from barlake.providers.demo.series import NEVER, draws, frame_of, profile_of
from barlake.providers.demo.splits import SPLITS, Split

__all__ = [
    "PAYERS",
    "SPLITS",
    "Dividend",
    "Split",
    "demo_actions",
    "demo_dividends",
    "demo_splits",
]


@dataclass(frozen=True)
class Dividend:
    """A cash dividend: its ex-date, the amount a share, and what it leaves of the close
    before it (the factor ``adjclose`` applies to earlier closes)."""

    session: date
    amount: float
    factor: float


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


def demo_actions(symbols: list[str] | tuple[str, ...], window: DateRange) -> list[Action]:
    """The splits and dividends of ``symbols`` with ex-dates in ``window``, as actions of
    source ``demo``, ordered by symbol, ex-date and type: what the demo provider serves and
    the emulators translate into their vendors' answers."""
    out: list[Action] = []
    for symbol in sorted(set(symbols)):
        out += [
            split(symbol, s.session, s.numerator, s.denominator, "demo")
            for s in demo_splits(symbol, window)
        ]
        out += [
            Action(symbol, "cash_dividend", d.session, "demo", amount=d.amount, currency="USD")
            for d in demo_dividends(symbol, window)
        ]
    return sorted(out, key=lambda a: (a.symbol, a.ex_date, a.type))
