"""The kinds of event the catalog records for ``lake fill --events`` to serve."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The ``type`` of an event row; each value is the string the catalog stores."""

    #: A symbol newly qualified for a layer (payload: symbol, layer).
    SYMBOL_QUALIFIED = "symbol.qualified"
    #: A symbol's effective layer went up (payload: symbol, from, to).
    LAYER_PROMOTED = "layer.promoted"
    #: A symbol's effective layer went down (payload: symbol, from, to).
    LAYER_DEMOTED = "layer.demoted"
    #: ``lake check`` found sessions missing (payload: symbol, interval, first, last, sessions).
    GAP_DETECTED = "data.gap.detected"
