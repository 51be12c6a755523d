"""``/symbols`` and ``/layers``: the symbols the lake tracks and the layers that size their
retention (``lake symbols``, ``lake layers``)."""

from __future__ import annotations

from fastapi import APIRouter

from barlake.api.deps import CHANGE, READ, LakeDep
from barlake.api.responses import LakeJSON
from barlake.api.schemas import Counted, LayerBody, LayerCounts, LayersBody, Symbol, SymbolsBody

router = APIRouter(tags=["symbols"])


@router.get("/symbols", response_model=list[Symbol], dependencies=READ)
def list_symbols(lake: LakeDep) -> LakeJSON:
    """Every symbol with its layer and calendar (``lake symbols list --json``)."""
    return LakeJSON(lake.symbol_rows())


@router.post("/symbols", status_code=201, response_model=Counted, dependencies=CHANGE)
def add_symbols(lake: LakeDep, body: SymbolsBody) -> LakeJSON:
    """Add symbols or update their attributes (``lake symbols add``)."""
    attributes = body.model_dump(exclude={"symbols"}, exclude_none=True)
    return LakeJSON({"symbols": lake.add_symbols(body.symbols, **attributes)}, status_code=201)


@router.put("/symbols/{symbol:path}/layer", response_model=LayerCounts, dependencies=CHANGE)
def set_layer(lake: LakeDep, symbol: str, body: LayerBody) -> LakeJSON:
    """Put one symbol at a layer (``lake layers set``); a promotion queues what its new
    retention adds."""
    counts = lake.set_layers([symbol], body.layer, liquidity_score=body.liquidity_score)
    return LakeJSON(counts)


@router.post("/layers", response_model=LayerCounts, dependencies=CHANGE)
def import_layers(lake: LakeDep, body: LayersBody) -> LakeJSON:
    """Layer updates for many symbols (``lake layers import``, rows as its file's)."""
    rows = [row.model_dump(exclude_none=True) for row in body.layers]
    return LakeJSON(lake.import_layers(rows))
