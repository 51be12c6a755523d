"""The registry: tracking symbols and their scanner layers (the symbols table's use cases)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from barlake.calendars.calendar import CRYPTO_CALENDAR, Calendar, calendar_for
from barlake.catalog.repositories import SymbolsRepository
from barlake.catalog.schema import IMPORTS
from barlake.domain.ranges import ONE_DAY, DateRange
from barlake.domain.symbols import (
    IMPORT_COLUMNS,
    SYMBOL_COLUMNS,
    is_crypto_pair,
    normal_symbol,
    split_symbols,
)
from barlake.errors import UnknownSymbolError, UsageError
from barlake.universe import layers
from barlake.universe.members import Member, members

#: The asset class a crypto pair is tracked as (it trades on ``calendars.CRYPTO_CALENDAR``).
CRYPTO = "crypto"


class LiquiditySource(Protocol):
    """Median dollar volumes from stored daily bars (``storage.store.Store``)."""

    def liquidity(self, symbols_: list[str], window: DateRange, sessions: int) -> pl.DataFrame: ...


class Registry:
    """The symbols a lake tracks: add, import, look up, remove, and set their layers."""

    def __init__(self, symbols: SymbolsRepository) -> None:
        self.repo = symbols

    def add(self, names: list[str], attributes: dict[str, Any], columns: Sequence[str]) -> int:
        """Add ``names`` with catalog ``attributes`` (any of ``columns``); those set aside
        after a provider refused them are asked for again. A new name that is a crypto pair
        (``domain.symbols.is_crypto_pair``) is tracked as asset class crypto on the 24/7
        calendar unless ``attributes`` say otherwise."""
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
        """Add or update symbols from a CSV, Parquet or JSON file with a ``symbol`` column, or
        from a plain-text list (``.txt``: one symbol a line; ``read_list``)."""
        listed = read_list(path)
        if listed is not None:
            return self.add(listed, {}, ())
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
        checked = [normal_symbol(s) for s in frame["symbol"].to_list()]
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
        """Write ``frame`` (new crypto pairs described as such), unless a symbol would be
        delisted before it lists (the dates given here, or one given here and the other
        already in the catalog)."""
        known = self.repo.symbols(frame["symbol"].to_list())
        given = [c for c in ("listed_on", "delisted_on") if c in frame.columns]
        if given:
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
        return self.repo.upsert_symbols(described(frame, known))

    def spelled(self, names: Sequence[str]) -> list[str]:
        """``names`` as the catalog spells them: a name it lacks that it holds in another case
        (a lake that kept ``aapl`` from before tickers were upper-cased) is that spelling."""
        rows = self.repo.symbols(names)["symbol"].to_list()
        missing = set(names) - set(rows)
        if not missing:
            return list(names)
        stored = {s.upper(): s for s in self.repo.symbols()["symbol"].to_list()}
        return [stored.get(n.upper(), n) if n in missing else n for n in names]

    def untracked(self, names: Sequence[str]) -> list[str]:
        """The names of ``names`` the catalog does not track (in any case), in order."""
        spelled = self.spelled(names)
        tracked = set(self.repo.symbols(spelled)["symbol"].to_list())
        return [n for n, s in zip(names, spelled, strict=True) if s not in tracked]

    def newcomers(self, names: Sequence[str]) -> pl.DataFrame:
        """Catalog rows for untracked ``names`` as ``add`` would write them (layer 0, active,
        crypto pairs on the 24/7 calendar), without writing them: what a fill plans with
        before it tracks them."""
        empty = self.repo.symbols([])
        rows = described(pl.DataFrame({"symbol": list(names)}, schema={"symbol": pl.String}), empty)
        defaults = {"layer": 0, "active": True}
        rows = rows.with_columns(
            [pl.lit(defaults.get(c)).alias(c) for c in SYMBOL_COLUMNS if c not in rows.columns]
        )
        return pl.concat([empty, rows.select(empty.columns)], how="vertical_relaxed")

    def calendar_warnings(self, names: Sequence[str]) -> list[str]:
        """One line per symbol of ``names`` that is a crypto pair (by asset class, or by name
        when it has none) but sits on an exchange calendar: its nights and weekends would be
        bars outside sessions, never coverage."""
        rows = self.repo.symbols(self.spelled(names)).select("symbol", "asset_class", "calendar")
        out = []
        for sym, asset_class, calendar in rows.iter_rows():
            crypto = asset_class == CRYPTO or (asset_class is None and is_crypto_pair(sym))
            on = calendar_for(calendar, asset_class).name
            if crypto and on != CRYPTO_CALENDAR:
                out.append(
                    f"{sym} is a crypto pair, which trades around the clock, but it is on the "
                    f"{on} calendar: its nights and weekends will be bars outside sessions, "
                    f"never coverage; `lake symbols add {sym} --calendar {CRYPTO_CALENDAR}` "
                    "puts it on the crypto calendar"
                )
        return out

    def require(self, names: Sequence[str] | None, *, layer: int | None = None) -> pl.DataFrame:
        """Catalog rows of ``names`` (all active symbols when None); unknown names are errors."""
        rows = self.repo.symbols(names, active_only=names is None)
        if names is not None and set(names) - set(rows["symbol"].to_list()):
            # Only then look for other spellings (one read of every symbol).
            spelled = self.spelled(names)
            rows = self.repo.symbols(spelled)
            missing = sorted(set(spelled) - set(rows["symbol"].to_list()))
            if missing:
                raise UnknownSymbolError(not_tracked(missing))
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
        return self.repo.remove_symbols(self.require(names)["symbol"].to_list())

    def set_layers(
        self, names: list[str], layer: int, *, liquidity_score: float | None = None
    ) -> dict[str, int]:
        frame = pl.DataFrame({"symbol": self.spelled(names), "layer": [layer] * len(names)})
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


def not_tracked(names: Sequence[str]) -> str:
    """The line that says ``names`` are not tracked, and how to track them."""
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    joined = ",".join(names[:5]) + (",..." if len(names) > 5 else "")
    return (
        f"unknown symbol(s) {shown}: the lake does not track them; "
        f"`lake symbols add {joined}` tracks them "
        f"(`lake fill {joined}` tracks and fetches them, `--dry-run` shows what it would fetch)"
    )


def described(frame: pl.DataFrame, known: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the asset class and calendar its new crypto pairs get: ``crypto`` and
    ``24/7``, where the frame gives none. Symbols already in ``known`` keep what they have
    (their stored values are carried over, or the frame's own columns are kept as given)."""
    names = frame["symbol"].to_list()
    kept = {s: (a, c) for s, a, c in known.select("symbol", "asset_class", "calendar").iter_rows()}
    if not any(is_crypto_pair(s) for s in names if s not in kept):
        return frame
    given = [c for c in ("asset_class", "calendar") if c in frame.columns]
    classes: list[str | None] = []
    calendars: list[str | None] = []
    for row in frame.select("symbol", *given).iter_rows(named=True):
        sym = row["symbol"]
        if sym in kept:
            cls, cal = (
                row.get(c, stored)
                for c, stored in zip(("asset_class", "calendar"), kept[sym], strict=True)
            )
        else:
            cls = row.get("asset_class") or (CRYPTO if is_crypto_pair(sym) else None)
            cal = row.get("calendar") or (CRYPTO_CALENDAR if cls == CRYPTO else None)
        classes.append(cls)
        calendars.append(cal)
    return frame.with_columns(
        pl.Series("asset_class", classes, dtype=pl.String),
        pl.Series("calendar", calendars, dtype=pl.String),
    )


def read_list(path: Path) -> list[str] | None:
    """The symbols of a plain-text list, or None when ``path`` is no ``.txt`` file or is a
    CSV table saved as one (its first line a header starting with ``symbol``).

    One symbol a line, upper-cased (``normal_symbol``); ``#`` starts a comment; blank lines
    are skipped; a name listed twice counts once. A line holding several names, or a bad
    name, is a UsageError naming the file and the line."""
    if path.suffix.lower() != ".txt" or not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a text file (byte {exc.start} is not UTF-8); list one symbol a line"
        raise UsageError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot be read ({exc.strerror or exc})"
        raise UsageError(msg) from None
    out: dict[str, None] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if not out and line.split(",", 1)[0].strip().lower() == "symbol":
            return None  # a CSV table with a header: ``read_table`` reads it
        try:
            names = split_symbols(line)
        except UsageError as exc:
            msg = f"{path} line {n}: {exc}"
            raise UsageError(msg) from None
        if len(names) != 1:
            msg = f"{path} line {n}: {line!r} holds several names; put one symbol per line"
            raise UsageError(msg)
        out[names[0]] = None
    if not out:
        msg = f"{path}: no symbol in it; list one symbol a line (`#` starts a comment)"
        raise UsageError(msg)
    return list(out)


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
    msg = f"{path}: use a .csv, .parquet or .json file, or a .txt list of symbols"
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
