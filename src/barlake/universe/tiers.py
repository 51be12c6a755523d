"""Market-cap tiers: optional, and they only ever decide how many requests run at once.

With ``backfill.use_symbol_tiers: true`` each symbol falls in the tier with the highest
``min_market_cap`` it reaches (``standard`` when its market cap is unknown), and a request runs
under the limit of the best tier among its symbols. Dates and ranges never depend on tiers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from barlake.config import TierConfig

UNKNOWN_CAP_TIER = "standard"


def tier_of(market_cap: float | None, tiers: Mapping[str, TierConfig]) -> str:
    """The tier of a symbol with ``market_cap``."""
    if market_cap is None:
        return UNKNOWN_CAP_TIER if UNKNOWN_CAP_TIER in tiers else _lowest(tiers)
    for name, tier in sorted(tiers.items(), key=lambda kv: -kv[1].min_market_cap):
        if market_cap >= tier.min_market_cap:
            return name
    return _lowest(tiers)


def request_tier(
    symbols: Sequence[str], tier_map: Mapping[str, str], tiers: Mapping[str, TierConfig]
) -> str:
    """The best tier among ``symbols``: a pack runs as fast as its most important member."""
    names = [tier_map.get(s, UNKNOWN_CAP_TIER) for s in symbols]
    return max(names, key=lambda n: tiers[n].min_market_cap if n in tiers else -1.0)


def _lowest(tiers: Mapping[str, TierConfig]) -> str:
    return min(tiers.items(), key=lambda kv: kv[1].min_market_cap)[0]
