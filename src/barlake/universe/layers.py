"""Scanner layers: which of layers 1-3 a symbol qualifies for, and the events changes raise.

A symbol's effective ``layer`` is the highest layer it qualifies for (0 when none). Updates come
as a frame with ``symbol`` and either ``layer`` (qualifies for 1..layer, not above) or any of
the ``layerN_qualified`` flags, optionally ``liquidity_score``. Changing a flag stamps its
``layerN_updated``; a newly set flag raises ``symbol.qualified``; a higher or lower effective layer
raises ``layer.promoted`` or ``layer.demoted`` (``barlake.domain.events.EventType``). All of it
is one SQL statement per table, so ten thousand symbols update in a blink.
"""

from __future__ import annotations

import polars as pl

from barlake.domain.symbols import LAYER_FLAGS
from barlake.errors import UsageError

#: The liquidity score is the median daily dollar volume, in millions of dollars, so that it
#: fits the catalog's ``decimal(10, 2)`` for any listed stock.
SCORE_UNIT = 1_000_000.0


def updates_from(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """``frame`` as layer updates: ``symbol``, the flags it sets, maybe ``liquidity_score``.

    ``layer`` N turns into flags 1..N true and the others false; explicit flags are kept as given
    (missing ones stay as they are in the catalog).
    """
    allowed = {"symbol", "layer", "liquidity_score", *LAYER_FLAGS}
    extra = sorted(set(frame.columns) - allowed)
    if "symbol" not in frame.columns or extra:
        what = f"unknown column(s) {', '.join(extra)}" if extra else "no 'symbol' column"
        msg = f"{source}: {what}; use symbol with layer or layer1_qualified..layer3_qualified"
        raise UsageError(msg)
    has_flags = any(f in frame.columns for f in LAYER_FLAGS)
    if ("layer" in frame.columns) == has_flags:
        msg = f"{source}: give either a 'layer' column or layerN_qualified columns, not both"
        if "layer" not in frame.columns:
            msg = f"{source}: no 'layer' or layerN_qualified column to set"
        raise UsageError(msg)
    out = frame.select("symbol").with_columns(pl.col("symbol").cast(pl.String))
    try:
        if "layer" in frame.columns:
            layer = frame["layer"].cast(pl.Int64, strict=True)
            if layer.is_null().any() or not layer.is_between(0, 3).all():
                msg = f"{source}: 'layer' must be 0, 1, 2 or 3 on every row"
                raise UsageError(msg)
            out = out.with_columns(
                [(layer >= n).alias(flag) for n, flag in enumerate(LAYER_FLAGS, start=1)]
            )
        else:
            for flag in LAYER_FLAGS:
                if flag in frame.columns:
                    out = out.with_columns(_boolean(frame[flag], source, flag))
        if "liquidity_score" in frame.columns:
            score = frame["liquidity_score"].cast(pl.Float64, strict=True)
            if (score < 0).any() or (score >= 1e8).any():
                msg = f"{source}: 'liquidity_score' must be between 0 and 99,999,999.99"
                raise UsageError(msg)
            out = out.with_columns(score.alias("liquidity_score"))
    except pl.exceptions.InvalidOperationError:
        msg = f"{source}: a layer or liquidity_score value is not a number"
        raise UsageError(msg) from None
    return out


def _boolean(column: pl.Series, source: str, name: str) -> pl.Series:
    if column.dtype == pl.Boolean:
        values = column
    else:
        text = column.cast(pl.String).str.to_lowercase().str.strip_chars()
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if not text.is_in(list(truth)).all():
            msg = f"{source}: column {name!r} must be true/false on every row"
            raise UsageError(msg)
        values = text.replace_strict(truth, return_dtype=pl.Boolean)
    return values.alias(name)
