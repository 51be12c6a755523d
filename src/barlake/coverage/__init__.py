"""Expected sessions, the ledger rule, gaps and the coverage matrix."""

from barlake.coverage.matrix import STATES

__all__ = ["STATES"]
