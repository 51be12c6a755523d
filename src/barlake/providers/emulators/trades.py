"""The trades every vendor emulator serves, and the faults a page of them can suffer.

Truth is a callable ``(symbol, session date) -> frame in the trades schema``; by default the
demo's ``session_trades``, so every emulator serves the prints whose minute aggregation is the
demo's 1-minute bars. Like the vendors' answers, each session also has one pre-market print an
hour before its first and one post-market print an hour after its last (at the first and last
price, 100 shares, condition ``T``, "Form T": extended hours), which a provider asking for the
regular session never sees. Symbols on the 24/7 calendar (no tape) get none.

``between`` gives the prints of some symbols in ``[lo, hi]`` (nanoseconds, both inclusive), in
the vendors' order: by symbol, then time, ties broken by ``seq`` (the trade id as a number,
also the base of Polygon's ``sequence_number``). ``corrupt`` applies the data faults to one
page (see ``faults``): for trades ``duplicate`` repeats the last print of the page before
(prints sent twice across pages; within the page on a first page), ``unordered`` reverses the
page, ``outside`` adds a copy of a print moved before the request (either to an hour before its
start, the same day's pre-market when the request starts at the open, or whole weeks back),
``nan`` and ``negative`` spoil one print's price and ``zero`` one print's size.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta

import polars as pl

from barlake.domain import trades as trades_
from barlake.providers.demo.trades import session_trades

#: Truth: every print of a symbol in one session, in the trades schema.
Truth = Callable[[str, date], pl.DataFrame]

#: Longest span one request may cover (the emulator computes every session of it).
MAX_DAYS = 100
_HOUR_NS = 3_600_000_000_000
_WEEK_NS = 7 * 24 * _HOUR_NS
_DAY = timedelta(days=1)


def demo_truth(per_minute: int | None = None) -> Truth:
    """The demo's prints (``per_minute`` of them a minute when given, as the benchmarks make
    liquid sessions)."""

    def truth(symbol: str, session: date) -> pl.DataFrame:
        return session_trades(symbol, session, per_minute=per_minute)

    return truth


class TradeBook:
    """An emulator's trades, one session of one symbol computed once and kept."""

    def __init__(self, truth: Truth, symbols: frozenset[str] | None, *, keep: int = 64) -> None:
        self.truth, self.symbols, self.keep = truth, symbols, keep
        self._cache: dict[tuple[str, date], pl.DataFrame] = {}
        self._answers: dict[tuple[tuple[str, ...], int, int, bool], pl.DataFrame] = {}
        self._lock = threading.Lock()

    def between(self, symbols: Sequence[str], lo: int, hi: int) -> pl.DataFrame:
        """The prints of the known ``symbols`` with ``lo <= ts <= hi`` (epoch nanoseconds),
        extended hours included, sorted by symbol, time and ``seq``; columns of the trades
        schema plus ``seq`` (Int64). ValueError beyond ``MAX_DAYS`` (the emulator answers 500:
        it would compute every session)."""
        known = sorted(s for s in set(symbols) if self.symbols is None or s in self.symbols)
        first = _utc_date(lo) - _DAY  # a session's prints lie within a day of its date
        last = _utc_date(hi) + _DAY
        if (last - first).days > MAX_DAYS:
            msg = f"the emulator serves trades of {MAX_DAYS} days at most a request"
            raise ValueError(msg)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        frames = [self._session(s, d) for s in known for d in days]
        if not frames:
            return _with_seq(trades_.empty())
        ns = pl.col("ts").dt.epoch("ns")
        return pl.concat(frames).filter(ns.is_between(lo, hi)).sort("symbol", "ts", "seq")

    def ordered(
        self, symbols: Sequence[str], lo: int, hi: int, *, descending: bool
    ) -> pl.DataFrame:
        """``between``, with ``_ns`` (the time in epoch ns), by symbol then time and ``seq``,
        ascending or descending in time; kept for the next pages of the same query (each
        page would otherwise sort the whole answer again)."""
        key = (tuple(sorted(set(symbols))), lo, hi, descending)
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None:
            return cached
        frame = self.between(symbols, lo, hi).with_columns(pl.col("ts").dt.epoch("ns").alias("_ns"))
        frame = frame.sort("symbol", "_ns", "seq", descending=[False, descending, descending])
        with self._lock:
            if len(self._answers) >= 8:
                self._answers.clear()
            self._answers[key] = frame
        return frame

    def _session(self, symbol: str, day: date) -> pl.DataFrame:
        key = (symbol, day)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        frame = _extended_hours(_with_seq(self.truth(symbol, day).select(list(trades_.SCHEMA))))
        with self._lock:
            if len(self._cache) >= self.keep:
                self._cache.clear()
            self._cache[key] = frame
        return frame


def corrupt(
    page: pl.DataFrame,
    faults: frozenset[str],
    rng: random.Random,
    *,
    start: int,
    previous: pl.DataFrame | None,
) -> pl.DataFrame:
    """``page`` (prints as ``TradeBook.between`` gives them) with the data faults in
    ``faults``; ``start`` is where the whole request starts (epoch ns), ``previous`` the page
    before's last print (None on a first page)."""
    if page.is_empty():
        return page
    i = rng.randrange(page.height)
    if "duplicate" in faults:
        if previous is not None and not previous.is_empty():
            page = pl.concat([previous.tail(1), page])
        else:
            page = pl.concat([page[: i + 1], page[i : i + 1], page[i + 1 :]])
    if "outside" in faults:
        moved = page[i : i + 1]
        ts = moved["ts"].dt.epoch("ns").item()
        if rng.random() < 0.5:
            to = start - _HOUR_NS
        else:
            to = ts - (math.floor((ts - start) / _WEEK_NS) + 1) * _WEEK_NS
        page = pl.concat([moved.with_columns(_shifted(to - ts)), page])
    row = pl.int_range(pl.len()) == rng.randrange(page.height)
    if "nan" in faults:
        page = page.with_columns(pl.when(row).then(float("nan")).otherwise("price").alias("price"))
    if "negative" in faults:
        page = page.with_columns(pl.when(row).then(-pl.col("price")).otherwise("price"))
    if "zero" in faults:
        page = page.with_columns(pl.when(row).then(0.0).otherwise("size").alias("size"))
    if "unordered" in faults and page.height > 1:
        page = page.reverse()
    return page


def json_rows(frame: pl.DataFrame, faults: frozenset[str]) -> bytes:
    """``frame`` as a JSON array of objects, written by polars (ten times faster than Python
    dicts on a page of 50,000 prints), except under a ``nan`` fault: polars writes NaN as
    null, and that fault must reach the wire as the bare NaN a sloppy vendor sends."""
    if "nan" in faults:
        return json.dumps(frame.to_dicts()).encode()
    return frame.write_json().encode()


def nanos(text: str) -> int | None:
    """An RFC-3339 instant, with up to nine digits of fraction, in epoch nanoseconds (UTC when
    it names no offset); None when it is none."""
    match = re.fullmatch(r"([^.]+?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?", text)
    if not match:
        return None
    try:
        moment = datetime.fromisoformat(match[1] + (match[3] or "").replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment.replace(tzinfo=moment.tzinfo or UTC)
    return epoch_ns(moment) + int((match[2] or "").ljust(9, "0"))


def epoch_ns(moment: datetime) -> int:
    """``moment`` in epoch nanoseconds, exactly (no float on the way)."""
    whole = moment.replace(microsecond=0)
    return int(whole.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def _with_seq(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("trade_id").cast(pl.Int64, strict=False).alias("seq"))


def _extended_hours(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` (one session of one symbol) with its pre- and post-market prints."""
    if frame.is_empty() or frame["tape"].null_count() == frame.height:
        return frame
    first, last = frame.head(1), frame.tail(1)
    top = int(frame.select(pl.col("seq").max()).item() or 0)
    extra = [
        first.with_columns(_shifted(-_HOUR_NS), pl.lit(0, dtype=pl.Int64).alias("seq")),
        last.with_columns(_shifted(_HOUR_NS), pl.lit(top + 1, dtype=pl.Int64).alias("seq")),
    ]
    flat = [
        pl.lit(100.0).alias("size"),
        pl.lit(["T"], dtype=trades_.SCHEMA["conditions"]).alias("conditions"),
        pl.col("seq").cast(pl.String).alias("trade_id"),
    ]
    return pl.concat([extra[0].with_columns(flat), frame, extra[1].with_columns(flat)])


def _shifted(ns: int) -> pl.Expr:
    """``ts`` moved by ``ns`` nanoseconds, exactly (a timedelta would round it to µs)."""
    moved = pl.col("ts").dt.epoch("ns") + ns
    return moved.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("ts")


def _utc_date(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).date()
