"""Bars written out for other tools: CSV, Parquet or JSON, the rows ``Lake.bars`` gives.

Every format keeps the lake's columns in order (``domain.bars.SCHEMA``) and its rows sorted by
(symbol, ts). Times are ISO 8601 in UTC (``2024-06-03T13:30:00+00:00``) in CSV and JSON; JSON is
one array of objects, one per bar, with ``null`` for a missing vwap or trade count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal, get_args

import polars as pl

from barlake.errors import UsageError
from barlake.views.files import write_with

Format = Literal["csv", "parquet", "json"]
FORMATS: Final[tuple[Format, ...]] = get_args(Format)

#: ISO 8601 with the offset, and microseconds only when a bar has them.
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%:z"


def format_of(name: str) -> Format:
    """``name`` as a format, or a UsageError naming the valid ones."""
    if name not in FORMATS:
        msg = f"unknown export format {name!r}; use one of: {', '.join(FORMATS)}"
        raise UsageError(msg)
    return name


def write(frame: pl.DataFrame, fmt: Format, path: Path) -> None:
    """Write ``frame`` to the file ``path`` in ``fmt``."""
    if fmt == "csv":
        frame.write_csv(path, datetime_format=ISO_FORMAT)
    elif fmt == "json":
        frame.write_json(path)
    else:
        try:
            frame.write_parquet(path, compression="zstd")
        except pl.exceptions.ComputeError as exc:  # how polars reports a failed Parquet write
            raise OSError(str(exc)) from exc


def export(frame: pl.DataFrame, fmt: str, path: str | Path) -> Path:
    """Write ``frame`` to ``path`` in ``fmt`` (``csv``, ``parquet`` or ``json``), replacing the
    file whole once written; UsageError for an unknown format or a path whose folder does not
    exist, StorageError when the write fails."""
    chosen = format_of(fmt)
    return write_with(path, lambda staged: write(frame, chosen, staged), f"{chosen} export")
