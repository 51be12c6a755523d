"""Bars and trades on the wire: vendors' bar objects and columns into the lake's bar schema,
and their print columns into the lake's trades schema (``wire_trades``), in bulk.

Alpaca and Polygon spell a bar's fields alike (``WIRE_KEYS``); each column is converted once,
value by value only where it holds odd values, and times are read as the vendor stamps them
(``Stamps``). ``to_sessions`` keeps the bars inside the sessions of the symbol's calendar.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate, chain, repeat
from typing import Any, Literal, TypeAlias

import polars as pl
import pyarrow as pa

from barlake.calendars.calendar import Calendar, in_session
from barlake.domain import bars
from barlake.domain import trades as trades_
from barlake.domain.intervals import Interval, spec
from barlake.errors import TransientError
from barlake.providers.http import quoted

#: How a vendor stamps a bar's time: RFC 3339 text, or epoch seconds or milliseconds.
Stamps: TypeAlias = Literal["rfc3339", "s", "ms"]

#: The lake's bar columns and the keys Alpaca and Polygon both give them on the wire.
WIRE_KEYS = {
    "open": "o",
    "high": "h",
    "low": "l",
    "close": "c",
    "volume": "v",
    "vwap": "vw",
    "trades": "n",
}

#: Alpaca's spelling of a time: RFC 3339 in UTC, whole seconds.
_UTC_SECONDS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"


def wire_bars(
    vendor: str,
    objects: Sequence[Any],
    *,
    symbols: str | Sequence[str],
    source: str,
    stamps: Stamps,
) -> pl.DataFrame:
    """Bars in the lake's schema from bar objects keyed as ``WIRE_KEYS``, with their time
    under ``t``: ``wire_columns`` of their values.

    ``symbols`` is the page's one symbol, or each object's. TransientError naming the first
    item of ``objects`` that is not an object.
    """
    if not set(map(type, objects)) <= {dict}:
        for item in objects:
            if not isinstance(item, dict):
                msg = f"{vendor} sent a bar that is not an object: {quoted(repr(item).encode())}"
                raise TransientError(msg)
    keys = {"ts": "t", **WIRE_KEYS}
    columns = {name: list(map(dict.get, objects, repeat(key))) for name, key in keys.items()}
    return wire_columns(columns, symbols=symbols, source=source, stamps=stamps)


def wire_columns(
    columns: Mapping[str, Sequence[Any] | pl.Series],
    *,
    symbols: str | Sequence[str],
    source: str,
    stamps: Stamps,
) -> pl.DataFrame:
    """Bars in the lake's schema from a page's columns of JSON values, keyed by the lake's
    names: ``ts`` and any of ``WIRE_KEYS`` (one left out is null).

    ``ts`` holds RFC-3339 strings, or epoch seconds or milliseconds, as ``stamps`` says.
    Values of the wrong type become nulls rather than errors, so that impossible bars reach
    the scheduler's validation (and become that symbol's error) instead of failing the whole
    page. A column whose values all have the expected JSON types is converted in one go; any
    other goes value by value, by the same rules. A column may also be a Series already of
    its lake type. ``symbols`` is the page's one symbol, or each bar's.
    """
    height = len(columns["ts"])
    if stamps == "rfc3339":
        ts = _times(_typed(columns["ts"], pl.String(), _TEXT, _text))
    else:
        epoch = _typed(columns["ts"], pl.Int64(), _WHOLE, _whole)
        ts = pl.from_epoch(epoch, time_unit=stamps).cast(pl.Datetime("us"))
        ts = ts.dt.replace_time_zone("UTC")
    values = {}
    for name in WIRE_KEYS:
        raw = columns.get(name)
        dtype = bars.SCHEMA[name]
        if raw is None:
            values[name] = pl.Series(name, [None] * height, dtype=dtype)
        elif name == "trades":
            values[name] = _typed(raw, dtype, _WHOLE, _integer)
        else:
            values[name] = _typed(raw, dtype, _NUMBER, _number)
    named = [symbols] * height if isinstance(symbols, str) else symbols
    frame = pl.DataFrame(
        {
            "symbol": pl.Series(values=named, dtype=pl.String),
            "ts": ts,
            **values,
            "source": pl.Series([source] * height, dtype=pl.String),
        }
    )
    return frame.select(list(bars.SCHEMA))


def wire_trades(
    columns: Mapping[str, Sequence[Any]],
    *,
    symbols: str | Sequence[str],
    source: str,
    stamps: Literal["rfc3339", "ns"],
) -> pl.DataFrame:
    """Prints in the lake's trades schema from a page's columns of JSON values, keyed by the
    lake's names (``ts``, ``price``, ``size``, ``exchange``, ``conditions``, ``trade_id``,
    ``tape``; one left out is null), in the vendor's order.

    ``ts`` holds RFC-3339 strings (up to nanoseconds) or epoch nanoseconds, as ``stamps``
    says. Codes and ids may be numbers (Massive's): they become their decimal text. As for
    bars, values of the wrong type become nulls rather than errors, so that an impossible
    print reaches validation (and becomes its symbol's error) instead of failing the page;
    nothing is dropped, sorted or deduplicated here. ``symbols`` is the page's one symbol, or
    each print's.
    """
    height = len(columns["ts"])
    if stamps == "rfc3339":
        ts = _nano_times(_typed(columns["ts"], pl.String(), _TEXT, _text))
    else:
        epoch = _typed(columns["ts"], pl.Int64(), _WHOLE, _whole)
        ts = epoch.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")

    def given(name: str) -> Sequence[Any]:
        return columns.get(name) or [None] * height

    frame = pl.DataFrame(
        {
            "symbol": pl.Series([symbols] * height if isinstance(symbols, str) else symbols),
            "ts": ts,
            "price": _typed(given("price"), pl.Float64(), _NUMBER, _number),
            "size": _typed(given("size"), pl.Float64(), _NUMBER, _number),
            "exchange": _texts(given("exchange")),
            "conditions": _code_lists(given("conditions")),
            "trade_id": _texts(given("trade_id")),
            "tape": _texts(given("tape")),
            "source": pl.Series([source] * height, dtype=pl.String),
        },
        schema=trades_.SCHEMA,
    )
    return frame


def recoded(
    frame: pl.DataFrame,
    by: pl.Expr,
    recode: Callable[[list[Any] | None, Any], list[Any] | None],
    dtype: pl.DataType,
) -> pl.Series:
    """``frame``'s ``conditions`` with each list replaced by ``recode(list, key)``, ``key``
    the value of ``by`` on its row (a print's SIP, say): computed once per distinct pair and
    joined back (a page holds a handful of distinct lists; ``list.eval`` with ``replace`` is
    a hundred times slower on a page of 50,000 prints)."""
    pairs = frame.select(pl.col("conditions"), by.alias("_by"), pl.int_range(pl.len()).alias("_i"))
    text = pl.col("conditions").list.join("\x1f")  # list as a join key (no code holds it)
    keyed = pairs.with_columns(text.alias("_k"), pl.col("conditions").is_null().alias("_null"))
    distinct = keyed.unique(["_k", "_null", "_by"], keep="first", maintain_order=True)
    table = distinct.select(
        "_k",
        "_null",
        "_by",
        pl.Series(
            "_new",
            [recode(c, b) for c, b in distinct.select("conditions", "_by").iter_rows()],
            dtype=dtype,
        ),
    )
    joined = keyed.join(table, on=["_k", "_null", "_by"], how="left", nulls_equal=True)
    return joined.sort("_i")["_new"].alias("conditions")


def to_sessions(frame: pl.DataFrame, interval: Interval, calendar: Calendar) -> pl.DataFrame:
    """Vendor bars keyed as the lake keys them.

    Daily bars move to their session date at 00:00 UTC (vendors stamp them at midnight or at
    the close, in exchange time). Intraday bars stay as the vendor stamps them if they overlap
    their session (``calendars.calendar.in_session``: a 09:00 hour holds 09:30-10:00 of a 09:30
    open); the others (pre- and post-market) are dropped: the lake stores regular sessions
    only, which is also what gap detection counts. Bars without a timestamp stay, for
    validation to reject.
    """
    if not spec(interval).intraday:
        local = pl.col("ts").dt.convert_time_zone(calendar.tz)
        day = local.dt.date().cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return frame.with_columns(day.alias("ts"))
    if frame.is_empty():
        return frame
    bounds = calendar.bar_sessions(frame["ts"])
    step = spec(interval).seconds * 1_000_000
    inside = in_session(pl.col("ts").dt.epoch("us"), step, pl.col("_open"), pl.col("_close"))
    joined = frame.with_columns(bounds["open"].alias("_open"), bounds["close"].alias("_close"))
    return joined.filter(pl.col("ts").is_null() | inside.fill_null(value=False)).select(
        frame.columns
    )


#: The JSON types each kind of column converts in one go.
_NUMBER: frozenset[type] = frozenset({int, float, type(None)})
_WHOLE: frozenset[type] = frozenset({int, type(None)})
_TEXT: frozenset[type] = frozenset({str, type(None)})


def _typed(
    values: Sequence[Any] | pl.Series,
    dtype: pl.DataType,
    kinds: frozenset[type],
    rule: Callable[[Any], Any],
) -> pl.Series:
    """``values`` as a Series of ``dtype``, each read by ``rule``: in one go when every value
    is of ``kinds`` (which ``rule`` keeps as they are), else value by value."""
    if isinstance(values, pl.Series):
        return values.cast(dtype, strict=True)
    if set(map(type, values)) <= kinds:
        return pl.Series(values=values, dtype=dtype)
    return pl.Series(values=[rule(v) for v in values], dtype=dtype)


def _times(text: pl.Series) -> pl.Series:
    """RFC-3339 strings as UTC instants; null where unreadable.

    Alpaca's spelling (``2024-06-03T13:30:00Z``) is read with its fixed format, several times
    faster than letting polars find the format; a page with any other (offsets, fractions of
    a second, an impossible date) is left to polars.
    """
    if text.drop_nulls().str.contains(_UTC_SECONDS).all():
        fixed = text.str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_unit="us", strict=False)
        if fixed.null_count() == text.null_count():
            return fixed.dt.replace_time_zone("UTC")
    return text.str.to_datetime(time_unit="us", time_zone="UTC", strict=False)


def _nano_times(text: pl.Series) -> pl.Series:
    """RFC-3339 strings, up to nanoseconds, as UTC instants in nanoseconds; null where
    unreadable (UTC with any fraction in one fixed format, else polars finds the format)."""
    fixed = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="ns", strict=False)
    if fixed.null_count() == text.null_count():
        return fixed.dt.replace_time_zone("UTC")
    return text.str.to_datetime(time_unit="ns", time_zone="UTC", strict=False)


def _texts(values: Sequence[Any]) -> pl.Series:
    """Codes or ids as text (``_code``): in one go when all are text, or all whole numbers
    (Massive's exchange and condition ids), else value by value."""
    kinds = set(map(type, values))
    if kinds <= _TEXT:
        return pl.Series(values=values, dtype=pl.String)
    if kinds <= _WHOLE:
        return pl.Series(values=values, dtype=pl.Int64).cast(pl.String)
    return pl.Series(values=[_code(v) for v in values], dtype=pl.String)


def _code(value: Any) -> str | None:
    """A vendor's code or id as text: strings as they are, whole numbers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _code_lists(values: Sequence[Any]) -> pl.Series:
    """Lists of condition codes as a list column of text, built flat (polars builds a list of
    lists one list at a time, 50 times slower on a page of 50,000 prints): a missing list is
    empty, a bare code (Alpaca's old spelling) a list of one, anything else null; codes that
    are neither text nor whole numbers are null inside their list."""
    lists: list[list[Any]] = []
    invalid: list[bool] = []
    for value in values:
        if isinstance(value, list):
            lists.append(value)
            invalid.append(False)
        elif value is None or _code(value) is not None:
            lists.append([] if value is None else [value])
            invalid.append(False)
        else:
            lists.append([])
            invalid.append(True)
    offsets = pa.array([0, *accumulate(map(len, lists))], pa.int32())
    mask = pa.array(invalid, pa.bool_()) if any(invalid) else None
    flat = _texts(list(chain.from_iterable(lists))).to_arrow()
    listed = pa.ListArray.from_arrays(offsets, flat.cast(pa.string()), mask=mask)
    return pl.Series("conditions", listed).cast(trades_.SCHEMA["conditions"])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value)


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
