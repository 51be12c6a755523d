"""The demo's splits, and what they do to its raw bars: before a split's ex-date every price is
the split's ratio higher and every volume that much lower, so the raw series jumps by exactly
the ratio on the ex-date (on top of that session's own move), as an exchange prints it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl


@dataclass(frozen=True)
class Split:
    """A split of ``numerator`` new shares for ``denominator`` old ones on ``session``."""

    session: date
    numerator: int
    denominator: int

    @property
    def ratio(self) -> float:
        return self.numerator / self.denominator


#: Real splits of well-known tickers, and a reverse split of a made-up name.
SPLITS: dict[str, tuple[Split, ...]] = {
    "AAPL": (Split(date(2014, 6, 9), 7, 1), Split(date(2020, 8, 31), 4, 1)),
    "TSLA": (Split(date(2020, 8, 31), 5, 1), Split(date(2022, 8, 25), 3, 1)),
    "NVDA": (Split(date(2021, 7, 20), 4, 1), Split(date(2024, 6, 10), 10, 1)),
    "AMZN": (Split(date(2022, 6, 6), 20, 1),),
    "GOOGL": (Split(date(2022, 7, 18), 20, 1),),
    "GOOG": (Split(date(2022, 7, 18), 20, 1),),
    "WMT": (Split(date(2024, 2, 26), 3, 1),),
    "RSPLIT": (Split(date(2024, 3, 4), 1, 10),),
}

_DAY_US = 86_400_000_000


def split_factor(symbol: str, ts_us: npt.NDArray[np.int64]) -> npt.NDArray[np.float64] | None:
    """For bars of ``symbol`` starting at ``ts_us`` (epoch microseconds, UTC), the product of
    the ratios of the splits after each bar's UTC date; None when the symbol has no splits."""
    splits = SPLITS.get(symbol)
    if not splits:
        return None
    days = ts_us // _DAY_US
    factor = np.ones(len(ts_us))
    for s in splits:
        first = (np.datetime64(s.session, "D") - np.datetime64(0, "D")).astype(np.int64)
        factor[days < first] *= s.ratio
    return factor


def split_adjusted(frame: pl.DataFrame) -> pl.DataFrame:
    """Demo bars (the lake's schema, raw) as a vendor serves them split-adjusted: prices before
    each split divided by its ratio, volumes multiplied by it (whole shares)."""
    ts = frame["ts"].dt.epoch("us").to_numpy()
    symbols = frame["symbol"].to_numpy()
    factor = np.ones(frame.height)
    for symbol in SPLITS:
        rows = np.flatnonzero(symbols == symbol)
        if len(rows):
            part = split_factor(symbol, ts[rows])
            if part is not None:
                factor[rows] = part
    if (factor == 1).all():
        return frame
    f = pl.Series(factor)
    prices = [pl.col(c) / f for c in ("open", "high", "low", "close", "vwap") if c in frame.columns]
    return frame.with_columns(*prices, (pl.col("volume") * f).round())


def dividend_as_adjusted(symbol: str, ex: date, amount: float) -> float:
    """A dividend of ``amount`` a share on ``ex`` in today's shares: divided by the ratios of
    the splits after it (how Yahoo reports dividends)."""
    later = [s.ratio for s in SPLITS.get(symbol, ()) if s.session > ex]
    return round(amount / float(np.prod(later)) if later else amount, 6)
