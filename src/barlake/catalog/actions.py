"""The actions table of the DuckDB catalog: splits and dividends, one row per (symbol, type,
ex_date, source); a provider reporting an action again replaces its row (a corrected ratio or
amount wins)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from barlake.catalog.jobs import Connected

if TYPE_CHECKING:
    import polars as pl

_COLUMNS = (
    "symbol, type, ex_date, ratio, amount, currency, record_date, pay_date, source, vendor_id, "
    "fetched_at"
)
#: A row reported again replaces the stored one's values.
_REPLACED = ", ".join(
    f"{c} = excluded.{c}"
    for c in (c.strip() for c in _COLUMNS.split(","))
    if c not in {"symbol", "type", "ex_date", "source"}
)


class ActionsTable:
    """Corporate actions, over the catalog's connections (mixed into ``Catalog``)."""

    def record_actions(self: Connected, rows: pl.DataFrame) -> int:
        """Insert or replace ``rows`` (the columns of ``domain.actions.COLUMNS``); returns how
        many were new."""
        if rows.is_empty():
            return 0
        with self.connect() as con:
            con.register("action_rows", rows.to_arrow())
            before = con.execute("SELECT count(*) FROM actions").fetchone()
            con.execute(
                f"INSERT INTO actions ({_COLUMNS}) SELECT {_COLUMNS} FROM action_rows "
                f"ON CONFLICT (symbol, type, ex_date, source) DO UPDATE SET {_REPLACED}"
            )
            after = con.execute("SELECT count(*) FROM actions").fetchone()
        return int(after[0] if after else 0) - int(before[0] if before else 0)

    def action_rows(
        self: Connected,
        names: Sequence[str] | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        types: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Actions of ``names`` (all when None) with ex-dates in [start, end], ordered by
        symbol, ex_date, type and source."""
        return self.rows(*_select(names, start, end, types))

    def action_frame(
        self: Connected, names: Sequence[str] | None = None, *, end: date | None = None
    ) -> pl.DataFrame:
        """``action_rows`` as a frame with ``domain.actions.COLUMNS``: what adjusted reads
        join, cheap for a hundred thousand rows."""
        return self.query(*_select(names, None, end, None))


def _select(
    names: Sequence[str] | None,
    start: date | None,
    end: date | None,
    types: Sequence[str] | None,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if names is not None:
        where.append("symbol IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(names))
    if types is not None:
        where.append("type IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(types))
    if start is not None:
        where.append("ex_date >= ?")
        params.append(start)
    if end is not None:
        where.append("ex_date <= ?")
        params.append(end)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"SELECT {_COLUMNS} FROM actions {clause} ORDER BY symbol, ex_date, type, source"
    return sql, params
