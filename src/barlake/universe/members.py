"""Members: the catalog's symbol rows as typed values, each with its calendar resolved once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import polars as pl

from barlake.calendars.calendar import Calendar, calendar_for


@dataclass(frozen=True)
class Member:
    """One tracked symbol: its effective layer, calendar, listing window and market cap."""

    name: str
    layer: int
    calendar: Calendar
    listed_on: date | None = None
    delisted_on: date | None = None
    active: bool = True
    market_cap: float | None = None


def members(rows: pl.DataFrame) -> list[Member]:
    """The members described by catalog ``rows`` (the symbols table's columns)."""
    return [
        Member(
            sym,
            int(layer or 0),
            calendar_for(cal, asset_class),
            listed,
            delisted,
            bool(active) if active is not None else True,
            cap,
        )
        for sym, layer, cal, asset_class, listed, delisted, active, cap in rows.select(
            "symbol",
            "layer",
            "calendar",
            "asset_class",
            "listed_on",
            "delisted_on",
            "active",
            "market_cap",
        ).iter_rows()
    ]


def by_name(found: Iterable[Member]) -> dict[str, Member]:
    return {m.name: m for m in found}
