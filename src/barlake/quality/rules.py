"""Data-quality rules: what can be wrong with stored bars, found in one vectorised pass each.

Each rule takes the bars of one interval (a polars frame in the lake's schema, in any order) and
returns findings, one per symbol and rule, with the time range of the offending bars. The price,
ohlc and volume rules are the checks bars pass before they are stored (``domain.bars.FLAWS``).
Pure functions: the lake reads the bars, runs the rules, stores the findings.

| rule            | severity | what it finds                                                    |
|-----------------|----------|------------------------------------------------------------------|
| gap             | error    | expected sessions without bars (from ``coverage.gaps``)          |
| ohlc            | error    | high below another price of the bar, or low above one            |
| price           | error    | a price that is missing or not a positive, finite number         |
| volume          | error    | missing, negative or non-finite volume                           |
| duplicate       | error    | one (symbol, ts) stored more than once                           |
| key             | error    | rows without a symbol or a ts (no scan returns them)             |
| timestamp       | error    | daily bars not at a session's 00:00 UTC; intraday bars not on    |
|                 |          | the interval's grid (clock or session open), not overlapping     |
|                 |          | their session (a 09:00 hour of a 09:30 open overlaps it), or     |
|                 |          | outside sessions (a crypto pair left on an exchange calendar)    |
| daily_intraday  | warning  | a daily bar disagreeing with its session's complete intraday bars|
| jump            | warning  | a daily close-to-close move beyond x1.8 or /1.8 that no split on |
|                 |          | record explains ("split-like jump, no corporate action on record")|
| action_no_jump  | warning  | a split on record whose ex-date shows no matching jump in the raw |
|                 |          | closes (a vendor error, or a wrong ratio)                        |
| mixed_adjustment| warning  | one symbol's series mixing split-adjusted rows (Yahoo's) with raw |
| stale           | warning  | five or more daily bars in a row with one flat, unchanged price  |
| partial_session | warning  | an intraday session with under half the bars its calendar expects|
| no_data         | warning  | the latest fetch of a series came back empty for every session,  |
|                 |          | from a provider that never showed the symbol (unknown to it?)    |
| provisional     | info     | ranges fetched before their session closed, not yet final        |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import polars as pl

from barlake.calendars.calendar import Calendar, in_session, on_clock_grid
from barlake.domain.bars import FLAWS, KEY, Flaw
from barlake.domain.intervals import Interval, spec

Severity = Literal["error", "warning", "info"]
JUMP_RATIO = 1.8
STALE_BARS = 5
PARTIAL_SHARE = 0.5
DAILY_TOLERANCE = 0.005  # relative difference allowed between daily and intraday prices


@dataclass(frozen=True)
class Finding:
    """One problem of one symbol at one interval, over a time range."""

    rule: str
    severity: Severity
    symbol: str
    interval: str
    first: str
    last: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The finding as ``lake check --json`` prints it and the catalog stores it."""
        return asdict(self)


def _iso(value: date | datetime) -> str:
    return value.isoformat()


def _per_symbol(
    bars: pl.DataFrame, bad: pl.Expr, rule: str, severity: Severity, interval: str, what: str
) -> list[Finding]:
    """One finding per symbol with rows matching ``bad``: count and first/last timestamps."""
    hits = (
        bars.filter(bad)
        .group_by("symbol")
        .agg(
            pl.len().alias("n"), pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")
        )
        .sort("symbol")
    )
    return [
        Finding(
            rule,
            severity,
            sym,
            interval,
            _stamp(first, interval),
            _stamp(last, interval),
            f"{n} bar(s) {what}",
        )
        for sym, n, first, last in hits.iter_rows()
    ]


def _stamp(ts: datetime, interval: str) -> str:
    return _iso(ts.date()) if interval == "1day" else _iso(ts)


#: The bar flaws (``domain.bars.FLAWS``) a check reports, as what their findings say. Stored
#: bars always have their keys.
_BAR_RULES: dict[Flaw, str] = {
    "price": "with a price that is not positive and finite",
    "ohlc": "where high is not the highest or low not the lowest price",
    "volume": "with negative or non-finite volume",
}


#: True on the bars that ``bar_rules`` flag.
BAD_BAR = pl.any_horizontal([FLAWS[rule] for rule in _BAR_RULES])


def bar_rules(bars: pl.DataFrame, interval: Interval) -> list[Finding]:
    """The rules that look at single bars: price, ohlc, volume (the scheduler's own checks)."""
    return [
        finding
        for rule, what in _BAR_RULES.items()
        for finding in _per_symbol(bars, FLAWS[rule], rule, "error", interval, what)
    ]


#: True on the rows whose (symbol, ts) is stored more than once.
DUPLICATE = pl.struct(KEY).is_duplicated()


def duplicate_rule(bars: pl.DataFrame, interval: Interval) -> list[Finding]:
    """Keys stored more than once: the lake keeps one row per (symbol, ts)."""
    what = "sharing their (symbol, ts) with another row"
    return _per_symbol(bars, DUPLICATE, "duplicate", "error", interval, what)


def key_rule(keyless: pl.DataFrame, interval: Interval) -> list[Finding]:
    """Rows without a symbol or ts (``Store.keyless``: file, symbol, rows), one finding per
    file and symbol; rows of no known symbol are reported under an empty one."""
    return [
        Finding(
            "key",
            "error",
            sym or "",
            interval,
            "",
            "",
            f"{n} row(s) without a symbol or ts in {file}; `lake fill --repair` drops them",
        )
        for file, sym, n in keyless.iter_rows()
    ]


def timestamp_rule(
    bars: pl.DataFrame, interval: Interval, calendars: dict[str, Calendar]
) -> list[Finding]:
    """Daily bars at a session's 00:00 UTC; intraday bars on the grid and inside a session."""
    out: list[Finding] = []
    what = (
        "not at 00:00 UTC of a session date"
        if interval == "1day"
        else "off the interval's grid or outside the session"
    )
    for cal, frame in by_calendar(bars, calendars):
        bad = off_timestamp(frame, interval, cal)
        out += _per_symbol(frame, bad, "timestamp", "error", interval, what)
    return out


def off_timestamp(frame: pl.DataFrame, interval: Interval, cal: Calendar) -> pl.Expr:
    """True on the bars of ``frame`` (of symbols on ``cal``) that ``timestamp_rule`` flags."""
    if interval == "1day":
        midnight = pl.col("ts").dt.time() == datetime.min.time()
        return ~(midnight & is_session(pl.col("ts").dt.date(), cal))
    return ~_on_grid_in_session(frame, interval, cal)


def is_session(day: pl.Expr, cal: Calendar) -> pl.Expr:
    """True where the date ``day`` is a session of ``cal``."""
    return day.is_in(pl.Series(cal.sessions).cast(pl.Date).implode())


def _on_grid_in_session(frame: pl.DataFrame, interval: Interval, cal: Calendar) -> pl.Expr:
    """Bars overlapping the session of their date (``calendar.in_session``, the rule that
    ``providers.wire.to_sessions`` keeps bars by) and on the exchange's clock grid or the
    grid from the session's open (Yahoo's 09:30 hours)."""
    step = spec(interval).seconds * 1_000_000
    bounds = cal.bar_sessions(frame["ts"])
    us, opened, closed = pl.col("us"), pl.col("open"), pl.col("close")
    aligned = on_clock_grid(us, step, cal.day_shift // timedelta(microseconds=1))
    aligned = aligned | ((us - opened) % step == 0)
    ok = bounds.with_columns(frame["ts"].dt.epoch("us").alias("us")).select(
        (in_session(us, step, opened, closed) & aligned).fill_null(value=False)
    )
    return pl.lit(ok.to_series())


def _previous(column: str) -> pl.Expr:
    """The same symbol's value one bar earlier; bars need not be sorted."""
    return pl.col(column).shift(1).over("symbol", order_by="ts")


def sound(bars: pl.DataFrame) -> pl.DataFrame:
    """The bars whose prices are positive and finite: what the series rules look at (the bar
    rules report the others)."""
    return bars.filter(~FLAWS["price"])


def _moves(daily: pl.DataFrame) -> pl.DataFrame:
    """Each daily bar's close over the same symbol's previous one: symbol, prev, ts, ratio."""
    ratio = pl.col("close") / _previous("close")
    return daily.select(
        "symbol", _previous("ts").alias("prev"), "ts", ratio.alias("ratio")
    ).drop_nulls("ratio")


def _explained(move: pl.Expr, split: pl.Expr) -> pl.Expr:
    """Whether a close-to-close ``move`` is a split of ``split`` new shares per old one and a
    session's ordinary move (within ``JUMP_RATIO`` once the split is undone)."""
    undone = move * split
    return (undone < JUMP_RATIO) & (undone > 1 / JUMP_RATIO)


def jump_rule(daily: pl.DataFrame, splits: pl.DataFrame | None = None) -> list[Finding]:
    """Close-to-close moves beyond ``JUMP_RATIO`` either way that no split on record explains.

    ``splits`` has (symbol, ex_date, ratio) of the symbols' splits, reverse splits and stock
    dividends (new shares per old one); a jump on an ex-date that its ratio accounts for is the
    split, not a flaw of the bars.
    """
    moves = _moves(daily)
    hits = moves.filter((pl.col("ratio") > JUMP_RATIO) | (pl.col("ratio") < 1 / JUMP_RATIO))
    if splits is not None and not splits.is_empty():
        known = splits.group_by("symbol", "ex_date").agg(pl.col("ratio").product().alias("r"))
        hits = (
            hits.with_columns(pl.col("ts").dt.date().alias("ex_date"))
            .join(known, on=["symbol", "ex_date"], how="left")
            .filter(pl.col("r").is_null() | ~_explained(pl.col("ratio"), pl.col("r")))
        )
    return [
        Finding(
            "jump",
            "warning",
            sym,
            "1day",
            _iso(prev.date()),
            _iso(ts.date()),
            f"close moved x{ratio:.2f} from {prev.date()} to {ts.date()}: split-like jump, no "
            f"corporate action on record ({_split_hint(ratio)}); `lake actions fetch` or check "
            "the bars",
        )
        for sym, prev, ts, ratio in hits.select("symbol", "prev", "ts", "ratio").iter_rows()
    ]


def action_rule(daily: pl.DataFrame, splits: pl.DataFrame) -> list[Finding]:
    """Splits on record whose ex-date's raw close-to-close move does not match their ratio:
    the vendor reported a split that did not happen, or a wrong ratio. Only splits with a
    ratio beyond ``JUMP_RATIO`` either way are telling, and only ex-dates with bars on both
    sides."""
    if splits.is_empty():
        return []
    moves = _moves(daily).with_columns(pl.col("ts").dt.date().alias("ex_date"))
    telling = splits.filter((pl.col("ratio") > JUMP_RATIO) | (pl.col("ratio") < 1 / JUMP_RATIO))
    joined = telling.join(moves, on=["symbol", "ex_date"], how="inner")
    bad = joined.filter(~_explained(pl.col("ratio_right"), pl.col("ratio")))
    return [
        Finding(
            "action_no_jump",
            "warning",
            sym,
            "1day",
            _iso(prev.date()),
            _iso(ex),
            f"a {kind} of ratio {ratio:g} ({source}) is on record for {ex}, but the raw close "
            f"moved x{move:.2f} from {prev.date()}: a vendor error or a wrong ratio",
        )
        for sym, ex, ratio, kind, source, prev, move in bad.select(
            "symbol", "ex_date", "ratio", "type", "source", "prev", "ratio_right"
        ).iter_rows()
    ]


def mixed_rule(
    bars: pl.DataFrame, interval: str, adjusted_sources: frozenset[str]
) -> list[Finding]:
    """One finding per symbol whose series holds rows of a split-adjusting source (Yahoo's
    chart) beside raw rows: its prices do not line up across the seam."""
    sources = bars.group_by("symbol").agg(
        pl.col("source").unique().sort().alias("sources"),
        pl.col("ts").min().alias("first"),
        pl.col("ts").max().alias("last"),
    )
    out = []
    for sym, names, first, last in sources.sort("symbol").iter_rows():
        adjusted = [n for n in names if n in adjusted_sources]
        raw = [n for n in names if n is not None and n not in adjusted_sources]
        if adjusted and raw:
            out.append(
                Finding(
                    "mixed_adjustment",
                    "warning",
                    sym,
                    interval,
                    _stamp(first, interval),
                    _stamp(last, interval),
                    f"split-adjusted rows ({', '.join(adjusted)}) beside raw rows "
                    f"({', '.join(raw)}) in one series; fetch it again from one provider",
                )
            )
    return out


def _split_hint(ratio: float) -> str:
    factor = ratio if ratio >= 1 else 1 / ratio
    near = round(factor)
    kind = "reverse split" if ratio >= 1 else "split"
    return (
        f"about a {near}:1 {kind}" if abs(factor - near) < 0.15 * near else "no clean split ratio"
    )


def stale_rule(daily: pl.DataFrame) -> list[Finding]:
    """Runs of ``STALE_BARS`` or more flat daily bars at one unchanged price."""
    flat = (
        (pl.col("open") == pl.col("close"))
        & (pl.col("high") == pl.col("low"))
        & (pl.col("close") == _previous("close"))
    )
    marked = daily.with_columns(flat.fill_null(value=False).alias("flat"))
    runs = (
        marked.with_columns(pl.col("flat").rle_id().over("symbol", order_by="ts").alias("run"))
        .filter(pl.col("flat"))
        .group_by("symbol", "run")
        .agg(
            pl.len().alias("n"),
            pl.col("ts").min().alias("first"),
            pl.col("ts").max().alias("last"),
            pl.col("close").first(),
        )
        .filter(pl.col("n") >= STALE_BARS - 1)  # the run's first bar is not marked flat
        .sort("symbol", "first")
    )
    return [
        Finding(
            "stale",
            "warning",
            sym,
            "1day",
            _iso(first.date()),
            _iso(last.date()),
            f"{n + 1} daily bars flat at {close:g}; stale quotes?",
        )
        for sym, _, n, first, last, close in runs.iter_rows()
    ]


def partial_rule(
    bars: pl.DataFrame, interval: Interval, calendars: dict[str, Calendar], closed: date
) -> list[Finding]:
    """Intraday sessions (closed by ``closed``) with under half the bars they should have."""
    out: list[Finding] = []
    for cal, frame in by_calendar(bars, calendars):
        short = short_sessions(frame, interval, cal, closed)
        out += [
            Finding(
                "partial_session",
                "warning",
                sym,
                interval,
                _iso(day),
                _iso(day),
                f"{n} of {want} bars stored for the session",
            )
            for sym, day, n, want in short.iter_rows()
        ]
    return out


def short_sessions(
    frame: pl.DataFrame, interval: Interval, cal: Calendar, closed: date
) -> pl.DataFrame:
    """The sessions of ``frame`` (symbols on ``cal``) closed by ``closed`` with under
    ``PARTIAL_SHARE`` of their bars: symbol, day, len, expected. Days that are no session of
    ``cal`` are the timestamp rule's."""
    per_day = (
        frame.group_by("symbol", (pl.col("ts") + cal.day_shift).dt.date().alias("day"))
        .len()
        .filter((pl.col("day") <= closed) & is_session(pl.col("day"), cal))
    )
    expected = [cal.bars_in_session(d, interval) for d in per_day["day"].to_list()]
    return (
        per_day.with_columns(pl.Series("expected", expected, dtype=pl.Int64))
        .filter(pl.col("len") < pl.col("expected") * PARTIAL_SHARE)
        .sort("symbol", "day")
    )


def daily_intraday_rule(
    daily: pl.DataFrame, intraday: pl.DataFrame, interval: Interval, calendars: dict[str, Calendar]
) -> list[Finding]:
    """Daily bars that disagree with their session's complete intraday bars."""
    out: list[Finding] = []
    for cal, frame in by_calendar(intraday, calendars):
        day = (pl.col("ts") + cal.day_shift).dt.date().alias("day")
        sessions = (
            frame.filter(is_session(day, cal))
            .group_by("symbol", day)
            .agg(
                pl.col("open").sort_by("ts").first(),
                pl.col("high").max(),
                pl.col("low").min(),
                pl.col("close").sort_by("ts").last(),
                pl.len(),
            )
        )
        expected = [cal.bars_in_session(d, interval) for d in sessions["day"].to_list()]
        complete = sessions.filter(pl.col("len") >= pl.Series(expected, dtype=pl.Int64))
        joined = complete.join(
            daily.with_columns(pl.col("ts").dt.date().alias("day")),
            on=["symbol", "day"],
            suffix="_d",
        )
        tol = DAILY_TOLERANCE
        off = (
            ((pl.col("open") - pl.col("open_d")).abs() > tol * pl.col("open_d"))
            | ((pl.col("close") - pl.col("close_d")).abs() > tol * pl.col("close_d"))
            | (pl.col("high") > pl.col("high_d") * (1 + tol))
            | (pl.col("low") < pl.col("low_d") * (1 - tol))
        )
        hits = (
            joined.filter(off)
            .group_by("symbol")
            .agg(pl.len(), pl.col("day").min().alias("first"), pl.col("day").max().alias("last"))
            .sort("symbol")
        )
        out += [
            Finding(
                "daily_intraday",
                "warning",
                sym,
                "1day",
                _iso(first),
                _iso(last),
                f"{n} daily bar(s) disagree with their {interval} bars (open, close or range)",
            )
            for sym, n, first, last in hits.iter_rows()
        ]
    return out


def by_calendar(
    bars: pl.DataFrame, calendars: dict[str, Calendar]
) -> list[tuple[Calendar, pl.DataFrame]]:
    """``bars`` split by their symbols' calendar (symbols without one are left out)."""
    groups: dict[str, list[str]] = {}
    for sym in bars["symbol"].unique().to_list():
        if sym in calendars:
            groups.setdefault(calendars[sym].name, []).append(sym)
    return [
        (calendars[names[0]], bars.filter(pl.col("symbol").is_in(names)))
        for names in groups.values()
    ]
