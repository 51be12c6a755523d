"""Corporate actions (splits and dividends) and the prices they adjust, computed on read.

Stored bars stay raw, as the exchange printed them; the catalog's ``actions`` table holds the
actions beside them, and ``adjusted`` turns a lazy frame of raw bars into adjusted ones as of
the read (the usual backward adjustment, as zipline and LEAN do it):

- ``splits``: a bar before a split's ex-date has its prices divided, and its volume multiplied,
  by the split's ratio (new shares per old share); a 4:1 split divides earlier prices by 4.
- ``total``: also multiplies earlier prices by ``1 - amount / close`` for each cash dividend,
  ``close`` being the raw close of the last session before its ex-date (the CRSP factor);
  volumes see the split factors only.

Factors multiply over every action after a bar, so a split recorded after the bars were stored
changes the next adjusted read and needs no refetch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Literal

import polars as pl

from barlake.errors import UsageError

ActionType = Literal["split", "reverse_split", "cash_dividend", "stock_dividend"]
Adjust = Literal["none", "splits", "total"]

ACTION_TYPES: tuple[ActionType, ...] = ("split", "reverse_split", "cash_dividend", "stock_dividend")
ADJUSTMENTS: tuple[Adjust, ...] = ("none", "splits", "total")
#: The types whose ``ratio`` (new shares per old share) scales prices and volumes.
SHARE_TYPES = ("split", "reverse_split", "stock_dividend")

#: Providers whose bars come split-adjusted as of their fetch (Yahoo's chart): adjusted reads
#: apply only dividend factors to their rows, and ``lake check`` reports a series that mixes
#: them with raw rows.
SPLIT_ADJUSTED_SOURCES = frozenset({"yahoo"})

#: Columns of the ``actions`` catalog table, as ``Lake.actions`` returns them.
COLUMNS: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "type": pl.String(),
    "ex_date": pl.Date(),
    "ratio": pl.Float64(),
    "amount": pl.Float64(),
    "currency": pl.String(),
    "record_date": pl.Date(),
    "pay_date": pl.Date(),
    "source": pl.String(),
    "vendor_id": pl.String(),
    "fetched_at": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class Action:
    """One corporate action of one symbol, as one provider reported it.

    Splits carry ``ratio`` (new shares per old one: 4.0 for a 4-for-1, 0.1 for a 1-for-10
    reverse split); cash dividends carry ``amount`` a share in ``currency``.
    """

    symbol: str
    type: ActionType
    ex_date: date
    source: str
    ratio: float | None = None
    amount: float | None = None
    currency: str | None = None
    record_date: date | None = None
    pay_date: date | None = None
    vendor_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in ACTION_TYPES:
            msg = f"unknown action type {self.type!r}; use one of {', '.join(ACTION_TYPES)}"
            raise ValueError(msg)
        if self.type in SHARE_TYPES and not (self.ratio and self.ratio > 0):
            msg = f"{self.symbol} {self.type} on {self.ex_date} needs a positive ratio"
            raise ValueError(msg)
        if self.type == "cash_dividend" and not (self.amount and self.amount > 0):
            msg = f"{self.symbol} cash dividend on {self.ex_date} needs a positive amount"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split(symbol: str, ex_date: date, new: float, old: float, source: str, **more: Any) -> Action:
    """A split of ``new`` shares for ``old``: ``reverse_split`` when fewer come out."""
    kind: ActionType = "split" if new >= old else "reverse_split"
    return Action(symbol, kind, ex_date, source, ratio=new / old, **more)


def frame(actions: list[Action], fetched_at: datetime) -> pl.DataFrame:
    """``actions`` as rows of the catalog table, fetched at ``fetched_at``."""
    rows = [{**a.to_dict(), "fetched_at": fetched_at} for a in actions]
    return pl.DataFrame(rows, schema=COLUMNS)


def parse_adjust(value: str) -> Adjust:
    """``value`` if it names an adjustment, else a usage error listing them."""
    if value not in ADJUSTMENTS:
        msg = f"adjust must be one of {', '.join(ADJUSTMENTS)}, got {value!r}"
        raise UsageError(msg)
    return value


def factors(actions: pl.DataFrame, closes: pl.LazyFrame, how: Adjust) -> pl.LazyFrame:
    """Per (symbol, ex_date): the factors of that action and every later one, ``shares`` (the
    product of split ratios: divide a bar's prices by it, multiply its volume) and ``cash``
    (the product of dividend factors: multiply prices), sorted by (symbol, ex_date).

    ``actions`` has the catalog's columns; ``closes`` has (symbol, ts, close) raw daily bars
    (only needed for ``total``: each dividend's factor uses the close before its ex-date).
    Several sources may report one action: a symbol's action of one type on one day counts once.
    """
    acts = (
        actions.lazy()
        .filter(pl.col("type").is_in(SHARE_TYPES + (("cash_dividend",) if how == "total" else ())))
        .group_by("symbol", "type", "ex_date")
        .agg(pl.col("ratio").first(), pl.col("amount").first())
    )
    shares = pl.when(pl.col("type").is_in(SHARE_TYPES)).then(pl.col("ratio"))
    if how == "total":
        # The last bar strictly before the ex-date's 00:00 UTC; sorted within each symbol is
        # what an asof join by symbol needs (bars are).
        acts = (
            acts.with_columns(_midnight("ex_date").alias("ts"))
            .sort("symbol", "ts")
            .join_asof(
                closes.select("symbol", "ts", "close"),
                on="ts",
                by="symbol",
                strategy="backward",
                allow_exact_matches=False,
                check_sortedness=False,
            )
        )
        cash = 1 - pl.col("amount") / pl.col("close")
        paid = (pl.col("type") == "cash_dividend") & (pl.col("close") > 0) & (cash > 0)
        dividend: pl.Expr = pl.when(paid).then(cash)
    else:
        dividend = pl.lit(None, dtype=pl.Float64)
    one = (
        acts.with_columns(
            shares.fill_null(1.0).cast(pl.Float64).alias("s"),
            dividend.fill_null(1.0).cast(pl.Float64).alias("d"),
        )
        .group_by("symbol", "ex_date")
        .agg(pl.col("s").product(), pl.col("d").product())
    )
    # Each row's factor covers it and every later action: a reverse cumulative product.
    later = pl.col("s").cum_prod(reverse=True).over("symbol", order_by="ex_date")
    cumd = pl.col("d").cum_prod(reverse=True).over("symbol", order_by="ex_date")
    return one.select("symbol", "ex_date", later.alias("shares"), cumd.alias("cash")).sort(
        "symbol", "ex_date"
    )


def _midnight(column: str) -> pl.Expr:
    """A date column as its 00:00 UTC, in the bars' ``ts`` type."""
    return pl.col(column).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def adjusted(
    bars: pl.LazyFrame,
    actions: pl.DataFrame,
    how: Adjust,
    *,
    closes: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """``bars`` (raw, in the lake's schema, sorted by (symbol, ts)) adjusted ``how`` by
    ``actions``, as of now: same rows, same order, same columns.

    Rows whose ``source`` is split-adjusted already (``SPLIT_ADJUSTED_SOURCES``) get the
    dividend factors only. A bar belongs to the UTC date of its ``ts`` (daily bars are stamped
    at the session's 00:00 UTC; US intraday sessions lie within one UTC date). ``closes``
    supplies the raw daily closes for dividend factors (default: ``bars`` themselves, right for
    daily bars).
    """
    if how == "none" or actions.is_empty():
        return bars
    schema = bars.collect_schema()
    table = factors(actions, closes if closes is not None else bars, how)
    # The first action whose ex-date starts after the bar does carries the factor of all
    # later ones; the join keeps the bars' order, sorted by ts within each symbol as it needs.
    keys = table.select("symbol", _midnight("ex_date").alias("ts"), "shares", "cash")
    joined = bars.join_asof(
        keys,
        on="ts",
        by="symbol",
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,
    )
    # Rows of a split-adjusting source have their splits in them already.
    done = pl.col("source").is_in(list(SPLIT_ADJUSTED_SOURCES))
    shares = pl.when(done).then(1.0).otherwise(pl.col("shares").fill_null(1.0))
    price = pl.col("cash").fill_null(1.0) / shares
    volume = shares
    return joined.with_columns(
        *(pl.col(c) * price for c in ("open", "high", "low", "close", "vwap")),
        pl.col("volume") * volume,
    ).select(list(schema))
