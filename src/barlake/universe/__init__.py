"""The symbols table's use cases: scanner layers and market-cap tiers."""
