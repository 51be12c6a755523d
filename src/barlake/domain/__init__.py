"""Pure values: ranges, intervals, bars, symbols, selections, events."""
