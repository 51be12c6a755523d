"""What requests cost at a provider, the cheapest requests for a set of gaps, and the fewest any
set of requests could make.

A gap set is a set of missing cells, (symbol, session) pairs, on one interval and calendar. A
request names some symbols (at most ``symbols_per_request``, and few enough for the URL) and one
range of sessions; the provider returns every bar of every named symbol in the range, stored or
not, in pages of ``bars_per_page`` bars, and each page is one call against the rate limit. A
grouped-daily call returns one session of every symbol. So:

    cost(request) = calls + reread_weight x pages of stored bars fetched again

``reread_weight`` is the trade-off between calls and bandwidth: 0 re-reads freely to save a call,
a large weight never re-reads. The planner below merges a symbol's nearby gaps, packs symbols
whose ranges are alike, and for grouped-daily providers sends the sessions that many symbols miss
to the grouped endpoint, each step only when the cost falls.

``lower_bound`` is a bound no plan can beat: every call can close at most as many missing bars
as the most productive single call there could be (a page of nothing but missing bars, or a
grouped call on the session most symbols miss, or a pack over the densest window), so
calls >= missing bars / that; and a provider without grouped calls needs a request per
``symbols_per_request`` symbols with gaps.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from barlake.calendar import Calendar
from barlake.config import REREAD_WEIGHT
from barlake.intervals import Interval, spec
from barlake.providers.base import Capabilities
from barlake.ranges import DateRange

#: Above this many (symbol x window) cells, the densest-window search is skipped and the lower
#: bound uses the page and symbol bounds alone (still a bound, a looser one).
_DENSITY_CELLS = 4_000_000

_EPOCH = np.datetime64("1970-01-01", "D")


@dataclass(frozen=True)
class Shape:
    """One request in session-index space: ``symbols`` over sessions ``first..last``."""

    symbols: tuple[str, ...]
    first: int
    last: int
    grouped: bool = False


@dataclass(frozen=True, eq=False)
class Axis:
    """The sessions of one calendar over a span, with each session's bars per symbol."""

    days: npt.NDArray[np.datetime64]
    bars: npt.NDArray[np.int64]

    @classmethod
    def of(cls, calendar: Calendar | None, interval: Interval, span: DateRange) -> Axis:
        if calendar is None:  # weekdays stand for sessions
            every = np.arange(
                np.datetime64(span.start, "D"), np.datetime64(span.end, "D"), dtype="datetime64[D]"
            )
            days = every[((every - _EPOCH).astype(np.int64) + 3) % 7 < 5]
            minutes = np.full(len(days), 390, dtype=np.int64)
        else:
            days = calendar.sessions_in(span)
            i = int(np.searchsorted(calendar.sessions, days[0])) if len(days) else 0
            minutes = (calendar.closes[i : i + len(days)] - calendar.opens[i : i + len(days)]) // (
                60_000_000
            )
        s = spec(interval)
        bars = -(-minutes * 60 // s.seconds) if s.intraday else np.ones(len(days), dtype=np.int64)
        return cls(days.astype("datetime64[D]"), bars.astype(np.int64))

    @property
    def prefix(self) -> npt.NDArray[np.int64]:
        return np.concatenate([[0], np.cumsum(self.bars)]).astype(np.int64)

    def index(self, window: DateRange) -> npt.NDArray[np.int64]:
        """Indices of the sessions inside ``window``."""
        lo, hi = np.searchsorted(
            self.days, [np.datetime64(window.start, "D"), np.datetime64(window.end, "D")]
        )
        return np.arange(lo, hi, dtype=np.int64)

    def date(self, i: int) -> date:
        return self.days[i].astype(date)  # type: ignore[no-any-return]

    def range(self, first: int, last: int) -> DateRange:
        return DateRange(self.date(first), self.date(last) + timedelta(days=1))


class Pricing:
    """The cost of request shapes for one provider, interval and axis."""

    def __init__(
        self, caps: Capabilities, interval: Interval, axis: Axis, reread_weight: float
    ) -> None:
        self.caps, self.axis, self.weight = caps, axis, max(0.0, reread_weight)
        self.per_page = max(1, caps.bars_per_page)
        self.per_request = max(1, caps.symbols_per_request)
        self.chars = caps.symbols_chars
        self.max_days = caps.max_days.get(interval)
        self._prefix: list[int] = axis.prefix.tolist()

    def bars(self, first: int, last: int) -> int:
        """Bars of one symbol over sessions ``first..last``."""
        return int(self._prefix[last + 1] - self._prefix[first])

    def cost(self, n: int, first: int, last: int, missing: int) -> float:
        """``n`` symbols over ``first..last`` closing ``missing`` bars."""
        fetched = n * self.bars(first, last)
        return self.calls(n, first, last) + self.weight * max(0, fetched - missing) / self.per_page

    def calls(self, n: int, first: int, last: int) -> int:
        return max(1, math.ceil(n * self.bars(first, last) / self.per_page))

    def fits(self, first: int, last: int) -> bool:
        """Whether one request may span ``first..last`` (the provider's range limit)."""
        if self.max_days is None:
            return True
        return (self.axis.date(last) - self.axis.date(first)).days < self.max_days

    def room(self, pack: _Pack, more: int, chars: int) -> bool:
        """Whether ``more`` symbols (``chars`` long, encoded and joined) fit beside ``pack``."""
        if len(pack.symbols) + more > self.per_request:
            return False
        return self.chars is None or pack.chars + 3 + chars <= self.chars


def url_chars(symbols: Iterable[str]) -> int:
    """Length of the comma-joined, percent-encoded symbol list in a URL."""
    items = [quote(s, safe="") for s in symbols]
    return sum(len(s) for s in items) + 3 * max(0, len(items) - 1)


# -- planning ---------------------------------------------------------------------------------


def plan_shapes(
    caps: Capabilities,
    interval: Interval,
    axis: Axis,
    holes: Mapping[str, npt.NDArray[np.int64]],
    reread_weight: float = REREAD_WEIGHT,
) -> list[Shape]:
    """The cheapest requests found for ``holes`` (symbol -> sorted missing session indices)."""
    price = Pricing(caps, interval, axis, reread_weight)
    holes = {s: h for s, h in holes.items() if len(h)}
    best = _packs(price, holes)
    if interval != "1day" or not caps.grouped_daily or not holes:
        return best
    best_cost = _total(price, best, holes)
    for chosen in _grouped_candidates(holes):
        if len(chosen) >= best_cost:
            continue  # its grouped calls alone cost as much as the best plan so far
        keep = np.ones(len(axis.days), dtype=bool)
        keep[chosen] = False
        rest = {s: h[keep[h]] for s, h in holes.items()}
        shapes = _grouped(holes, chosen) + _packs(price, {s: h for s, h in rest.items() if len(h)})
        cost = _total(price, shapes, holes)
        if cost < best_cost - 1e-9:
            best, best_cost = shapes, cost
    return best


def _total(
    price: Pricing, shapes: Sequence[Shape], holes: Mapping[str, npt.NDArray[np.int64]]
) -> float:
    total = 0.0
    for sh in shapes:
        if sh.grouped:
            total += 1
            continue
        missing = sum(_missing_bars(price, holes[s], sh.first, sh.last) for s in sh.symbols)
        total += price.cost(len(sh.symbols), sh.first, sh.last, missing)
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


@dataclass
class _Pack:
    symbols: list[str]
    first: int
    last: int
    missing: int
    chars: int

    def shape(self) -> Shape:
        return Shape(tuple(sorted(self.symbols)), self.first, self.last)


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
        n = min(len(names), price.per_request)
        runs = _merged_runs(price, holes[names[0]], n)
        items += [(a, b, s, missing) for s in names for a, b, missing in runs]
    items.sort()
    # Identical ranges first: they pack at no extra cost.
    packs: list[_Pack] = []
    for first, last, s, missing in items:
        size = len(quote(s, safe=""))
        cur = packs[-1] if packs else None
        if cur is None or (cur.first, cur.last) != (first, last) or not price.room(cur, 1, size):
            packs.append(_Pack([s], first, last, missing, size))
        else:
            cur.symbols.append(s)
            cur.missing += missing
            cur.chars += size + 3
    if price.per_request == 1 or not packs:
        return [piece for p in packs for piece in _split(price, p.shape())]
    # Then neighbours in range order join while that costs no more than apart.
    out: list[Shape] = []
    cur = packs[0]
    for nxt in packs[1:]:
        first, last = min(cur.first, nxt.first), max(cur.last, nxt.last)
        n, missing = len(cur.symbols) + len(nxt.symbols), cur.missing + nxt.missing
        apart = price.cost(len(cur.symbols), cur.first, cur.last, cur.missing) + price.cost(
            len(nxt.symbols), nxt.first, nxt.last, nxt.missing
        )
        if (
            price.fits(first, last)
            and price.room(cur, len(nxt.symbols), nxt.chars)
            and price.cost(n, first, last, missing) <= apart + 1e-9
        ):
            cur = _Pack(cur.symbols + nxt.symbols, first, last, missing, cur.chars + 3 + nxt.chars)
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
        names = sorted(s for sh in members for s in sh.symbols)
        options = [[sh.symbols for sh in members], *_deals(price, names, first, last)]
        best = min(
            options,
            key=lambda packs: (sum(price.calls(len(p), first, last) for p in packs), len(packs)),
        )
        out += [Shape(tuple(sorted(p)), first, last) for p in best]
    return out


def _deals(price: Pricing, names: list[str], first: int, last: int) -> list[list[tuple[str, ...]]]:
    """Ways to cut ``names`` into packs the provider accepts: as many whole pages per pack as
    fit, and equal packs, each only when every pack also fits the URL budget."""
    per_symbol = max(1, price.bars(first, last))
    sizes = {
        max(1, min(price.per_request, k * price.per_page // per_symbol))
        for k in (1, 2, 3, 4, 8, 16)
    }
    least = -(-len(names) // price.per_request)
    sizes |= {-(-len(names) // m) for m in range(least, least + 3)}
    out = []
    for size in sorted(sizes):
        packs = [tuple(names[i : i + size]) for i in range(0, len(names), size)]
        if price.chars is None or all(url_chars(p) <= price.chars for p in packs):
            out.append(packs)
    return out


def _merged_runs(
    price: Pricing, h: npt.NDArray[np.int64], n: int = 1
) -> list[tuple[int, int, int]]:
    """Runs of consecutive missing sessions (first, last, missing bars of one symbol), each
    merged with the next when one request over both, for ``n`` symbols alike, costs no more
    than two."""
    if not len(h):
        return []
    if h[-1] - h[0] + 1 == len(h):  # one run, the usual case
        first, last = int(h[0]), int(h[-1])
        return [(first, last, price.bars(first, last))]
    breaks = np.flatnonzero(np.diff(h) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(h) - 1]])
    runs = list(zip(h[starts].tolist(), h[ends].tolist(), strict=True))
    first, last = runs[0]
    out = [(first, last, price.bars(first, last))]
    for first, last in runs[1:]:
        a, b, missing = out[-1]
        more = price.bars(first, last)
        merged = price.cost(n, a, last, n * (missing + more))
        apart = price.cost(n, a, b, n * missing) + price.cost(n, first, last, n * more)
        if price.fits(a, last) and merged <= apart + 1e-9:
            out[-1] = (a, last, missing + more)
        else:
            out.append((first, last, more))
    return out


def _split(price: Pricing, shape: Shape) -> list[Shape]:
    """``shape`` cut into ranges the provider accepts, with the fewest calls: each piece's
    pages are rounded up, so pieces are chosen to fill their pages (a shortest-path over
    session boundaries; ties go to fewer pieces)."""
    if shape.grouped or price.fits(shape.first, shape.last):
        return [shape]
    n, first = len(shape.symbols), shape.first
    size = shape.last - first + 1
    best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * size
    for j in range(1, size + 1):
        for i in range(j - 1, -1, -1):
            if not price.fits(first + i, first + j - 1):
                break
            cost = best[i][0] + price.calls(n, first + i, first + j - 1) + 1e-6
            if cost < best[j][0]:
                best[j] = (cost, i)
    pieces, j = [], size
    while j:
        i = best[j][1]
        pieces.append(Shape(shape.symbols, first + i, first + j - 1))
        j = i
    return pieces[::-1]


# -- the lower bound --------------------------------------------------------------------------


def lower_bound(
    caps: Capabilities,
    interval: Interval,
    axis: Axis,
    holes: Mapping[str, npt.NDArray[np.int64]],
) -> int:
    """Fewer calls than this cannot close ``holes``, whatever the request shapes."""
    holes = {s: h for s, h in holes.items() if len(h)}
    if not holes:
        return 0
    price = Pricing(caps, interval, axis, 0.0)
    missing = sum(int(axis.bars[h].sum()) for h in holes.values())
    most = _most_symbols(price, holes)
    # No call closes more than a page of missing bars, nor more than the ``most`` symbols
    # missing the most have missing, nor more than the densest window allows.
    each = np.sort(np.array([axis.bars[h].sum() for h in holes.values()], dtype=np.int64))
    best = min(float(price.per_page), float(each[-most:].sum()), _densest_call(price, holes, most))
    grouped = interval == "1day" and caps.grouped_daily
    if grouped:  # one grouped call closes the session most symbols miss
        _, per_session = np.unique(np.concatenate(list(holes.values())), return_counts=True)
        best = max(best, float(per_session.max()))
    bound = math.ceil(missing / best - 1e-9)
    if not grouped:
        bound = max(bound, math.ceil(len(holes) / most))
    return max(1, bound)


def _most_symbols(price: Pricing, holes: Mapping[str, npt.NDArray[np.int64]]) -> int:
    """The most symbols one request can name (shortest names first, for the URL budget)."""
    if price.chars is None:
        return min(price.per_request, len(holes))
    lengths = sorted(len(quote(s, safe="")) + 3 for s in holes)
    fit = int(np.searchsorted(np.cumsum(lengths), price.chars + 3, side="right"))
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
        ends = np.arange(a, len(marks))
        if price.max_days is not None:
            limit = np.datetime64(price.axis.date(int(marks[a])) + timedelta(days=price.max_days))
            ends = ends[price.axis.days[marks[ends]] < limit]
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
