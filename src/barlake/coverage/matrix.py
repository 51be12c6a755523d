"""Coverage: a symbols x sessions matrix saying, for each cell, what the lake holds.

It is computed from the same inputs as gaps (expected sessions, stored session days, final and
provisional ledger ranges) and through the same rule (``gaps.missing``), so the cells a gap query
reports are exactly the MISSING and PROVISIONAL cells here. Pure functions and values only: the
gap finder reads the inputs into ``Cells``, ``views.coverage`` makes the ``Coverage`` users see.

State codes (``int8``), also in ``STATES``:

====  =============  =======================================================================
code  name           meaning
====  =============  =======================================================================
0     missing        an expected session with no bars and no final ledger range: a gap
1     stored         bars are stored and final (no provisional ledger range re-opens them)
2     provisional    bars are stored, but were fetched before the session closed: a gap that
                     the next fill fetches again
3     empty          no bars, but a final ledger range covers it: asked for already and came
                     back empty (a halted day, a holiday the calendar missed); not a gap
4     not expected   not a session of the symbol's calendar, outside its requested range or
                     listing window, or not opened yet
====  =============  =======================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from barlake.calendars.calendar import Days
from barlake.coverage.gaps import missing
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange

MISSING: Final = 0
STORED: Final = 1
PROVISIONAL: Final = 2
EMPTY: Final = 3
NOT_EXPECTED: Final = 4

#: State code -> name, in code order.
STATES: Final[dict[int, str]] = {
    MISSING: "missing",
    STORED: "stored",
    PROVISIONAL: "provisional",
    EMPTY: "empty",
    NOT_EXPECTED: "not expected",
}

States = npt.NDArray[np.int8]


def states(
    expected: Days,
    stored: Days,
    final: Sequence[DateRange] = (),
    provisional: Sequence[DateRange] = (),
) -> States:
    """The state of each ``expected`` session of one symbol (never NOT_EXPECTED).

    >>> import numpy as np
    >>> days = np.array(["2024-06-03", "2024-06-04", "2024-06-05"], dtype="datetime64[D]")
    >>> states(days, days[:1]).tolist()
    [1, 0, 0]
    """
    gap = missing(expected, stored, final, provisional)
    have = np.isin(expected, stored)
    # By ``missing``'s rule, a gap with bars is a provisional range waiting for its re-fetch,
    # and a covered session without bars is a final range that came back empty.
    out = np.where(gap, np.where(have, PROVISIONAL, MISSING), np.where(have, STORED, EMPTY))
    return out.astype(np.int8)


@dataclass(frozen=True)
class Cells:
    """Each symbol's expected sessions and their states, before they become one matrix, and
    each symbol's layer (empty when unknown)."""

    interval: Interval
    symbols: tuple[str, ...]
    sessions: Days
    rows: dict[str, tuple[Days, States]]
    layers: dict[str, int] = field(default_factory=dict)
