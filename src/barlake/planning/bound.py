"""The fewest calls any plan could make for a gap set (``planning.pricing`` says what calls are).

``lower_bound`` is the largest of: missing bars / the most a single call could close (a page of
nothing but missing bars, a grouped call on the session most symbols miss, a pack over the
densest window); symbols with gaps / ``symbols_per_request`` for providers without grouped
calls; and the calls of any plan shared out among the symbols it serves (``_shares``).
``barlake.planning.exact`` proves more for small gap sets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from barlake.planning.pricing import Pricing
from barlake.providers.urls import SEPARATOR, symbol_chars

#: Above this many (symbol x window) cells, the densest-window search is skipped and the lower
#: bound uses the page and symbol bounds alone (still a bound, a looser one).
_DENSITY_CELLS = 4_000_000
#: The same for the bound from per-symbol shares, which is cheaper per cell.
_CHARGE_CELLS = 40_000_000
#: Trading spans (listing to delisting) the share bound prices by bars, the most common first.
_SHARE_SPANS = 64


def lower_bound(
    price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]], enough: int | None = None
) -> int:
    """Fewer calls than this cannot close ``holes``, whatever the request shapes. The costlier
    bounds are skipped once the bound reaches ``enough`` (a plan's calls: it cannot go higher)."""
    holes = {s: h for s, h in holes.items() if len(h)}
    if not holes:
        return 0
    caps, interval, axis = price.caps, price.interval, price.axis
    missing = sum(int(axis.bars[h].sum()) for h in holes.values())
    most = most_symbols(price, holes)
    grouped = interval == "1day" and caps.grouped_daily
    # No call closes more than a page of missing bars, nor more than the ``most`` symbols
    # missing the most have missing, nor more than the densest window allows; a grouped call
    # closes at most the session most symbols miss.
    each = np.sort(np.array([axis.bars[h].sum() for h in holes.values()], dtype=np.int64))
    per_call = min(float(price.per_page), float(each[-most:].sum()))
    per_grouped = 0.0
    if grouped:
        _, per_session = np.unique(np.concatenate(list(holes.values())), return_counts=True)
        per_grouped = float(per_session.max())
    bound = max(1, math.ceil(missing / max(per_call, per_grouped) - 1e-9))
    if not grouped:
        bound = max(bound, math.ceil(len(holes) / most))
    if enough is not None and bound >= enough:
        return bound
    per_call = min(per_call, _densest_call(price, holes, most))
    bound = max(bound, math.ceil(missing / max(per_call, per_grouped) - 1e-9))
    if enough is None or bound < enough:
        bound = max(bound, math.ceil(_shares(price, holes, most, grouped=grouped) - 1e-9))
    return bound


def most_symbols(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]) -> int:
    """The most symbols one request can name (shortest names first, for the URL budget)."""
    if price.chars is None:
        return min(price.per_request, len(holes))
    # k names fit when their lengths and the k - 1 separators between them do: when the k
    # shortest, each counted with one separator, fit the budget plus one separator.
    step = len(SEPARATOR)
    lengths = sorted(symbol_chars(s) + step for s in holes)
    fit = int(np.searchsorted(np.cumsum(lengths), price.chars + step, side="right"))
    return max(1, min(price.per_request, fit))


def _densest_call(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]], most: int) -> float:
    """An upper bound on the missing bars one non-grouped call can close.

    A request over sessions ``i..j`` with symbols S costs at least
    max(1, sum of bars each symbol has in i..j / page); every symbol's bars in i..j include at
    least its sessions between its first and last missing one. So a call closes at most
    max over windows and k of (the k largest missing counts) / max(1, the k smallest span
    costs / page). Only windows starting and ending on missing sessions can be best.
    """
    names = list(holes)
    marks = np.unique(np.concatenate([holes[s] for s in names]))
    if len(names) * len(marks) * len(marks) > _DENSITY_CELLS:
        return float(price.per_page)
    bars = price.axis.bars
    # Missing bars of each symbol before each mark: cum[s, m] = sum of bars at holes < marks[m].
    weight = np.zeros((len(names), len(marks) + 1), dtype=np.int64)
    for r, s in enumerate(names):
        cols = np.searchsorted(marks, holes[s]) + 1
        np.add.at(weight[r], cols, bars[holes[s]])
    cum = np.cumsum(weight, axis=1)
    firsts = np.array([holes[s][0] for s in names])
    lasts = np.array([holes[s][-1] for s in names])
    prefix = price.axis.prefix
    best = 0.0
    for a in range(len(marks)):
        ends = _ends(price, marks, a)
        if not len(ends):
            continue
        got = cum[:, ends + 1] - cum[:, [a]]  # symbols x windows
        lo = np.maximum(firsts[:, None], marks[a])
        hi = np.minimum(lasts[:, None], marks[ends][None, :])
        span = np.where(hi >= lo, prefix[np.minimum(hi + 1, len(prefix) - 1)] - prefix[lo], 0)
        span = np.where(got > 0, span, np.iinfo(np.int64).max // (4 * len(names)))
        top = np.cumsum(-np.sort(-got, axis=0), axis=0)[:most]
        cheap = np.cumsum(np.sort(span, axis=0), axis=0)[:most]
        ratio = top / np.maximum(1.0, cheap / price.per_page)
        best = max(best, float(ratio.max()))
    return best


def _shares(
    price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]], most: int, *, grouped: bool
) -> float:
    """The calls of any plan, shared out among the symbols each request serves, summed.

    Drop from each request the symbols with no hole in its window (that costs nothing), then
    share its calls among the rest in one of two ways, each giving a bound:

    - evenly: a symbol's share of a request over window W is at least u(W), the fewest calls
      per symbol of any request over W (the best k of the symbols with a hole in W sharing
      max(1, their bars / page) calls);
    - by bars: a symbol's share is its bars in W x max(1 / page, 1 / the most bars any
      request over W can return), which keeps a symbol listed mid-window from lowering the
      share of those that trade throughout.

    Either way a symbol's windows cover its holes, so it pays at least the cheapest cover of
    its holes by windows, each priced at the least share over the windows around it (a
    shortest path over its holes), and the plan's calls are at least the sum over symbols.
    A grouped call over one session is shared among the symbols missing it. This sees what
    the page and density bounds cannot: holes far apart need a window, and a share of a call,
    each.
    """
    names = list(holes)
    marks = np.unique(np.concatenate([holes[s] for s in names]))
    n, m = len(names), len(marks)
    if n * m * m > _CHARGE_CELLS:
        return 0.0
    prefix = price.axis.prefix
    whole = (0, len(price.axis.days))
    spans = np.array([price.active.get(s, whole) for s in names], dtype=np.int64).reshape(n, 2)
    has = np.zeros((n, m + 1), dtype=np.int64)  # has[s, j] = holes of s before marks[j]
    for r, s in enumerate(names):
        np.add.at(has[r], np.searchsorted(marks, holes[s]) + 1, 1)
    has = np.cumsum(has, axis=1)
    k = np.arange(1, min(most, n) + 1, dtype=np.int64)[:, None]
    even = np.full((m, m), np.inf)  # least share per symbol of a request over marks a..e
    room = np.full((m, m), float(price.per_page))  # the most bars one call's share is of
    for a in range(m):
        ends = _ends(price, marks, a)
        if not len(ends):
            continue
        serves = (has[:, ends + 1] - has[:, [a]]) > 0  # symbols x windows
        lo = np.maximum(spans[:, [0]], marks[a])
        hi = np.minimum(spans[:, [1]], marks[ends][None, :] + 1)
        bars = np.where(serves & (hi > lo), prefix[np.maximum(hi, lo)] - prefix[lo], 0)
        # Ascending, the symbols with no hole (0 bars) come first, then those served.
        total = np.vstack([np.zeros((1, len(ends)), np.int64), np.cumsum(np.sort(bars, 0), 0)])
        served = serves.sum(axis=0)
        first = n - served
        take = np.minimum(k, served[None, :])
        below = np.take_along_axis(total, first[None, :], 0)
        least = np.take_along_axis(total, first[None, :] + take, 0) - below
        share = np.where(k <= served, np.maximum(1.0, least / price.per_page) / k, np.inf)
        even[a, ends] = share.min(axis=0)
        most_bars = total[n] - np.take_along_axis(total, (n - np.minimum(most, served))[None], 0)[0]
        room[a, ends] = np.minimum(price.per_page, most_bars)
    if grouped:
        d = np.arange(m)
        missing_it = (has[:, 1:] - has[:, :-1]).sum(axis=0)
        even[d, d] = np.minimum(even[d, d], 1.0 / missing_it)
        room[d, d] = np.maximum(room[d, d], missing_it * price.axis.bars[marks])
    around_even = _around(even)
    # By bars: one table per trading span, for the most common spans (others add nothing).
    by_span: dict[tuple[int, int], int] = defaultdict(int)
    for lo_, hi_ in spans.tolist():
        by_span[(lo_, hi_)] += 1
    common = sorted(by_span, key=lambda sp: -by_span[sp])[:_SHARE_SPANS]
    around_bars: dict[tuple[int, int], npt.NDArray[np.float64]] = {}
    for lo_, hi_ in common:
        a_lo = np.maximum(marks[:, None], lo_)
        e_hi = np.minimum(marks[None, :] + 1, hi_)
        mine = np.where(e_hi > a_lo, prefix[np.maximum(e_hi, a_lo)] - prefix[a_lo], 0)
        around_bars[(lo_, hi_)] = _around(np.where(np.isfinite(even), mine / room, np.inf))
    alike: dict[tuple[bytes, tuple[int, int]], int] = defaultdict(int)
    for s, (lo_, hi_) in zip(names, spans.tolist(), strict=True):
        alike[(holes[s].tobytes(), (lo_, hi_))] += 1
    evenly = by_bars = 0.0
    for (key, span), count in alike.items():
        at = np.searchsorted(marks, np.frombuffer(key, dtype=np.int64))
        evenly += count * _cover(around_even, at)
        if span in around_bars:
            by_bars += count * _cover(around_bars[span], at)
    return max(evenly, by_bars)


def _ends(price: Pricing, marks: npt.NDArray[np.int64], a: int) -> npt.NDArray[np.int64]:
    """The marks a window starting at mark ``a`` may end on (the provider's range limit)."""
    ends = np.arange(a, len(marks))
    if price.max_days is None:
        return ends
    limit = np.datetime64(price.axis.date(int(marks[a])) + timedelta(days=price.max_days))
    return ends[price.axis.days[marks[ends]] < limit]


def _around(price: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """For each window a..e, the least ``price`` of any window around it (a' <= a, e' >= e)."""
    out: npt.NDArray[np.float64] = np.minimum.accumulate(
        np.minimum.accumulate(price[:, ::-1], axis=1)[:, ::-1], axis=0
    )
    return out


def _cover(around: npt.NDArray[np.float64], at: npt.NDArray[np.int64]) -> float:
    """The cheapest cover of the holes at marks ``at`` by windows priced ``around``: each
    window takes a run of consecutive holes (a shortest path)."""
    best = np.zeros(len(at) + 1)
    for q in range(len(at)):
        best[q + 1] = float((best[: q + 1] + around[at[: q + 1], at[q]]).min())
    return float(best[-1])
