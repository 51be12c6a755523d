"""Backfill jobs: a selection's plan, and the job that runs it.

``plan`` reads the symbols once in a short read-only unit of work, asks the gap finder what is
missing and the planner (pure) how to fetch it; ``run`` opens the job in a short writing unit
and runs the scheduler. No catalog connection is held across the gap search or the integer
program, so ``lake status`` answers at once while a fill plans.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Protocol, cast

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import Catalog, Claim, Ending
from barlake.catalog.schema import LEDGER, PROGRESS_START
from barlake.clock import Clock
from barlake.config import BackfillConfig, LakeConfig
from barlake.coverage.finder import Expected, GapFinder, span_of
from barlake.coverage.gaps import Gap, with_sessions
from barlake.coverage.matrix import Cells
from barlake.domain.actions import frame as actions_frame
from barlake.domain.datasets import TRADES, Dataset
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import ProviderError, UsageError
from barlake.fetch import actions as fetching
from barlake.fetch.job import JobResult, ProgressCallback
from barlake.fetch.ratelimit import WALL, RateLimiter, Timing
from barlake.fetch.ratewindow import Window
from barlake.fetch.resample import Resampler
from barlake.fetch.runner import Stop, run_blocking, run_until_signalled
from barlake.fetch.scheduler import BarSink, Scheduler
from barlake.jobs.trades import TradeTotals, run_trades
from barlake.liveness import HOST
from barlake.planning.duration import WRITE_S_PER_BAR, Pace
from barlake.planning.plan import (
    ActionRequest,
    Origin,
    Plan,
    Skipped,
    order,
    plan_actions,
    price,
)
from barlake.planning.resample import Resample, sessions_of, split
from barlake.planning.trades import TradeRequest, plan_trades
from barlake.providers.base import Capabilities, Provider
from barlake.retention.policy import Policies, Policy
from barlake.retention.selection import Selection
from barlake.retention.targets import Ask, Target, resolve
from barlake.storage.trades import TradeStore
from barlake.universe.members import Member, members
from barlake.universe.registry import Registry
from barlake.universe.tiers import tier_of

#: The ledger's ``interval`` of corporate-action fetches.
ACTIONS_LEDGER = "actions"

#: Why a plan leaves out a symbol its provider refused as unknown.
SET_ASIDE = (
    "set aside: the provider does not know it (`lake errors` says why); "
    "`lake fill --retry-failed` or `lake symbols add` asks again"
)


class ProviderSource(Protocol):
    """Providers by name: built from lake.yaml, or the ones a caller handed in."""

    def open(self, name: str) -> Provider: ...
    def owns(self, name: str) -> bool: ...


@dataclass(frozen=True)
class RunOptions:
    """How a job runs: requests in flight (None: ``backfill.parallel_symbols``), a progress
    callback, the command line it records, and whether set-aside symbols are asked again."""

    parallel: int | None = None
    on_progress: ProgressCallback | None = None
    command: str | None = None
    #: Ask again for the symbols set aside after the provider refused them as unknown.
    retry_failed: bool = False
    #: The seconds clock and sleep of the rate limiter and the progress reports (a test's
    #: fake clock; wall time by default).
    timing: Timing = WALL
    #: Track the selection's names the lake does not (``Backfill.resolve``'s ``track``).
    track: bool = False
    #: Told the members a job tracked, once it has tracked them (before it fetches).
    on_track: Callable[[Sequence[Member]], None] | None = None


#: The job statuses a job ends with.
ENDED = ("done", "partial", "failed", "interrupted")


class Fenced:
    """A job's recorder while it serves a queued request's ``claim``.

    Each record checks, in its own transaction, that the request is still this delivery's,
    and adds no ledger rows once it is not (the worker that took the request over records
    that work itself). The job's last record (the one that ends its status, with the last
    ledger and progress rows) is held until the worker ends the claim (``end``): both commit
    in one transaction, so the request is done exactly when its rows are in, and a worker
    that dies before leaves a request that its next delivery plans and fills again.
    """

    def __init__(self, catalog: Catalog, claim: Claim) -> None:
        self.catalog, self.claim = catalog, claim
        self._lock = threading.Lock()
        self._held: tuple[str, dict[str, Any]] | None = None

    def record(self, job_id: str, **parts: Any) -> bool:
        with self._lock:
            job = parts.get("job") or {}
            if self._held is None and job.get("status") not in ENDED:
                return self.catalog.record(job_id, **parts, claim=self.claim)
            held = self._held[1] if self._held is not None else {}
            self._held = (job_id, _merged(held, parts))
            return True

    def end(self, ending: Ending) -> bool:
        """End the claim as ``ending`` says, with the job's held last record when there is
        one; False when the claim was no longer held."""
        with self._lock:
            held, self._held = self._held, None
        if held is None:
            c = self.claim
            return self.catalog.finish(
                c.request_id,
                c.worker,
                ending.state,
                error=ending.error,
                summary=ending.summary,
                retry_in=ending.retry_in,
                attempt=c.attempt,
            )
        job_id, parts = held
        return self.catalog.record(job_id, **parts, claim=self.claim, end=ending)


def _merged(held: dict[str, Any], parts: dict[str, Any]) -> dict[str, Any]:
    """Two records' parts as one: later job fields win, rows add up (a progress row
    updated twice keeps its last state)."""
    out = dict(held)
    for key, value in parts.items():
        if value is None:
            continue
        before = out.get(key)
        if before is None:
            out[key] = value
        elif key == "job":
            out[key] = {**before, **value}
        elif key == "progress":
            rows = pl.concat([before, value], how="diagonal_relaxed")
            out[key] = rows.unique(["symbol", "interval"], keep="last", maintain_order=True)
        else:
            out[key] = pl.concat([before, value], how="diagonal_relaxed")
    return out


@dataclass(frozen=True)
class Resolved:
    """A selection's members and each one's wanted range per interval."""

    members: list[Member]
    targets: list[Target]
    skipped: list[tuple[str, str, str]]
    priority: dict[str, int]
    policy: Policy | None
    #: The members the catalog does not track yet (``Backfill.resolve``'s ``track``).
    new: tuple[Member, ...] = ()


class Backfill:
    """Plans and runs backfill jobs for one lake."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        registry: Registry,
        finder: GapFinder,
        policies: Policies,
        providers: ProviderSource,
        bars: BarSink,
        config: LakeConfig,
        clock: Clock,
        fill_lock: Callable[[], AbstractContextManager[Any]],
        resampler: Resampler | None = None,
        trades: TradeStore | None = None,
        windows: Callable[[str, int], Window] | None = None,
    ) -> None:
        self.catalog, self.registry, self.finder = catalog, registry, finder
        #: Where the rate-limit windows of every process live (None: files in the cache
        #: directory, shared by this machine's processes).
        self.windows = windows
        self.policies, self.providers, self.bars = policies, providers, bars
        self.config, self.clock, self.fill_lock = config, clock, fill_lock
        #: Builds bars from the lake's finer ones (lake.yaml ``backfill.resample``).
        self.resampler = resampler
        #: The trades files, and the gap finder that reads them with the same ledger rule.
        self.trades = trades
        self.trade_finder = GapFinder(trades, finder.ledger, clock) if trades else None

    # -- what is wanted ----------------------------------------------------------------------

    def ask(self, selection: Selection, policy: Policy | None) -> Ask:
        today = self.clock().date()
        window = selection.window(today)
        default_days = self.config.backfill.default_days
        default = Selection(days=default_days).window(today)
        assert default is not None
        source = f"default: backfill.default_days = {default_days}"
        if self.config.backfill.use_scanner_layers is False and policy is None:
            source += " (backfill.use_scanner_layers: false)"
        return Ask(
            intervals=selection.intervals,
            window=window,
            flag=f"--days {selection.days}"
            if selection.days is not None
            else f"--start/--end {window}",
            policy=policy,
            default_window=default,
            default_source=source,
            respect_user=self.config.backfill.respect_user_overrides,
        )

    def resolve(self, selection: Selection, *, track: bool = False) -> Resolved:
        """The selection's members and their targets. A name the catalog does not track is an
        error, unless ``track``: then it is a new member, described as ``lake symbols add``
        would describe it (``Registry.newcomers``), and nothing is written (``track_new``
        tracks it)."""
        names, new = selection.names, []
        with self.catalog.session(read_only=True):
            if track and names:
                untracked = set(self.registry.untracked(names))
                new = members(self.registry.newcomers([n for n in names if n in untracked]))
                names = [n for n in names if n not in untracked]
            found = self.registry.members(names, layer=selection.layer)
        new = [m for m in new if selection.layer in (None, m.layer)]
        found = sorted([*found, *new], key=lambda m: m.name)
        policy = self.policies.chosen(selection.policy)
        targets, skipped, priority = resolve(
            self.ask(selection, policy), found, self.clock().date()
        )
        return Resolved(found, targets, skipped, priority, policy, tuple(new))

    def track_new(self, wanted: Resolved, options: RunOptions) -> None:
        """Track ``wanted``'s new members (as ``lake symbols add`` would) and say so."""
        if not wanted.new:
            return
        self.registry.add([m.name for m in wanted.new], {}, ())
        if options.on_track is not None:
            options.on_track(wanted.new)

    # -- what is missing --------------------------------------------------------------------

    def gaps(self, selection: Selection) -> list[Gap]:
        """Missing sessions of ``selection`` per symbol and interval."""
        with self.catalog.session(read_only=True):  # its reads share one connection
            wanted = self.resolve(selection)
            by_interval: dict[Dataset, dict[str, DateRange]] = {}
            for t in wanted.targets:
                by_interval.setdefault(t.interval, {})[t.symbol] = t.window
            out: list[Gap] = []
            for interval, windows in by_interval.items():
                finder = self.finder_of(interval)
                out += finder.gaps(_as_key(interval), finder.expected(wanted.members, windows))
        return sorted(out, key=lambda g: (g.symbol, g.interval, g.range))

    def coverage(self, selection: Selection, interval: Interval) -> Cells:
        """The cells of the coverage matrix of ``selection`` at ``interval``."""
        wanted = self.resolve(selection)
        windows = {t.symbol: t.window for t in wanted.targets if t.interval != TRADES}
        expected = self.finder.expected(wanted.members, windows)
        names = [m.name for m in wanted.members]
        cells = self.finder.coverage(interval, names, expected, span_of(windows.values()))
        return replace(cells, layers={m.name: m.layer for m in wanted.members})

    # -- planning ----------------------------------------------------------------------------

    def plan(
        self, selection: Selection, wanted: Resolved | None = None, *, retry_failed: bool = False
    ) -> Plan:
        """What a fill of ``selection`` would fetch, request by request, and why (``wanted``:
        the selection already resolved; ``retry_failed``: as if the symbols set aside were
        asked again)."""
        wanted = wanted or self.resolve(selection)
        return self.plan_targets(
            wanted.members,
            wanted.targets,
            provider=selection.provider,
            skipped=wanted.skipped,
            priority=wanted.priority,
            parameters=selection.parameters(wanted.policy.name if wanted.policy else None),
            retry_failed=retry_failed,
        )

    def plan_targets(
        self,
        found: Sequence[Member],
        targets: Sequence[Target],
        *,
        provider: str | None = None,
        skipped: Sequence[tuple[str, str, str]] = (),
        priority: dict[str, int] | None = None,
        parameters: dict[str, Any] | None = None,
        repair: Mapping[tuple[str, Interval], Sequence[date]] | None = None,
        retry_failed: bool = False,
    ) -> Plan:
        """The plan that brings each target's symbol to its wanted range, fetching again the
        sessions ``repair`` names (``jobs.repair``) as if they were gaps, and the symbols set
        aside only with ``retry_failed``."""
        name = provider or self.config.default_provider
        caps = self.capabilities(name)
        wanted = sorted({t.symbol for t in targets})
        aside = set() if retry_failed else {s for s, _ in self.catalog.set_aside(name, wanted)}
        skips = [Skipped((s,), i, reason) for s, i, reason in skipped]
        skips += [Skipped((t.symbol,), t.interval, SET_ASIDE) for t in targets if t.symbol in aside]
        by_interval: dict[Interval, dict[str, Target]] = {}
        for t in targets:
            if t.symbol not in aside and t.interval != TRADES:
                by_interval.setdefault(t.interval, {})[t.symbol] = t
        trade_targets = {
            t.symbol: t for t in targets if t.interval == TRADES and t.symbol not in aside
        }
        all_gaps: list[Gap] = []
        origins: list[Origin] = []
        planned: dict[Interval, list[Gap]] = {}
        calendars = {m.name: m.calendar for m in found}
        for interval, chosen in by_interval.items():
            local = self.resamples(interval)
            if interval not in caps.intervals and local is None:
                reason = f"{name} does not serve {interval} bars"
                skips.append(Skipped(tuple(chosen), interval, reason))
                continue
            expected = self.finder.expected(found, {s: t.window for s, t in chosen.items()})
            gaps = self.finder.gaps(interval, expected)
            for (sym, at), days in (repair or {}).items():
                if at == interval and sym in expected:
                    sessions = expected[sym].calendar.sessions_in(expected[sym].window)
                    more = with_sessions(gaps, sym, interval, sessions, days)
                    gaps = [g for g in gaps if g.symbol != sym] + more
            gaps.sort(key=lambda g: (g.symbol, g.range))
            all_gaps += gaps
            planned[interval] = gaps
            origins += _origins(chosen, expected, gaps)
        trade_requests: list[TradeRequest] = []
        if trade_targets:
            trade_gaps, trade_origins, unserved_trades = self.plan_trades(
                name, caps, found, trade_targets
            )
            origins += trade_origins
            skips += unserved_trades
            trade_requests = plan_trades(trade_gaps, caps.trade_symbols, caps.trades_per_page)
            if trade_requests:
                all_gaps += trade_gaps
        fetched, resampled, unserved = self.split_resampled(planned, calendars, caps, name)
        if resampled or unserved:
            skips += unserved
            all_gaps = (
                fetched + [r.gap for r in resampled] + [g for g in all_gaps if g.interval == TRADES]
            )
        listings = {m.name: (m.listed_on, m.delisted_on) for m in found}
        weight = self.config.backfill.reread_weight
        requests, bound, timed_out = price(
            name, caps, fetched, calendars, reread_weight=weight, listings=listings
        )
        return Plan(
            provider=name,
            rate_limit_per_min=self.rate_limit(name, caps),
            actions=tuple(self.plan_actions(name, caps, targets, aside)),
            requests=tuple(order(requests, priority or {})),
            gaps=tuple(all_gaps),
            origins=tuple(origins),
            skipped=tuple(_merge_skips(skips)),
            parameters={**(parameters or {}), "provider": name},
            lower_bound=bound,
            time_limit_reached=timed_out,
            resampled=tuple(resampled),
            pace=self.pace(name, caps),
            trades=tuple(trade_requests),
        )

    def finder_of(self, interval: Dataset) -> GapFinder:
        """The gap finder of ``interval``'s files (the trades' for ``trades``)."""
        if interval == TRADES:
            if self.trade_finder is None:
                msg = "this lake was opened without its trades files"
                raise UsageError(msg)
            return self.trade_finder
        return self.finder

    def plan_trades(
        self, name: str, caps: Capabilities, found: Sequence[Member], chosen: dict[str, Target]
    ) -> tuple[list[Gap], list[Origin], list[Skipped]]:
        """The trade gaps of ``chosen`` targets and why each range is wanted; nothing to fetch
        (a skip saying so) when provider ``name`` serves no trades."""
        finder = self.finder_of(TRADES)
        expected = finder.expected(found, {s: t.window for s, t in chosen.items()})
        gaps = finder.gaps(_as_key(TRADES), expected)
        origins = _origins(chosen, expected, gaps)
        if caps.trades_per_page <= 0:
            reason = f"{name} serves no trades (tick data); fill them from a provider that does"
            return [], origins, [Skipped(tuple(sorted(chosen)), TRADES, reason)]
        return gaps, origins, []

    def plan_actions(
        self, name: str, caps: Capabilities, targets: Sequence[Target], aside: set[str]
    ) -> list[ActionRequest]:
        """The action requests of ``targets``: each symbol's wanted span (over its intervals,
        up to today) less what the ledger holds as fetched from ``name``, when
        ``backfill.fetch_actions`` and the provider serves actions."""
        if not (self.config.backfill.fetch_actions and caps.action_symbols > 0) or not targets:
            return []
        today = self.clock().date()
        wanted: dict[str, DateRange] = {}
        for t in targets:
            if t.symbol in aside or t.window.start > today:
                continue
            window = DateRange(t.window.start, min(t.window.end, today + timedelta(days=1)))
            wanted[t.symbol] = span_of([wanted[t.symbol], window]) if t.symbol in wanted else window
        if not wanted:
            return []
        span = span_of(wanted.values())
        rows = self.catalog.ledger(ACTIONS_LEDGER, span, sorted(wanted))
        covered: dict[str, list[DateRange]] = {}
        for sym, start, end, final, provider in rows.select(
            "symbol", "start_date", "end_date", "final", "provider"
        ).iter_rows():
            if final and provider == name:
                covered.setdefault(sym, []).append(DateRange(start, end))
        return plan_actions(wanted, covered, caps.action_symbols)

    def fetch_actions(self, scheduler: Scheduler, stop: Stop | None = None) -> fetching.Fetched:
        """Fetch and store the planned actions of a started job, through its rate limiter,
        and record each request's range in the ledger (final up to yesterday); ``stop``, once
        asked, leaves the requests not yet made to the next fill."""
        plan = scheduler.plan
        if not plan.actions:
            return fetching.Fetched()
        today, now = self.clock().date(), self.clock()

        async def run() -> list[tuple[ActionRequest, fetching.Fetched]]:
            out = []
            try:
                for req in plan.actions:
                    if stop is not None and stop.asked:
                        break
                    got = await fetching.fetch(
                        scheduler.provider, req.symbols, req.range, scheduler.limiter
                    )
                    out.append((req, got))
            finally:
                # Its connections belong to this event loop, which ends here.
                await scheduler.provider.aclose()
            return out

        total = fetching.Fetched()
        ledger = []
        for req, got in run_blocking(run):
            total.requests += got.requests
            total.actions += got.actions
            total.errors.update(got.errors)
            counts: dict[str, int] = {}
            for a in got.actions:
                counts[a.symbol] = counts.get(a.symbol, 0) + 1
            end = min(req.range.end, today)
            if end <= req.range.start:
                continue
            ledger += [
                {
                    "provider": plan.provider,
                    "symbol": sym,
                    "interval": ACTIONS_LEDGER,
                    "start_date": req.range.start,
                    "end_date": end,
                    "bars": counts.get(sym, 0),
                    "fetched_at": now,
                    "final": True,
                    "job_id": scheduler.job_id,
                }
                for sym in req.symbols
                if sym not in got.errors
            ]
        self.catalog.record_actions(actions_frame(total.actions, now))  # idempotent rows
        # The ranges asked go through the job's recorder: for a queued request, fenced by its
        # claim and committed with its end.
        scheduler.recorder.record(scheduler.job_id, ledger=pl.DataFrame(ledger, schema=LEDGER))
        return total

    def pace(self, name: str, caps: Capabilities) -> Pace:
        """What the time estimate of a fill from ``name`` counts besides its rate limit: the
        latency its latest jobs measured (else the provider's typical one), the requests in
        flight and the window its limit is counted over."""
        measured = self.catalog.latency(name)
        latency, write = caps.latency_s, WRITE_S_PER_BAR
        source = f"{name}'s typical latency (no job measured it yet)"
        if measured is not None:
            latency, write = measured.latency_s, measured.write_s_per_bar or write
            source = f"measured over the latest {measured.jobs} {name} job(s)"
        return Pace(
            window_s=self.config.provider(name).rate_limit_window_s,
            latency_s=latency,
            latency_source=source,
            parallel=self.config.backfill.parallel_symbols,
            write_s_per_bar=write,
            flush_rows=self.config.backfill.flush_rows,
        )

    def resamples(self, interval: Interval) -> Interval | None:
        """The finer interval lake.yaml's ``backfill.resample`` builds ``interval`` from, if
        any (None too without a resampler)."""
        return self.config.backfill.resample.get(interval) if self.resampler else None

    def split_resampled(
        self,
        planned: Mapping[Interval, list[Gap]],
        calendars: Mapping[str, Calendar],
        caps: Capabilities,
        provider: str,
    ) -> tuple[list[Gap], list[Resample], list[Skipped]]:
        """The gaps of ``planned`` (per interval) to fetch, the sessions to resample (finest
        interval first), and what neither can close. A session is resampled when its finer
        bars are settled, or when the same plan stores them (fetched, or resampled first);
        otherwise it is fetched, where the provider serves the interval."""
        if not any(self.resamples(i) for i in planned):
            return [g for gaps in planned.values() for g in gaps], [], []
        fetched: list[Gap] = []
        local: list[Resample] = []
        skips: list[Skipped] = []
        stored: dict[Interval, list[Gap]] = {}  # what the plan stores, per interval
        for interval in sorted(planned, key=lambda i: spec(i).seconds):
            gaps, source = planned[interval], self.resamples(interval)
            keep, mine = gaps, list[Resample]()
            if source is not None and gaps and self.resampler is not None:
                spans: dict[str, DateRange] = {}
                for g in gaps:
                    have = spans.get(g.symbol)
                    spans[g.symbol] = span_of([have, g.range]) if have else g.range
                expected = {s: Expected(calendars[s], w) for s, w in spans.items()}
                settled = self.resampler.settled(source, expected)
                later = sessions_of(stored.get(source, []), calendars)
                keep, mine = split(gaps, source, settled, later, calendars)
            local += mine
            served = interval in caps.intervals
            if served:
                fetched += keep
            elif keep:
                reason = (
                    f"{provider} does not serve {interval} bars, and the {source} bars they are "
                    f"resampled from are not stored for {sum(g.sessions for g in keep)} "
                    f"session(s): fill {source} first"
                )
                skips.append(Skipped(tuple(sorted({g.symbol for g in keep})), interval, reason))
            stored[interval] = [*(keep if served else []), *(r.gap for r in mine)]
        return fetched, local, skips

    def capabilities(self, name: str) -> Capabilities:
        return self.providers.open(name).capabilities

    def rate_limit(self, name: str, caps: Capabilities) -> float:
        return self.config.provider(name).rate_limit_per_min or caps.rate_limit_per_min

    # -- running -----------------------------------------------------------------------------

    def fill(self, selection: Selection, options: RunOptions) -> JobResult:
        """Plan ``selection`` and run it as one job under the lake's fill lock.

        Bad input (symbols, dates, policy, provider, ``parallel``) is refused before the lock
        is taken, so that it is reported as it is even while another fill runs; with
        ``options.track``, new names are tracked once the plan is made, and not on bad input."""
        wanted = self.resolve(selection, track=options.track)
        self.capabilities(selection.provider or self.config.default_provider)
        self.job_config(options)
        with self.fill_lock():
            self.catalog.interrupt_stale()
            if options.retry_failed:
                names = [m.name for m in wanted.members]
                provider = selection.provider or self.config.default_provider
                self.catalog.forget_set_aside(names, provider)
            plan = self.plan(selection, wanted)
            self.track_new(wanted, options)
            return self.execute(self.start(plan, options))

    def run(self, plan: Plan, options: RunOptions) -> JobResult:
        """Run an existing ``plan`` as a new job under the lake's fill lock."""
        self.job_config(options)
        with self.fill_lock():
            self.catalog.interrupt_stale()
            return self.execute(self.start(plan, options))

    def execute(self, scheduler: Scheduler, stop: Stop | None = None) -> JobResult:
        """Run a started job's scheduler to its end (SIGINT/SIGTERM stop it cleanly, or
        ``stop`` when given)."""
        owned = self.providers.owns(scheduler.plan.provider)
        # Trades first: the job stays running (and its bars pending) until they are in, so a
        # process killed meanwhile leaves a job the next fill marks interrupted.
        trades = TradeTotals()
        if scheduler.plan.trades and self.trades is not None:
            trades = run_trades(
                scheduler.plan.trades,
                scheduler,
                self.trades,
                scheduler.recorder,
                self.clock,
                parallel=scheduler.config.parallel_symbols,
                stop=stop,
            )
        result = run_until_signalled(
            scheduler, scheduler.provider, close_provider=not owned, stop=stop
        )
        trades.apply(result, scheduler, scheduler.recorder)
        # After the bars: a refusal of the actions never costs the job its bars. A job that
        # failed (credentials refused) or was interrupted asks nothing more.
        if result.status in ("failed", "interrupted") or (stop is not None and stop.asked):
            return result
        stamp = self.clock().isoformat()
        try:
            fetched = self.fetch_actions(scheduler, stop)
        except ProviderError as exc:
            names = sorted({s for a in scheduler.plan.actions for s in a.symbols})
            fetched = fetching.Fetched(errors=dict.fromkeys(names, str(exc)))
        result.action_requests, result.actions = fetched.requests, len(fetched.actions)
        for sym, error in sorted(fetched.errors.items()):
            warning = {"warning": error, "stage": "actions", "interval": "", "timestamp": stamp}
            result.symbol_warnings.setdefault(sym, []).append(warning)
        return result

    def job_config(self, options: RunOptions) -> BackfillConfig:
        """lake.yaml's backfill settings with ``options.parallel`` in place, validated as
        lake.yaml's own value is (UsageError naming ``--parallel``)."""
        config = self.config.backfill
        if options.parallel is None:
            return config
        return config.overridden("parallel_symbols", options.parallel, "--parallel")

    def start(
        self,
        plan: Plan,
        options: RunOptions,
        *,
        sink: BarSink | None = None,
        fence: Fenced | None = None,
    ) -> Scheduler:
        """Record a new running job for ``plan`` and the scheduler that runs it (writing to
        ``sink``, the lake's bars by default). A job that serves a queued request records
        through its ``fence``: nothing once the claim is no longer held, and its last record
        with the claim's end."""
        job_id = str(uuid.uuid4())
        config = self.job_config(options)
        with self.catalog.session(read_only=True):
            found = self.registry.members(sorted({g.symbol for g in plan.gaps}))
        progress = progress_rows(plan)
        self.catalog.create_job(
            job_id,
            progress,
            command=options.command,
            parameters=json.dumps(plan.parameters),
            provider=plan.provider,
            pid=os.getpid(),
            host=HOST,
            requests_planned=plan.total_requests,
            symbols_total=progress["symbol"].n_unique() if progress.height else 0,
        )
        provider = self.providers.open(plan.provider)
        # Every process filling from the same vendor endpoint counts against one window.
        source = self.config.provider(plan.provider)
        shared_as = f"{plan.provider} {source.base_url or 'default'}"
        tiers = config.tiers
        return Scheduler(
            job_id=job_id,
            plan=plan,
            provider=provider,
            limiter=RateLimiter(
                plan.rate_limit_per_min,
                window_s=source.rate_limit_window_s,
                share=shared_as if config.shared_rate_limit else None,
                windows=self.windows,
                clock=options.timing.clock,
                sleep=options.timing.sleep,
            ),
            sink=sink or self.bars,
            recorder=self.catalog if fence is None else fence,
            calendars={m.name: m.calendar for m in found},
            config=config,
            clock=self.clock,
            on_progress=options.on_progress,
            timing=options.timing,
            tiers={m.name: tier_of(m.market_cap, tiers) for m in found}
            if config.use_symbol_tiers
            else None,
            exists=self.catalog.shown(plan.provider, [m.name for m in found]),
            resampler=self.resampler,
        )


def _as_key(interval: Dataset) -> Interval:
    """``interval`` as the gap finder's key: the trades finder's store has one dataset, so
    it reads the key only to label the gaps and the ledger rows it asks for."""
    return cast(Interval, interval)


def _origins(
    chosen: Mapping[str, Target], expected: Mapping[str, Expected], found: Sequence[Gap]
) -> list[Origin]:
    by_symbol: dict[str, list[Gap]] = {}
    for g in found:
        by_symbol.setdefault(g.symbol, []).append(g)
    out = []
    for sym, target in chosen.items():
        e = expected.get(sym)
        note = ""
        if e is None:
            note = "nothing expected: not listed then, or no session has opened yet"
        else:
            every = e.calendar.sessions_in(target.window)
            have = e.calendar.sessions_in(e.window)
            if len(have) and have[0] > every[0]:
                note = f"starts {have[0]}: listing date"
            elif len(have) and have[-1] < every[-1]:
                note = f"ends {have[-1]}: delisted, or later sessions have not opened yet"
        mine = by_symbol.get(sym, [])
        out.append(
            Origin(
                sym,
                target.interval,
                target.window,
                target.source,
                note,
                e.calendar.session_count(e.window) if e else 0,
                sum(g.sessions for g in mine),
                tuple(mine),
            )
        )
    return out


def _merge_skips(skips: Sequence[Skipped]) -> list[Skipped]:
    """One entry per (interval, reason), listing its symbols."""
    merged: dict[tuple[str, str], list[str]] = {}
    for s in skips:
        merged.setdefault((s.interval, s.reason), []).extend(s.symbols)
    return [Skipped(tuple(v), i, r) for (i, r), v in merged.items()]


def progress_rows(plan: Plan) -> pl.DataFrame:
    """One pending ``backfill_progress`` row per (symbol, interval) the plan fetches."""
    spans: dict[tuple[str, str], DateRange] = {}
    for g in plan.gaps:
        key = (g.symbol, g.interval)
        have = spans.get(key)
        spans[key] = (
            g.range
            if have is None
            else DateRange(min(have.start, g.range.start), max(have.end, g.range.end))
        )
    return pl.DataFrame(
        {
            "symbol": [k[0] for k in spans],
            "data_type": ["trades" if k[1] == TRADES else "bars" for k in spans],
            "interval": [k[1] for k in spans],
            "start_date": [r.start for r in spans.values()],
            "end_date": [r.last for r in spans.values()],
            "status": ["pending"] * len(spans),
        },
        schema=PROGRESS_START,
    )
