"""The bodies the API takes and the shapes it answers, as pydantic models (the OpenAPI document).

Bodies are named like the CLI's options and reject unknown keys. Values the library checks
itself (symbol names, intervals, providers) are plain strings here, so a bad one gets the same
message the CLI prints. Answers are documented with their main fields; they are rendered by
``views.serialize`` exactly as ``--json`` prints them, so other fields may follow.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: A policy by name only: a path would let a client make the server read any file.
POLICY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

States = Literal["queued", "claimed", "done", "failed", "cancelled"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Span(_Body):
    """Which range of which symbols: as ``--days``, ``--start``/``--end``, ``--layer``,
    ``--policy``."""

    days: int | None = Field(default=None, ge=1, le=36600, description="Calendar days to today.")
    start: date | None = Field(default=None, description="First date, inclusive (YYYY-MM-DD).")
    end: date | None = Field(default=None, description="Last date, inclusive (default: today).")
    layer: int | None = Field(default=None, ge=0, le=3, description="Only symbols of this layer.")
    policy: str | None = Field(
        default=None, pattern=POLICY_NAME, description="A retention policy's name."
    )


class Selected(Span):
    """Symbols and intervals too (None: every active symbol; the policy's intervals)."""

    symbols: list[str] | None = Field(default=None, max_length=20000, examples=[["AAPL"]])
    interval: list[str] | None = Field(
        default=None, max_length=6, description="Of: 1min 5min 15min 30min 1hour 1day."
    )


class BackfillBody(Selected):
    """A backfill request: a selection, a provider and a priority (higher runs first)."""

    provider: str | None = Field(default=None, max_length=64)
    priority: int = Field(default=0, ge=-1000, le=1000)


class SymbolsBody(_Body):
    """Symbols to add (or update), with the attributes of ``lake symbols add``."""

    symbols: list[str] = Field(min_length=1, max_length=20000, examples=[["AAPL", "BRK/B"]])
    calendar: str | None = Field(default=None, max_length=32, examples=["XNYS"])
    asset_class: str | None = Field(default=None, max_length=32)
    listed_on: date | None = None
    delisted_on: date | None = None


class LayerBody(_Body):
    """The layer (0-3) to put one symbol at."""

    layer: int = Field(ge=0, le=3)
    liquidity_score: float | None = Field(default=None, ge=0, lt=1e8)


class LayerRow(_Body):
    """One row of a batch, as a row of ``lake layers import``'s file."""

    symbol: str = Field(max_length=64)
    layer: int | None = Field(default=None, ge=0, le=3)
    layer1_qualified: bool | None = None
    layer2_qualified: bool | None = None
    layer3_qualified: bool | None = None
    liquidity_score: float | None = Field(default=None, ge=0, lt=1e8)


class LayersBody(_Body):
    """Layer updates for many symbols at once."""

    layers: list[LayerRow] = Field(min_length=1, max_length=20000)


# -- answers -----------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    """An error: the one line the CLI would print."""

    detail: str


class PlanPreview(_Answer):
    """``lake plan --json``."""

    provider: str
    #: Provider calls, one per page: the unit of ``lower_bound`` and of a job's requests.
    total_requests: int
    total_ranges: int
    lower_bound: int
    estimated_bars: int
    estimated_seconds: float
    #: What the time estimate counts besides the rate limit: latency (and its source),
    #: requests in flight, the window.
    estimate: dict[str, Any]
    ranges: list[dict[str, Any]]


class BackfillRequest(_Answer):
    """A request of the work queue (``lake queue list --json``)."""

    id: str
    kind: str
    state: States
    job_id: str | None
    priority: int
    source: str


class BackfillAccepted(BackfillRequest):
    """A queued request (``created`` false: the same selection was already queued) and what
    its plan would fetch now (the worker plans again when it runs it)."""

    created: bool
    plan: PlanPreview


class Job(_Answer):
    """A row of ``lake jobs --json``."""

    job_id: str
    status: str
    requests_made: int
    bars_written: int


class JobStatus(Job):
    """``lake status JOB --json``: the job and its live progress counts."""

    progress: dict[str, int]
    records_loaded: int


class SymbolError(_Answer):
    error: str | None
    stage: str | None
    interval: str | None
    timestamp: str | None


class Symbol(_Answer):
    """A row of ``lake symbols list --json``."""

    symbol: str
    layer: int
    active: bool


class Counted(_Answer):
    """How many symbols a change touched."""

    symbols: int


class LayerCounts(Counted):
    """Symbols updated and the events written (promoted, demoted, newly qualified)."""

    promoted: int
    demoted: int
    qualified: int


class Gap(_Answer):
    """A row of ``lake gaps --json``: inclusive session dates."""

    symbol: str
    interval: str
    first: str
    last: str
    sessions: int


class Counts(_Answer):
    """Bars, expected sessions by state, files and bytes (``lake info``'s figures)."""

    bars: int
    expected: int
    stored: int
    missing: int
    provisional: int
    empty: int
    files: int
    bytes: int
    first_bar: str | None
    last_bar: str | None
    last_fill: str | None
    provider: str | None


class InfoSeries(Counts):
    """One symbol at one interval, as ``lake info --json`` lists it."""

    symbol: str
    interval: str
    window_first: str | None
    window_last: str | None
    job_id: str | None


class InfoTotals(Counts):
    """The sums over the series (of one interval, or of all)."""

    symbols: int
    series: int


class IntervalTotals(InfoTotals):
    interval: str


class LakeInfo(_Answer):
    """``lake info --json``: every series, the totals of each interval and of all."""

    series: list[InfoSeries]
    intervals: list[IntervalTotals]
    totals: InfoTotals


class CoverageMap(_Answer):
    """``Coverage.to_dict()``: symbols x sessions of state codes."""

    interval: str
    symbols: list[str]
    sessions: list[str]
    states: list[list[int]]
    codes: dict[str, str]


class Event(_Answer):
    """A row of ``lake events --json``."""

    id: int
    type: str
    payload: Any
    processed_at: str | None
    job_id: str | None


class Finding(_Answer):
    rule: str
    severity: str
    symbol: str | None
    interval: str | None
    message: str | None


class CheckSummary(_Answer):
    """``CheckResult.summary()``."""

    check_id: str
    series_checked: int
    findings: int
    by_severity: dict[str, int]
    gap_events: int


class Health(_Answer):
    """Whether the service can do its work."""

    status: Literal["ok", "degraded"]
    catalog: bool
    workers: dict[str, int]
    queue: dict[str, int]
    #: Followers of the lake by state (running, stale, dead, finished); a stale or dead one
    #: makes the status degraded without making the service unable to work (still 200).
    followers: dict[str, int]
