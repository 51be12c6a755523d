"""The registry: tracking symbols and their scanner layers (the symbols table's use cases)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from barlake.calendars.calendar import Calendar, calendar_for
from barlake.catalog.repositories import SymbolsRepository
from barlake.catalog.schema import IMPORTS
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.domain.symbols import IMPORT_COLUMNS, check_symbol
from barlake.errors import UnknownSymbolError, UsageError
from barlake.universe import layers
from barlake.universe.members import Member, members

#: What a symbols file may carry: the catalog's descriptive columns (layers have their own import).


class LiquiditySource(Protocol):
    """Median dollar volumes from stored daily bars (``storage.store.Store``)."""

    def liquidity(self, symbols_: list[str], window: DateRange, sessions: int) -> pl.DataFrame: ...


class Registry:
    """The symbols a lake tracks: add, import, look up, remove, and set their layers."""

    def __init__(self, symbols: SymbolsRepository) -> None:
        self.repo = symbols

    def add(self, names: list[str], attributes: dict[str, Any], columns: Sequence[str]) -> int:
        """Add ``names`` with catalog ``attributes`` (any of ``columns``); those set aside
        after a provider refused them are asked for again."""
        unknown = sorted(set(attributes) - set(columns))
        if unknown:
            msg = f"unknown symbol attribute(s) {', '.join(unknown)}"
            raise UsageError(msg)
        frame = pl.DataFrame({"symbol": names}).with_columns(
            **{k: pl.lit(v) for k, v in attributes.items()}
        )
        count = self._upsert(typed_symbols(frame, "arguments"), "arguments")
        self.repo.forget_set_aside(names)  # added again: fills ask for them again
        return count

    def import_file(self, path: Path) -> int:
        """Add or update symbols from a CSV, Parquet or JSON file with a ``symbol`` column."""
        frame = read_table(path)
        extra = sorted(set(frame.columns) - set(IMPORT_COLUMNS))
        if "symbol" not in frame.columns or extra:
            what = f"unknown column(s) {', '.join(extra)}" if extra else "no 'symbol' column"
            msg = f"{path}: {what}; allowed columns: {', '.join(IMPORT_COLUMNS)}"
            raise UsageError(msg)
        frame = frame.with_columns(pl.col("symbol").cast(pl.String))
        if frame["symbol"].is_null().any():
            msg = f"{path}: a row has an empty symbol"
            raise UsageError(msg)
        checked = [check_symbol(s) for s in frame["symbol"].to_list()]
        if any(len(s.replace(",", " ").split()) != 1 for s in checked):
            msg = f"{path}: a symbol cell holds several names; put one symbol per row"
            raise UsageError(msg)
        if len(set(checked)) != len(checked):
            msg = f"{path}: symbols repeat; each symbol may appear once"
            raise UsageError(msg)
        frame = frame.with_columns(pl.Series("symbol", checked, dtype=pl.String))
        return self._upsert(typed_symbols(frame, str(path)), str(path))

    def rows(self, names: Sequence[str] | None = None) -> pl.DataFrame:
        return self.repo.symbols(names)

    def _upsert(self, frame: pl.DataFrame, source: str) -> int:
        """Write ``frame``, unless a symbol would be delisted before it lists (the dates given
        here, or one given here and the other already in the catalog)."""
        given = [c for c in ("listed_on", "delisted_on") if c in frame.columns]
        if given:
            known = self.repo.symbols(frame["symbol"].to_list())
            both = frame.select("symbol", *given).join(
                known.select("symbol", "listed_on", "delisted_on"),
                on="symbol",
                how="left",
                suffix="_known",
            )
            listed = pl.coalesce(
                [pl.col(c) for c in ("listed_on", "listed_on_known") if c in both.columns]
            )
            delisted = pl.coalesce(
                [pl.col(c) for c in ("delisted_on", "delisted_on_known") if c in both.columns]
            )
            wrong = both.filter(delisted < listed).select("symbol", listed, delisted)
            if wrong.height:
                sym, first, last = wrong.row(0)
                msg = (
                    f"{source}: {sym} would be delisted on {last}, before it lists on {first}; "
                    "check --listed-on and --delisted-on"
                )
                raise UsageError(msg)
        return self.repo.upsert_symbols(frame)

    def require(self, names: Sequence[str] | None, *, layer: int | None = None) -> pl.DataFrame:
        """Catalog rows of ``names`` (all active symbols when None); unknown names are errors."""
        rows = self.repo.symbols(names, active_only=names is None)
        if names is not None:
            missing = sorted(set(names) - set(rows["symbol"].to_list()))
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                msg = f"unknown symbol(s) {shown}; add them with `lake symbols add`"
                raise UnknownSymbolError(msg)
        if layer is not None:
            rows = rows.filter(pl.col("layer") == layer)
        return rows

    def members(self, names: Sequence[str] | None, *, layer: int | None = None) -> list[Member]:
        """``require`` as typed members, calendars resolved."""
        return members(self.require(names, layer=layer))

    def day_shifts(self, names: Sequence[str] | None) -> dict[str, timedelta]:
        """Each known symbol's calendar day shift (unknown names are left out)."""
        return {s: cal.day_shift for s, cal in self.calendars(names).items()}

    def calendars(self, names: Sequence[str] | None) -> dict[str, Calendar]:
        """Each known symbol's calendar (unknown names are left out)."""
        rows = self.repo.symbols(names).select("symbol", "calendar", "asset_class")
        return {s: calendar_for(c, a) for s, c, a in rows.iter_rows()}

    def remove(self, names: list[str]) -> int:
        self.require(names)
        return self.repo.remove_symbols(names)

    def set_layers(
        self, names: list[str], layer: int, *, liquidity_score: float | None = None
    ) -> dict[str, int]:
        frame = pl.DataFrame({"symbol": names, "layer": [layer] * len(names)})
        if liquidity_score is not None:
            frame = frame.with_columns(pl.lit(liquidity_score).alias("liquidity_score"))
        return self.repo.set_layers(layers.updates_from(frame, "arguments"))

    def import_layers(self, path: Path) -> dict[str, int]:
        return self.apply_layers(read_table(path), str(path))

    def apply_layers(self, frame: pl.DataFrame, source: str) -> dict[str, int]:
        """Layer updates from ``frame`` (columns as ``lake layers import``'s file)."""
        updates = layers.updates_from(frame, source)
        if updates["symbol"].is_duplicated().any():
            msg = f"{source}: symbols repeat; each symbol may appear once"
            raise UsageError(msg)
        return self.repo.set_layers(updates)

    def compute_layers(
        self,
        bars: LiquiditySource,
        today: date,
        *,
        lookback_sessions: int,
        layer1_min_dollar_volume: float,
    ) -> dict[str, int]:
        """Score liquidity from stored daily bars and qualify layer 1 by the threshold."""
        rows = self.require(None)
        # Enough calendar days to hold the lookback's sessions, holidays included.
        back = timedelta(days=lookback_sessions * 2 + 14)
        window = DateRange(today - back, today + ONE_DAY)
        scores = bars.liquidity(rows["symbol"].to_list(), window, lookback_sessions)
        if scores.is_empty():
            return {"symbols": 0, "promoted": 0, "demoted": 0, "qualified": 0}
        updates = scores.with_columns(
            (pl.col("dollar_volume") >= layer1_min_dollar_volume).alias("layer1_qualified"),
            (pl.col("dollar_volume") / layers.SCORE_UNIT).round(2).alias("liquidity_score"),
        ).select("symbol", "layer1_qualified", "liquidity_score")
        return self.repo.set_layers(updates)


def read_table(path: Path) -> pl.DataFrame:
    """A CSV, Parquet or JSON file as a frame (CSV cells as strings); bad files are one line."""
    if not path.is_file():
        msg = f"no file at {path}"
        raise UsageError(msg)
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        if path.suffix.lower() in {".csv", ".txt"}:
            return pl.read_csv(path, infer_schema_length=0)
        if path.suffix.lower() == ".json":
            return pl.read_json(path)
    except Exception as exc:  # polars raises many kinds for malformed input
        msg = f"{path}: cannot be read ({str(exc).splitlines()[0]}); check the file's format"
        raise UsageError(msg) from exc
    msg = f"{path}: use a .csv, .parquet or .json file"
    raise UsageError(msg)


def typed_symbols(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """``frame`` with import columns cast to catalog types; bad values name column and row."""
    for name, dtype in IMPORTS.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        try:
            if dtype == pl.Date() and col.dtype == pl.String:
                cast = col.str.strptime(pl.Date, "%Y-%m-%d", strict=True)
            else:
                cast = col.cast(dtype, strict=True)
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            msg = f"{source}: column {name!r} has a value that is not a {dtype}"
            raise UsageError(msg) from None
        frame = frame.with_columns(cast.alias(name))
    if "calendar" in frame.columns:
        for cal in frame["calendar"].drop_nulls().unique().to_list():
            calendar_for(cal)
    return frame
