"""Bars from trades: any intraday length (``1s``, ``10s``, ``1min``...) aggregated from prints,
with the condition filters vendors apply when they build their own bars.

The consolidated tapes (CTA for NYSE-listed, UTP for Nasdaq-listed) flag each print with sale
conditions and say which prints may set the last, high and low price and which count in the
volume; vendors' bars follow those tables. ``Conditions`` holds the two sets this module reads:

* ``ohlc_exclude``: prints that never set open, high, low or close (odd lots, average-price and
  out-of-sequence prints, corrections of earlier prints, prior-reference and next-day prints...);
* ``volume_exclude``: prints left out of volume, vwap and the trade count (the official
  open and close reports, which repeat volume already printed).

A print is excluded when any of its conditions is in the set. Odd lots (``I``) count in the
volume but not in the prices, as on the tapes. Pure functions only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from barlake.errors import UsageError

#: Conditions whose prints set no price (CTA/UTP sale conditions, as vendors spell them):
#: I odd lot, W average price, Z sold out of sequence, U extended hours sold out of
#: sequence, T extended hours (Form T), P prior reference price, 4 derivatively priced,
#: 7 qualified contingent trade, V contingent trade, C cash sale, N next day, R seller,
#: H price variation, M market center official close, Q market center official open,
#: 9 corrected consolidated close, B bunched sold (out of sequence), G bunched sold.
OHLC_EXCLUDE = frozenset(
    ["I", "W", "Z", "U", "T", "P", "4", "7", "V", "C", "N", "R", "H", "M", "Q", "9", "B", "G"]
)
#: Conditions whose prints are not volume: the official open and close reports.
VOLUME_EXCLUDE = frozenset(["M", "Q", "9"])


@dataclass(frozen=True)
class Conditions:
    """Which prints set the prices and which count in the volume (see the module)."""

    ohlc_exclude: frozenset[str] = field(default=OHLC_EXCLUDE)
    volume_exclude: frozenset[str] = field(default=VOLUME_EXCLUDE)

    @classmethod
    def none(cls) -> Conditions:
        """Every print sets the prices and counts in the volume."""
        return cls(frozenset(), frozenset())


def every(length: str | timedelta) -> str:
    """``length`` (``1s``, ``10s``, ``5min``, ``1h``, ``250ms``, a ``timedelta``) as a polars
    duration, positive and at most a day; UsageError otherwise."""
    if isinstance(length, timedelta):
        micros = length // timedelta(microseconds=1)
    else:
        found = _LENGTH.fullmatch(length.strip().lower())
        if found is None:
            msg = f"cannot read bar length {length!r}; give e.g. 1s, 10s, 30s, 1min, 5min, 1h"
            raise UsageError(msg)
        micros = int(found[1]) * _UNITS[found[2]]
    if not 0 < micros <= 86_400_000_000:
        msg = f"a bar length must be positive and at most a day, got {length}"
        raise UsageError(msg)
    return f"{micros}us"


_LENGTH = re.compile(r"(\d+)\s*(ms|s|sec|m|min|h|hour)")
_UNITS = {"ms": 1000, "s": 10**6, "sec": 10**6, "m": 6 * 10**7, "min": 6 * 10**7}
_UNITS |= {"h": 36 * 10**8, "hour": 36 * 10**8}


def excluded(
    conditions: pa.Array | pa.ChunkedArray, *flags: frozenset[str]
) -> list[npt.NDArray[np.bool_]]:
    """For each set of ``flags``, for each print's condition list, whether one of them is in
    it. The lists' values are matched once per distinct value (a dictionary: trades files are
    read with one), then gathered, so a million prints take a few integer passes; a set no
    value matches costs nothing more."""
    lists = conditions.combine_chunks() if isinstance(conditions, pa.ChunkedArray) else conditions
    n = len(lists)
    none = np.zeros(n, dtype=np.bool_)
    if n == 0 or not any(flags):
        return [none for _ in flags]
    values = pc.list_flatten(lists)
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    indices: npt.NDArray[Any] | None = None
    owner: npt.NDArray[Any] | None = None
    out = []
    for chosen in flags:
        kind = values.dictionary.type
        known = pc.is_in(values.dictionary, value_set=pa.array(sorted(chosen), kind))
        matched = known.to_numpy(zero_copy_only=False)
        if not chosen or not matched.any():
            out.append(none)
            continue
        if indices is None or owner is None:
            indices = values.indices.fill_null(0).to_numpy()
            owner = pc.list_parent_indices(lists).to_numpy()
        out.append(np.bincount(owner, weights=matched[indices], minlength=n) > 0)
    return out


def bars_from_trades(
    prints: pl.DataFrame, length: str | timedelta, conditions: Conditions | None = None
) -> pl.DataFrame:
    """Bars of ``length`` from ``prints`` (the trades schema, any order), keyed by their UTC
    start (``ts``, microseconds, on the UTC clock grid), sorted by symbol and time. A bar
    exists where a print set its prices; ``volume``, ``vwap`` and ``trades`` count the prints
    ``conditions`` keeps in the volume (``Conditions()``, the vendors' usual filter, by
    default).

    Sorted runs of one symbol (a trades file) are aggregated with a few numpy passes each,
    not a group-by: that is what makes millions of prints a second."""
    rules = conditions or Conditions()
    step = int(every(length).removesuffix("us")) * 1000
    if prints.is_empty():
        return pl.DataFrame(schema=_SCHEMA)
    frame = prints
    if not (frame["symbol"].is_sorted() and _ts_sorted_within(frame)):
        frame = frame.sort("symbol", "ts", maintain_order=True)
    parts = [
        _aggregate(part.to_arrow(), step, rules)
        for part in frame.partition_by("symbol", maintain_order=True)
    ]
    return pl.concat(parts).sort("symbol", "ts") if len(parts) > 1 else parts[0]


#: The columns of bars from trades: the bar files' but ``source`` (``vwap`` and ``trades``
#: over the prints that count in the volume).
_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "ts": pl.Datetime("us", "UTC"),
    **{c: pl.Float64() for c in ("open", "high", "low", "close", "volume", "vwap")},
    "trades": pl.Int64(),
}


def _ts_sorted_within(frame: pl.DataFrame) -> bool:
    return (
        bool(frame.select(pl.col("ts").is_sorted().over("symbol").all()).item())
        if frame["symbol"].n_unique() > 1
        else frame["ts"].is_sorted()
    )


def session_bars(
    table: pa.Table,
    length: str | timedelta,
    conditions: Conditions | None = None,
    *,
    symbol: str | None = None,
) -> pl.DataFrame:
    """``bars_from_trades`` of one trades file as Arrow read it (one symbol, sorted by time;
    ``conditions`` best read as a dictionary: ``storage.trades.TradeStore.arrow``); the
    ``symbol`` column may be left unread when ``symbol`` says whose prints they are."""
    if table.num_rows == 0:
        return pl.DataFrame(schema=_SCHEMA)
    step = int(every(length).removesuffix("us")) * 1000
    return _aggregate(table, step, conditions or Conditions(), symbol)


def _numbers(column: pa.ChunkedArray | pa.Array) -> npt.NDArray[Any]:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _aggregate(
    part: pa.Table, step: int, rules: Conditions, symbol: str | None = None
) -> pl.DataFrame:
    ts = _numbers(part["ts"].cast(pa.int64()))
    price = _numbers(part["price"])
    size = _numbers(part["size"])
    bucket = ts // step
    lists = part["conditions"]
    no_price, no_volume = excluded(lists, rules.ohlc_exclude, rules.volume_exclude)
    sets, counts = ~no_price, ~no_volume

    b_p, p = bucket[sets], price[sets]
    starts = _starts(b_p)
    keys = b_p[starts]
    ends = np.append(starts[1:], len(b_p)) - 1
    open_, close = p[starts], p[ends]
    high, low = np.maximum.reduceat(p, starts), np.minimum.reduceat(p, starts)

    b_v, v, pv = bucket[counts], size[counts], price[counts] * size[counts]
    v_starts = _starts(b_v)
    v_keys = b_v[v_starts]
    where = np.searchsorted(v_keys, keys)
    known = (where < len(v_keys)) & (v_keys[np.minimum(where, len(v_keys) - 1)] == keys)
    volume = np.zeros(len(keys))
    notional = np.zeros(len(keys))
    trades = np.zeros(len(keys), dtype=np.int64)
    if len(v_keys):
        sums, notionals = np.add.reduceat(v, v_starts), np.add.reduceat(pv, v_starts)
        sizes = np.diff(np.append(v_starts, len(b_v)))
        volume[known], notional[known] = sums[where[known]], notionals[where[known]]
        trades[known] = sizes[where[known]]
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(volume > 0, notional / volume, np.nan)
    if symbol is None:
        symbol = part["symbol"][0].as_py()
    return pl.DataFrame(
        {
            "symbol": pl.Series([symbol], dtype=pl.String).gather(np.zeros(len(keys), np.int64)),
            "ts": pl.Series(keys * (step // 1000), dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "vwap": pl.Series(vwap).fill_nan(None),
            "trades": trades,
        },
        schema=_SCHEMA,
    )


def _starts(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Where each run of equal ``keys`` starts."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))).astype(np.int64)
