"""Gaps in, requests out: the cost model, packing, lower bound and integer program."""
