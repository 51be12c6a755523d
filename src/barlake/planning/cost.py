"""What requests cost at a provider, and the cheapest requests for a set of gaps.

A gap set is a set of missing cells, (symbol, session) pairs, on one interval and calendar. A
request names some symbols (at most ``symbols_per_request``, and few enough for the URL) and one
range of sessions; the provider returns every bar of every named symbol in the range (from its
listing on), stored or not, in pages of ``bars_per_page`` bars, and each page is one call
against the rate limit. A grouped-daily call returns one session of every symbol. So:

    cost(request) = calls + reread_weight x pages of stored bars fetched again

``reread_weight`` is the trade-off between calls and bandwidth: 0 re-reads freely to save a call,
a large weight never re-reads. The planner below joins each group of alike symbols' gaps into
the windows that cost them least (a shortest path), packs symbols whose ranges are alike, deals
packs so that pages come out full, and for grouped-daily providers sends the sessions that many
symbols miss to the grouped endpoint, each step only when the cost falls.

``planning.bound`` gives the fewest calls any plan could make; ``planning.exact`` adds an
integer program for small gap sets, which proves tighter bounds and finds better plans where
symbols unlike each other can share windows.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from barlake.planning.pricing import Pack, Pricing, Shape
from barlake.providers.urls import fits, joined_chars, symbol_chars, url_chars

# -- planning ---------------------------------------------------------------------------------


def plan_shapes(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]) -> list[Shape]:
    """The cheapest requests found for ``holes`` (symbol -> sorted missing session indices)."""
    return with_bars(price, _cheapest(price, {s: h for s, h in holes.items() if len(h)}))


def with_bars(price: Pricing, shapes: Iterable[Shape]) -> list[Shape]:
    """``shapes`` with the bars each is expected to return."""
    return [
        replace(
            sh, bars=len(sh.symbols) if sh.grouped else price.load(sh.symbols, sh.first, sh.last)
        )
        for sh in shapes
    ]


def _cheapest(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]) -> list[Shape]:
    best = _packs(price, holes)
    caps, axis = price.caps, price.axis
    if price.interval != "1day" or not caps.grouped_daily or not holes:
        return best
    best_cost = total_cost(price, best, holes)
    for chosen in _grouped_candidates(holes):
        if len(chosen) >= best_cost:
            continue  # its grouped calls alone cost as much as the best plan so far
        keep = np.ones(len(axis.days), dtype=bool)
        keep[chosen] = False
        rest = {s: h[keep[h]] for s, h in holes.items()}
        shapes = _grouped(holes, chosen) + _packs(price, {s: h for s, h in rest.items() if len(h)})
        cost = total_cost(price, shapes, holes)
        if cost < best_cost - 1e-9:
            best, best_cost = shapes, cost
    return best


def total_cost(
    price: Pricing, shapes: Sequence[Shape], holes: Mapping[str, npt.NDArray[np.int64]]
) -> float:
    total = 0.0
    for sh in shapes:
        if sh.grouped:
            total += 1
            continue
        missing = sum(_missing_bars(price, holes[s], sh.first, sh.last) for s in sh.symbols)
        total += price.cost(price.load(sh.symbols, sh.first, sh.last), missing)
    return total


def _missing_bars(price: Pricing, h: npt.NDArray[np.int64], first: int, last: int) -> int:
    lo, hi = np.searchsorted(h, [first, last + 1])
    return int(price.axis.bars[h[lo:hi]].sum())


def _grouped_candidates(holes: Mapping[str, npt.NDArray[np.int64]]) -> list[npt.NDArray[np.int64]]:
    """Sets of sessions to fetch grouped: those at least ``t`` symbols miss, for several ``t``."""
    sessions, counts = np.unique(np.concatenate(list(holes.values())), return_counts=True)
    levels = np.unique(counts)
    if len(levels) > 24:
        levels = np.unique(np.quantile(counts, np.linspace(0, 1, 24), method="lower"))
    return [sessions[counts >= t] for t in levels[::-1]]


def _grouped(
    holes: Mapping[str, npt.NDArray[np.int64]], chosen: npt.NDArray[np.int64]
) -> list[Shape]:
    missing: dict[int, list[str]] = defaultdict(list)
    wanted = set(chosen.tolist())
    for s, h in holes.items():
        for i in h.tolist():
            if i in wanted:
                missing[i].append(s)
    return [Shape(tuple(sorted(syms)), i, i, grouped=True) for i, syms in sorted(missing.items())]


def _packs(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]) -> list[Shape]:
    """Per symbol, nearby gaps merged; then symbols with alike ranges packed together."""
    items: list[tuple[int, int, str, int]] = []  # first, last, symbol, missing bars
    # Symbols missing the same sessions decide their merges together: what a merge saves
    # depends on how many symbols share the request (a stretch of stored sessions is cheap to
    # re-read for one symbol, dear for two hundred).
    alike: dict[bytes, list[str]] = defaultdict(list)
    for s, h in holes.items():
        alike[h.tobytes()].append(s)
    for names in alike.values():
        runs = _merged_runs(price, holes[names[0]], names)
        items += [(a, b, s, missing) for s in names for a, b, missing in runs]
    items.sort()
    # Identical ranges first: they pack at no extra cost.
    packs: list[Pack] = []
    for first, last, s, missing in items:
        size = symbol_chars(s)
        load = price.load((s,), first, last)
        cur = packs[-1] if packs else None
        if cur is None or (cur.first, cur.last) != (first, last) or not price.room(cur, 1, size):
            packs.append(Pack([s], first, last, missing, size, load))
        else:
            cur.symbols.append(s)
            cur.missing += missing
            cur.chars = joined_chars(cur.chars, size)
            cur.load += load
    if price.per_request == 1 or not packs:
        return [piece for p in packs for piece in _split(price, p.shape())]
    # Then neighbours in range order join while that costs no more than apart.
    out: list[Shape] = []
    cur = packs[0]
    for nxt in packs[1:]:
        first, last = min(cur.first, nxt.first), max(cur.last, nxt.last)
        if not price.fits(first, last) or not price.room(cur, len(nxt.symbols), nxt.chars):
            out.append(cur.shape())
            cur = nxt
            continue
        symbols, missing = cur.symbols + nxt.symbols, cur.missing + nxt.missing
        load = price.load(symbols, first, last)
        apart = price.cost(cur.load, cur.missing) + price.cost(nxt.load, nxt.missing)
        if price.cost(load, missing) <= apart + 1e-9:
            cur = Pack(symbols, first, last, missing, joined_chars(cur.chars, nxt.chars), load)
        else:
            out.append(cur.shape())
            cur = nxt
    out.append(cur.shape())
    return [piece for shape in _balanced(price, out) for piece in _split(price, shape)]


def _balanced(price: Pricing, shapes: list[Shape]) -> list[Shape]:
    """Packs over one range, their symbols dealt again so that pages come out full.

    200 symbols x 172 sessions is 34,400 bars, four pages of 10,000 with the last one part
    empty; 174 symbols fill three pages exactly. So 500 such symbols take 9 calls in packs of
    174, 174 and 152, against 10 in packs of 200, 200 and 100.
    """
    groups: dict[tuple[int, int], list[Shape]] = defaultdict(list)
    for sh in shapes:
        groups[(sh.first, sh.last)].append(sh)
    out: list[Shape] = []
    for (first, last), members in groups.items():
        if len(members) == 1:
            out += members
            continue
        packs = dealt(
            price,
            [s for sh in members for s in sh.symbols],
            first,
            last,
            [sh.symbols for sh in members],
        )
        out += [Shape(tuple(sorted(p)), first, last) for p in packs]
    return out


def dealt(
    price: Pricing,
    names: Sequence[str],
    first: int,
    last: int,
    current: Sequence[tuple[str, ...]] = (),
) -> list[tuple[str, ...]]:
    """``names`` over ``first..last`` dealt into the requests with the fewest calls (then the
    fewest requests), from ``current`` and the ways ``_deals`` offers."""
    loads = {s: price.load((s,), first, last) for s in names}
    options = ([list(current)] if current else []) + _deals(price, sorted(names), loads)
    return min(
        options,
        key=lambda packs: (sum(price.calls(sum(loads[s] for s in p)) for p in packs), len(packs)),
    )


def _deals(
    price: Pricing, names: list[str], loads: Mapping[str, int]
) -> list[list[tuple[str, ...]]]:
    """Ways to cut ``names`` (each returning ``loads`` bars) into packs the provider accepts:
    equal packs, and packs filled to a few whole pages each, largest symbols first; each only
    when every pack also fits the URL budget."""
    least = -(-len(names) // price.per_request)
    cuts = [_cut(price, names, -(-len(names) // m)) for m in range(least, least + 3)]
    out = [c for c in cuts if c is not None]
    by_load = sorted(names, key=lambda s: -loads[s])
    alike = len({loads[s] for s in names}) == 1  # then filling is cutting
    for pages in (1, 2, 3, 4, 8, 16):
        cap = pages * price.per_page
        if alike:
            size = max(1, min(price.per_request, cap // max(1, loads[names[0]])))
            cut = _cut(price, names, size)
            if cut is not None:
                out.append(cut)
                continue
        bins: list[Pack] = []
        for s in by_load:
            size = symbol_chars(s)
            home = next(
                (b for b in bins if b.load + loads[s] <= cap and price.room(b, 1, size)), None
            )
            if home is None:
                bins.append(Pack([s], 0, 0, 0, size, loads[s]))
            else:
                home.symbols.append(s)
                home.chars = joined_chars(home.chars, size)
                home.load += loads[s]
        out.append([tuple(b.symbols) for b in bins])
    return out


def _cut(price: Pricing, names: list[str], size: int) -> list[tuple[str, ...]] | None:
    """``names`` cut in order into packs of ``size``; None when a pack would not fit the URL."""
    packs = [tuple(names[i : i + size]) for i in range(0, len(names), size)]
    if all(fits(url_chars(p), price.chars) for p in packs):
        return packs
    return None


def _merged_runs(
    price: Pricing, h: npt.NDArray[np.int64], names: Sequence[str]
) -> list[tuple[int, int, int]]:
    """Runs of consecutive missing sessions (first, last, missing bars of one symbol), joined
    into the windows that cost least for the symbols ``names`` that miss exactly these
    sessions: a shortest path over the runs, each window priced for carrying all of them
    (``_carry``) plus the stored bars it re-reads."""
    if not len(h):
        return []
    if h[-1] - h[0] + 1 == len(h):  # one run, the usual case
        first, last = int(h[0]), int(h[-1])
        return [(first, last, price.bars(first, last))]
    count = len(names)
    profile = price.profile(names).tolist()
    breaks = np.flatnonzero(np.diff(h) != 1)
    starts = h[np.concatenate([[0], breaks + 1])].tolist()
    ends = h[np.concatenate([breaks, [len(h) - 1]])].tolist()
    missed = [0]
    for first, last in zip(starts, ends, strict=True):
        missed.append(missed[-1] + price.bars(first, last))
    best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * len(starts)
    for q in range(len(starts)):
        for p in range(q, -1, -1):
            if not price.fits(starts[p], ends[q]):
                break
            load = profile[ends[q] + 1] - profile[starts[p]]
            reread = max(0, load - count * (missed[q + 1] - missed[p])) / price.per_page
            cost = best[p][0] + _carry(price, count, load) + price.weight * reread + 1e-9
            if cost < best[q + 1][0]:
                best[q + 1] = (cost, p)
    out: list[tuple[int, int, int]] = []
    q = len(starts)
    while q:
        p = best[q][1]
        out.append((starts[p], ends[q - 1], missed[q] - missed[p]))
        q = p
    return out[::-1]


def _carry(price: Pricing, count: int, load: float) -> int:
    """The fewest calls that carry ``count`` alike symbols returning ``load`` bars in all, in
    packs of at most ``symbols_per_request``: packs of k pages each, for the best k."""
    m, page = price.per_request, price.per_page
    each = load / count
    if each <= 0:
        return -(-count // m)
    best = math.inf
    for k in range(1, math.ceil(min(count, m) * each / page) + 1):
        size = min(m, count, math.floor(k * page / each + 1e-9))
        if size < 1:
            continue
        full, rest = divmod(count, size)
        calls = full * price.calls(size * each) + (price.calls(rest * each) if rest else 0)
        best = min(best, calls)
    return int(best) if best < math.inf else count * price.calls(each)


def _split(price: Pricing, shape: Shape) -> list[Shape]:
    """``shape`` cut into ranges the provider accepts, with the fewest calls: each piece's
    pages are rounded up, so pieces are chosen to fill their pages (a shortest-path over
    session boundaries; ties go to fewer pieces)."""
    if shape.grouped or price.fits(shape.first, shape.last):
        return [shape]
    first = shape.first
    size = shape.last - first + 1
    profile = price.profile(shape.symbols)[first : shape.last + 2].tolist()
    best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * size
    for j in range(1, size + 1):
        for i in range(j - 1, -1, -1):
            if not price.fits(first + i, first + j - 1):
                break
            cost = best[i][0] + price.calls(profile[j] - profile[i]) + 1e-6
            if cost < best[j][0]:
                best[j] = (cost, i)
    pieces, j = [], size
    while j:
        i = best[j][1]
        pieces.append(Shape(shape.symbols, first + i, first + j - 1))
        j = i
    return pieces[::-1]
