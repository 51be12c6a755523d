"""What a running fill reports as it goes: one small ``Progress`` value per step.

A *request* is one call to the provider: one page of an answer, so a paginated answer of three
pages is three requests, and a retried call counts each time it is sent. ``lake plan`` counts in
the same unit (its ``total_requests`` is the pages it expects), so the bar's "12/60 requests"
and the plan's "60 requests" speak of the same thing.

The scheduler sends a report after each answer (or failed call), when a wait starts (the rate
limit's window is full, the provider asked to wait with ``Retry-After``, or a transient failure
backs off), after each save of the job's counters to the catalog, and once at the end, after the
last write: the final report's ``requests`` and ``bars_written`` are the job result's.

>>> lake.fill("AAPL", interval="1min", days=5, on_progress=print)  # doctest: +SKIP
fill: 3/12 requests, 120,000 bars fetched, 0 written, 2.9 requests/s, ETA 3s
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: Why a fill is not sending requests at the moment.
RATE_LIMIT = "rate limit"  # the provider's window is full: the next slot frees in ``seconds``
RETRY_AFTER = "Retry-After"  # the provider answered "slow down" and said (or we chose) how long
BACKOFF = "backoff"  # a transient failure: the same request is tried again after ``seconds``


@dataclass(frozen=True)
class Waiting:
    """A wait that holds the fill back: its ``reason`` (one of ``RATE_LIMIT``,
    ``RETRY_AFTER``, ``BACKOFF``) and the seconds it has left."""

    reason: str
    seconds: float

    def __str__(self) -> str:
        why = _WHY.get(self.reason, self.reason)
        return f"waiting {_duration(self.seconds)} {why}"


_WHY = {
    RATE_LIMIT: "for the rate limit",
    RETRY_AFTER: "as the provider asked (Retry-After)",
    BACKOFF: "to retry (backoff)",
}


@dataclass(frozen=True)
class Progress:
    """Where a fill stands.

    ``requests``: calls made to the provider so far (``JobResult.requests`` at the end).
    ``requests_expected``: those plus the calls still expected (the plan's pages of the requests
    not answered yet, corrected as answers say there are more or fewer pages).
    ``bars_fetched``: bars the provider's answers carried so far, page by page (some may yet be
    rejected as impossible, or fall outside the sessions asked for). ``bars_written``: bars
    written to the lake and recorded in the catalog (its job row and progress rows say as
    much). ``elapsed_s``: seconds since the job started. ``waiting``: why no request is going
    out now, if that is so. ``saved``: the report follows a save of the job's row and progress
    rows (their bars are ``bars_written``; their ``requests_made`` is ``requests`` unless other
    calls went out during the save). ``done``: the last report, after the final write: its
    ``requests`` and ``bars_written`` are the job result's.
    """

    requests: int
    requests_expected: int
    bars_fetched: int
    bars_written: int
    elapsed_s: float
    waiting: Waiting | None = None
    #: The rate limit: requests a window allows (None: unlimited), and the seconds each one
    #: holds the window.
    limit: int | None = None
    window_s: float = 60.0
    saved: bool = False
    done: bool = False

    @property
    def rate(self) -> float:
        """Requests per second so far."""
        return self.requests / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def remaining(self) -> int:
        return max(0, self.requests_expected - self.requests)

    @property
    def eta_s(self) -> float | None:
        """Seconds until the last request is answered: at the rate so far, but no sooner than
        the current wait ends and the rate limit's windows let the rest go out (a window's
        quota at once, the next one a window later); None before any rate is known."""
        if self.done or not self.remaining:
            return 0.0
        bound = self.waiting.seconds if self.waiting is not None else 0.0
        if self.limit:
            bound += (math.ceil(self.remaining / self.limit) - 1) * self.window_s
        if not self.rate:
            return bound or None
        return max(self.remaining / self.rate, bound)

    def __str__(self) -> str:
        parts = [
            f"{self.requests:,}/{self.requests_expected:,} requests",
            f"{self.bars_fetched:,} bars fetched, {self.bars_written:,} written",
            f"{self.rate:.1f} requests/s",
        ]
        eta = self.eta_s
        if self.done:
            parts.append(f"done in {_duration(self.elapsed_s)}")
        elif eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        if self.waiting is not None and not self.done:
            parts.append(str(self.waiting))
        return "fill: " + ", ".join(parts)


#: What ``Lake.fill(on_progress=...)`` calls with each report (``print`` will do).
ProgressCallback = Callable[[Progress], None]


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
