"""How long a plan takes to run: its requests inside the provider's rate limit, each answered
after the provider's latency, by the fill's workers.

The fill sends requests as ``barlake.fetch`` does: workers (``parallel``) take the planned
ranges in order, and each sends its range's pages one after the other (a page's cursor comes
with the answer before it). Every request first waits for a slot of the rate-limit window: at
most ``limit`` requests in any ``window_s + margin_s`` seconds. ``seconds`` replays that on a
simulated clock, so that a plan whose 60 pages go out in two minutes of the window, or one that
latency and few workers hold back, is estimated as it will run, not at 0 s. The bars still
buffered after the last answer (at most ``flush_rows``) are written then: that write comes on
top, at the seconds a bar took to write in recent jobs.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from barlake.config import RATE_MARGIN_S

#: Above this many requests the replay gives way to its two bounds (it costs ~1 µs a request).
REPLAYED = 200_000
#: Seconds to write a bar to Parquet until a job has measured it (a laptop's SSD, 1-minute bars
#: merged into monthly files).
WRITE_S_PER_BAR = 3e-6


@dataclass(frozen=True)
class Pace:
    """What besides the rate limit sets a fill's pace: the window the limit is counted over,
    the margin each request holds it for, the seconds a request takes to be answered and where
    that figure comes from, the requests in flight, the seconds a bar takes to be written and
    the most bars a fill buffers before it writes them."""

    window_s: float = 60.0
    margin_s: float = RATE_MARGIN_S
    latency_s: float = 0.0
    latency_source: str = "none"
    parallel: int = 1
    write_s_per_bar: float = 0.0
    flush_rows: int = 2_000_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_s": round(self.latency_s, 4),
            "latency_source": self.latency_source,
            "parallel": self.parallel,
            "window_s": self.window_s,
            "write_us_per_bar": round(self.write_s_per_bar * 1e6, 3),
        }


def seconds(
    pages: Sequence[int], rate_limit_per_min: float, pace: Pace, last_bars: int = 0
) -> float:
    """Seconds from the first request of ranges needing ``pages`` requests each (in plan
    order) to the last answer, and the write of what is buffered then: ``last_bars``, the bars
    of the interval fetched last, at most ``flush_rows`` of them."""
    if not sum(pages):
        return 0.0
    write = min(max(0, last_bars), pace.flush_rows) * max(0.0, pace.write_s_per_bar)
    return _answered(pages, rate_limit_per_min, pace) + write


def _answered(pages: Sequence[int], rate_limit_per_min: float, pace: Pace) -> float:
    total = sum(pages)
    limit, span = _window(rate_limit_per_min, pace)
    workers = max(1, min(pace.parallel, len(pages)))
    latency = max(0.0, pace.latency_s)
    if total > REPLAYED:
        longest = max(pages) * latency
        by_rate = (math.ceil(total / limit) - 1) * span + latency if limit else 0.0
        return max(by_rate, longest, math.ceil(total / workers) * latency)
    sent: deque[float] = deque()  # the latest ``limit`` grants
    free = [(0.0, w) for w in range(workers)]  # when each worker asks next
    left = [0] * workers
    queued = iter(pages)
    end = 0.0
    while free:
        t, w = heapq.heappop(free)
        if not left[w]:
            left[w] = next(queued, 0)
            if not left[w]:
                continue  # nothing left to take: the worker is done
        grant = t if not limit or len(sent) < limit else max(t, sent[0] + span)
        if limit:
            sent.append(grant)
            if len(sent) > limit:
                sent.popleft()
        left[w] -= 1
        end = max(end, grant + latency)
        heapq.heappush(free, (grant + latency, w))
    return end


def _window(rate_limit_per_min: float, pace: Pace) -> tuple[int, float]:
    """The requests a window allows (0: unlimited) and the seconds each one holds it, as the
    fill's rate limiter counts them: a limit below one a minute stretches the window."""
    rate = rate_limit_per_min
    if rate <= 0 or math.isinf(rate):
        return 0, 0.0
    window = pace.window_s if rate >= 1 else pace.window_s / rate
    return max(1, int(rate)), window + pace.margin_s
