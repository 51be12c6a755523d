"""The set_aside table of the DuckDB catalog: symbols a provider refused as unknown to it.

A fill records them (``JobsTable.record``); planning leaves them out for that provider; ``lake
fill --retry-failed`` and ``lake symbols add`` of them again forget them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from barlake.catalog.jobs import Connected

#: ``record``'s statement for new rows: a symbol refused again keeps only its latest refusal.
RECORD = (
    "INSERT INTO set_aside (symbol, provider, error, job_id, set_at) "
    "SELECT symbol, provider, error, job_id, set_at FROM aside_rows "
    "ON CONFLICT (symbol, provider) DO UPDATE SET error = excluded.error, "
    "job_id = excluded.job_id, set_at = excluded.set_at"
)


class SetAsideTable:
    """Set-aside symbols, over the catalog's connections (mixed into ``Catalog``)."""

    def set_aside(
        self: Connected, provider: str | None = None, names: Sequence[str] | None = None
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """``{(symbol, provider): {error, job_id, set_at}}`` of the set-aside symbols (of one
        provider, of ``names``, or all)."""
        where: list[str] = []
        params: list[Any] = []
        if provider is not None:
            where.append("provider = ?")
            params.append(provider)
        if names is not None:
            where.append("symbol IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(names))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.rows(
            f"SELECT symbol, provider, error, job_id, set_at FROM set_aside {clause} "
            "ORDER BY symbol, provider",
            params,
        )
        return {(r.pop("symbol"), r.pop("provider")): r for r in rows}

    def forget_set_aside(self: Connected, names: Sequence[str], provider: str | None = None) -> int:
        """Let fills ask for ``names`` again (from ``provider``, or from every provider);
        returns how many were set aside."""
        sql = "DELETE FROM set_aside WHERE symbol IN (SELECT unnest(?::VARCHAR[]))"
        params: list[Any] = [list(names)]
        if provider is not None:
            sql += " AND provider = ?"
            params.append(provider)
        with self.connect() as con:
            row = con.execute(sql + " RETURNING symbol", params).fetchall()
        return len(row)
