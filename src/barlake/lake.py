"""``Lake``: the one object a notebook or the CLI holds; each method is one thing a user asks
of the lake, built into one ``Selection`` and handed to a service (``barlake.wiring``).

>>> lake = Lake.init("lake")                                    # doctest: +SKIP
>>> lake.add_symbols(["AAPL", "MSFT"])                          # doctest: +SKIP
>>> lake.gaps(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 28))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from barlake.catalog import catalog_url, open_catalog
from barlake.clock import Clock, from_environment
from barlake.domain.datasets import Dataset, bar_interval, bar_intervals
from barlake.domain.intervals import Interval, spec
from barlake.domain.ranges import DateRange
from barlake.errors import LockError, UsageError
from barlake.jobs import history
from barlake.retention.selection import Chosen, Selection, Span, symbols_of
from barlake.storage import layout

#: How often, and how far apart (seconds), a follower's catch-up asks for the fill lock that a
#: worker's look at its queue holds for a moment.
LOCK_TRIES = 50
LOCK_WAIT_S = 0.1

if TYPE_CHECKING:
    import polars as pl

    from barlake.calendars.calendar import Calendar
    from barlake.catalog.embedded import Tables
    from barlake.catalog.transfer import CatalogCopy
    from barlake.config import LakeConfig
    from barlake.coverage.gaps import Gap
    from barlake.domain.actions import Adjust
    from barlake.domain.resample import Period
    from barlake.domain.tradebars import Conditions
    from barlake.fetch.job import JobResult, ProgressCallback, SymbolErrors
    from barlake.jobs.actions import ActionsFetched
    from barlake.jobs.follow import FollowOptions, FollowResult
    from barlake.jobs.followers import FollowerReport
    from barlake.jobs.following import Following
    from barlake.jobs.queue import Queue
    from barlake.jobs.worker import Log, Worker
    from barlake.planning.plan import Plan
    from barlake.providers.base import Provider
    from barlake.providers.listing import ProviderInfo
    from barlake.providers.stream import LiveSource
    from barlake.quality.check import CheckResult
    from barlake.retention.policy import Policy
    from barlake.retention.prune import Pruned
    from barlake.storage.filesystem import FileSystem
    from barlake.storage.live import LiveArea
    from barlake.storage.migration import Moved
    from barlake.storage.store import Store
    from barlake.universe.members import Member
    from barlake.views.coverage import Coverage
    from barlake.views.info import Info
    from barlake.wiring import Services

# The library behind the methods loads with the first method that needs it: opening a lake
# and reading a job's status or the symbols list must not pay for polars, the planner or the
# calendars (``lake status`` runs in a few tens of milliseconds).

Symbols = str | Sequence[str] | None


@dataclass(frozen=True)
class Migrated:
    """What ``Lake.migrate`` copied and verified: the catalog's tables, the bar files."""

    catalog: CatalogCopy | None
    storage: Moved | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "catalog": self.catalog.to_dict() if self.catalog else None,
            "storage": self.storage.to_dict() if self.storage else None,
        }


class Lake:
    """A lake on disk: bars under ``bars/``, the catalog in ``catalog.duckdb``.

    ``clock`` pins "now" for every part of the lake (without it: ``LAKE_CLOCK``'s, else the
    machine's; see ``barlake.clock``); ``providers`` hands in ready providers by name (the
    caller closes them), used instead of those lake.yaml describes.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        clock: Clock | None = None,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self.root = Path(root)
        self.clock: Clock = clock or _environment_clock()
        #: The PostgreSQL catalog's URL (secret included: never shown), None for the DuckDB file.
        self.catalog_url = catalog_url(self.root)
        self.catalog: Tables = open_catalog(self.root, self.catalog_url)
        self._providers = dict(providers or {})
        self._shifts: tuple[object, dict[str, timedelta]] = (None, {})

    @property
    def handed_providers(self) -> bool:
        """Whether providers were handed in (``providers=``): they live in this process only."""
        return bool(self._providers)

    @cached_property
    def store(self) -> Store:
        """The Parquet files of the lake."""
        from barlake import wiring
        from barlake.storage.store import Store

        fs = wiring.file_system(self.root, self._config.storage)
        return Store(self.root, fs=fs, day_index=True)

    @cached_property
    def _config(self) -> LakeConfig:
        from barlake.config import load

        return load(self.root)

    @cached_property
    def live(self) -> LiveArea:
        """The live area: minute bars a follower received, not yet final (``storage.live``)."""
        from barlake.storage.live import LiveArea

        return LiveArea(self.root, fs=self.store.fs)

    @cached_property
    def services(self) -> Services:
        from barlake import wiring

        return wiring.wire(
            self.root,
            clock=self.clock,
            store=self.store,
            catalog=self.catalog,
            providers=self._providers,
            config=self._config,
        )

    @classmethod
    def init(cls, root: str | Path, **kwargs: Any) -> Lake:
        """Create a lake at ``root`` (or bring an existing one up to date) and open it."""
        lake = cls(root, **kwargs)
        layout.create(lake.root, lake.catalog)
        return lake

    @classmethod
    def open(cls, root: str | Path, **kwargs: Any) -> Lake:
        """Open the existing lake at ``root``."""
        lake = cls(root, **kwargs)
        layout.must_be_a_folder(lake.root)
        if not lake.catalog.exists():
            msg = f"no lake at {lake.root}; run `lake init` there or pass --lake PATH"
            raise UsageError(msg)
        layout.check(lake.root, lake.catalog.verify().get("layout_version"))
        return lake

    @property
    def config(self) -> LakeConfig:
        return self.services.config

    @property
    def today(self) -> date:
        return self.clock().date()

    # -- symbols and layers ------------------------------------------------------------------

    def add_symbols(self, names: str | Sequence[str], **attributes: Any) -> int:
        """Add symbols (``"AAPL,MSFT"`` or a list, upper-cased); ``attributes`` set catalog
        columns. A new crypto pair (``BTCUSDT``, ``ETH-USD``, ``BTC/USDT``) is tracked as asset
        class crypto on the 24/7 calendar unless ``attributes`` say otherwise
        (``calendar_warnings`` names a pair put on an exchange calendar)."""
        from barlake.domain.symbols import SYMBOL_COLUMNS

        return self.services.registry.add(symbols_of(names) or [], attributes, SYMBOL_COLUMNS)

    def import_symbols(self, path: str | Path) -> int:
        """Add or update symbols from a CSV, Parquet or JSON file with a ``symbol`` column, or
        from a ``.txt`` list of symbols (one a line; ``#`` comments and blank lines skipped)."""
        return self.services.registry.import_file(Path(path))

    def untracked(self, names: str | Sequence[str]) -> list[str]:
        """The names of ``names`` (upper-cased) that the lake does not track."""
        with self.catalog.session(read_only=True):
            return self.services.registry.untracked(symbols_of(names) or [])

    def calendar_warnings(self, names: str | Sequence[str]) -> list[str]:
        """One line per symbol of ``names`` that is a crypto pair on an exchange calendar (its
        nights and weekends would never count as coverage), saying how to move it to 24/7.

        >>> lake.add_symbols("BTCUSDT", calendar="XNYS")      # doctest: +SKIP
        >>> lake.calendar_warnings("BTCUSDT")                  # doctest: +SKIP
        ['BTCUSDT is a crypto pair, which trades around the clock, but it is on the XNYS ...']
        """
        return self.services.registry.calendar_warnings(symbols_of(names) or [])

    def symbols(self, names: Sequence[str] | None = None) -> pl.DataFrame:
        """The symbols table (all, or ``names``)."""
        return self.services.registry.rows(names)

    def symbol_rows(self, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """``symbols`` as plain dicts, without loading polars (what ``lake symbols list``
        prints)."""
        return self.catalog.symbol_rows(names)

    def remove_symbols(self, names: str | Sequence[str]) -> int:
        """Forget symbols (their bars stay on disk until pruned)."""
        return self.services.registry.remove(symbols_of(names) or [])

    def set_layers(
        self, symbols: str | Sequence[str], layer: int, *, liquidity_score: float | None = None
    ) -> dict[str, int]:
        """Put symbols at ``layer`` (qualified for layers 1..layer); returns counts of symbols
        and of the events written (promoted, demoted, qualified)."""
        names = symbols_of(symbols) or []
        return self.services.registry.set_layers(names, layer, liquidity_score=liquidity_score)

    def import_layers(self, source: str | Path | Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Layer updates from a scanner's CSV, Parquet or JSON file (or rows of one): ``symbol``
        with ``layer`` or ``layerN_qualified`` columns, optionally ``liquidity_score``.

        >>> lake.import_layers([{"symbol": "AAPL", "layer": 3}])  # doctest: +SKIP
        """
        if isinstance(source, str | Path):
            return self.services.registry.import_layers(Path(source))
        import polars as pl

        rows = pl.DataFrame(list(source), infer_schema_length=None)
        return self.services.registry.apply_layers(rows, "the rows given")

    def compute_layers(self, policy: str | Policy | None = None) -> dict[str, int]:
        """Score liquidity from the lake's own daily bars (median dollar volume of the last
        sessions, in $ millions) and qualify layer 1 by the policy's threshold."""
        rules = self.services.policies.required(policy).liquidity
        return self.services.registry.compute_layers(
            self.store,
            self.today,
            lookback_sessions=rules.lookback_sessions,
            layer1_min_dollar_volume=rules.layer1_min_dollar_volume,
        )

    def events(self, *, pending: bool = False) -> pl.DataFrame:
        """Events, oldest first: layer changes and detected gaps, with the job that served each."""
        return self.catalog.events(pending=pending)

    # -- gaps, plans, fills ------------------------------------------------------------------

    def gaps(self, symbols: Symbols = None, **chosen: Unpack[Chosen]) -> list[Gap]:
        """Missing sessions per symbol and interval, as ranges of consecutive sessions
        (``interval``, ``days`` or ``start``/``end``, ``layer``, ``policy`` as in ``plan``).

        >>> lake.gaps("AAPL", interval="1day", days=30)  # doctest: +SKIP
        """
        return self.services.backfill.gaps(Selection.of(symbols, **chosen))

    def plan(
        self,
        symbols: Symbols = None,
        *,
        provider: str | None = None,
        track: bool = False,
        retry_failed: bool = False,
        **chosen: Unpack[Chosen],
    ) -> Plan:
        """What a fill would fetch, request by request, and why.

        Ranges come from ``days`` or ``start``/``end`` when given (they always win), else from
        ``policy`` (or lake.yaml's ``default_policy``) by each symbol's layer, else from
        ``backfill.default_days``. ``interval`` None means the policy's intervals (or 1day).
        A symbol the lake does not track is an error (``UnknownSymbolError``), unless
        ``track``: then it is planned as ``fill`` would track it, and nothing is written.
        ``retry_failed`` plans the symbols set aside as ``fill(retry_failed=True)`` would.

        >>> plan = lake.plan("AAPL,MSFT", days=30, interval=["1day", "1min"])  # doctest: +SKIP
        >>> plan.total_requests, plan.estimated_bars                          # doctest: +SKIP
        """
        backfill = self.services.backfill
        selection = Selection.of(symbols, provider=provider, **chosen)
        wanted = backfill.resolve(selection, track=track)
        return backfill.plan(selection, wanted, retry_failed=retry_failed)

    def plan_events(
        self, *, policy: str | Policy | None = None, provider: str | None = None
    ) -> Plan:
        """What ``fill_events`` would fetch for the pending events; nothing is written."""
        from barlake.jobs.events import plan_events

        pending = self.catalog.events(pending=True)
        return plan_events(self.services.backfill, pending, policy, provider)[0]

    def fill(
        self,
        symbols: Symbols = None,
        *,
        parallel: int | None = None,
        on_progress: ProgressCallback | None = None,
        command: str | None = None,
        retry_failed: bool = False,
        repair: bool = False,
        track: bool = True,
        on_track: Callable[[Sequence[Member]], None] | None = None,
        **selection: Any,
    ) -> JobResult:
        """Fetch what ``plan`` finds missing and write it; returns the job's result.

        A symbol of ``symbols`` the lake does not track is tracked first, as ``add_symbols``
        would add it (a crypto pair on the 24/7 calendar), once the selection is known to be
        valid; ``on_track`` is then told the new members. ``track=False`` refuses such a
        symbol instead (``UnknownSymbolError``), as ``plan`` and ``gaps`` do.

        With ``repair``, also fetch again every session whose stored bars ``check`` flags
        (impossible values, duplicates, partial sessions, off-grid bars) and replace those
        bars with what comes back. Takes the lake's fill lock, marks jobs left by a dead
        process as interrupted, and records the job in the catalog as it goes. Raises
        ``AuthError`` when credentials are refused and ``Interrupted`` on SIGINT/SIGTERM
        (after saving all fetched bars). Symbols the provider refused as unknown are set
        aside: left out of later fills until ``retry_failed`` (or ``add_symbols`` of them
        again). ``on_progress`` hears a ``barlake.Progress`` after every request, wait and
        save, and a last one (``done``) whose counts are the result's; ``print`` shows them
        as lines.

        >>> lake.fill("AAPL", interval="1day", days=30).bars_written  # doctest: +SKIP
        >>> lake.fill("AAPL", interval="1min", days=5, on_progress=print)  # doctest: +SKIP
        >>> lake.fill("AAPL", interval="1min", days=30, repair=True).status  # doctest: +SKIP
        """
        from barlake.jobs.backfill import RunOptions

        run = RunOptions(
            parallel,
            on_progress,
            command,
            retry_failed=retry_failed,
            track=track,
            on_track=on_track,
        )
        chosen = Selection.of(symbols, **selection)
        if not repair:
            return self.services.backfill.fill(chosen, run)
        from barlake.jobs.repair import repair as repair_

        services = self.services
        return repair_(
            services.backfill, chosen, run, flagged=services.checker, store=services.store
        )

    def fill_events(
        self,
        *,
        policy: str | Policy | None = None,
        provider: str | None = None,
        parallel: int | None = None,
        on_progress: ProgressCallback | None = None,
        command: str | None = None,
    ) -> JobResult:
        """Serve pending events in one job: promoted or newly qualified symbols get the ranges
        their layer's retention implies, detected gaps are fetched as recorded; events whose
        symbols failed stay pending.

        >>> lake.fill_events(policy="scanner_layers").status  # doctest: +SKIP
        """
        from barlake.jobs import events
        from barlake.jobs.backfill import RunOptions

        run = RunOptions(parallel, on_progress, command)
        return events.serve(self.services.backfill, run, policy=policy, provider=provider)

    def run_plan(
        self,
        plan: Plan,
        *,
        parallel: int | None = None,
        on_progress: ProgressCallback | None = None,
        command: str | None = None,
    ) -> JobResult:
        """Run an existing ``plan`` as a new job (takes the fill lock).

        >>> lake.run_plan(lake.plan(days=5) + lake.plan("AAPL", days=5))  # doctest: +SKIP
        """
        from barlake.jobs.backfill import RunOptions

        return self.services.backfill.run(plan, RunOptions(parallel, on_progress, command))

    # -- retention and quality ---------------------------------------------------------------

    def prune(
        self,
        policy: str | Policy | None = None,
        *,
        dry_run: bool = False,
        symbols: Symbols = None,
        interval: Dataset | Sequence[Dataset] | None = None,
    ) -> Pruned:
        """Remove bars and trades older than each symbol's retention (the policy's keep range
        for its layer); an interval its layer does not keep (or trades) is removed whole.
        Symbols whose layer has no rule in the policy are untouched; ``interval`` prunes only
        those datasets (``"trades"`` the trades files).

        >>> lake.prune("scanner_layers", dry_run=True).to_dict()  # doctest: +SKIP
        """
        from barlake.retention.cutoffs import prune_lake
        from barlake.storage.lock import FillLock

        chosen = self.services.policies.required(policy)
        found = self.services.registry.members(symbols_of(symbols))
        lock = lambda: FillLock(self.root)  # noqa: E731
        only = None if interval is None else Selection.of(interval=interval).intervals
        return prune_lake(
            self.store,
            self.catalog,
            found,
            chosen,
            self.today,
            dry_run=dry_run,
            lock=lock,
            trades=self.services.trades,
            only=only,
        )

    def check(
        self, symbols: Symbols = None, *, webhook: str | None = None, **chosen: Unpack[Chosen]
    ) -> CheckResult:
        """Check stored bars against the calendar and the quality rules (``quality.rules``);
        store the findings, raise ``data.gap.detected`` events for active symbols' gaps, and
        POST a summary to ``webhook`` (or lake.yaml's ``alerts.webhook_url``) when anything
        was found. Ranges are chosen as in ``plan``.

        >>> result = lake.check(interval=["1day", "1min"], days=30)    # doctest: +SKIP
        >>> [f.to_dict() for f in result.findings if f.severity == "error"]  # doctest: +SKIP
        """
        wanted = self.services.backfill.resolve(Selection.of(symbols, **chosen))
        url = webhook or self.config.alerts.webhook_url
        return self.services.checker.check(wanted.targets, wanted.members, webhook=url)

    def findings(self) -> pl.DataFrame:
        """The findings of the latest checks, worst first."""
        return self.catalog.findings()

    # -- jobs --------------------------------------------------------------------------------

    def status(self, job: str | None = None) -> dict[str, Any]:
        """The job row (the latest job when ``job`` is None) with its progress counts."""
        return self._statuses.status(job)

    def kept_status(self, job: str) -> dict[str, Any] | None:
        """``status(job)`` when it is known without reading the catalog (a finished job, or
        one this process runs that has not changed since it was last read), else None."""
        return self._statuses.kept(job)

    @cached_property
    def _statuses(self) -> history.Statuses:
        return history.Statuses(self.catalog)

    def jobs(self, limit: int = 20) -> pl.DataFrame:
        """Recent jobs, newest first."""
        return self.catalog.jobs(limit)

    def totals(self) -> dict[str, list[dict[str, Any]]]:
        """Sums over every job: ``providers`` (requests, bars) and ``errors`` (by stage)."""
        return self.catalog.totals()

    def errors(self, job: str | None = None) -> SymbolErrors:
        """A job's errors by symbol, one per failed (interval, stage):
        ``{symbol: [{error, stage, interval, timestamp}, ...]}``.

        >>> [e["interval"] for e in lake.errors()["NOPE"]]  # doctest: +SKIP
        ['1day', '1hour']
        """
        return history.errors(self.catalog, job)

    # -- the service: queue and worker ------------------------------------------------------

    @cached_property
    def queue(self) -> Queue:
        """The work queue: ``add``, ``list``, ``get``, ``cancel`` backfill requests.

        >>> request, new = lake.queue.add("AAPL", interval="1day", days=30)  # doctest: +SKIP
        >>> lake.queue.list(state="queued")                                   # doctest: +SKIP
        """
        from barlake.jobs.queue import Queue

        return Queue(self.catalog, self.services.backfill, self.config)

    def worker(
        self,
        *,
        name: str | None = None,
        concurrency: int | None = None,
        provider: str | None = None,
        log: Log | None = None,
        follow_options: FollowOptions | None = None,
    ) -> Worker:
        """A worker that serves the queue (``run(once=True)`` returns when it is empty;
        ``stop()`` from any thread ends ``run()``); ``concurrency``: requests in flight.
        ``run()`` also follows lake.yaml's ``follow:`` selections (``provider``'s only, when
        given) through each session (``barlake.jobs.following``), paced by
        ``follow_options``.

        >>> lake.worker(concurrency=4).run(once=True)  # doctest: +SKIP
        """
        from barlake.jobs.schedule import Schedule
        from barlake.jobs.worker import Worker

        def prune(sel: Selection) -> dict[str, Any]:
            return self.prune(sel.policy, symbols=sel.names).to_dict()

        def check(sel: Selection) -> dict[str, Any]:
            chosen = {"interval": sel.intervals, "days": sel.days, "policy": sel.policy}
            return self.check(sel.names, **chosen).summary()  # type: ignore[arg-type]

        if concurrency is not None and not 1 <= concurrency <= 1000:
            msg = f"--concurrency must be between 1 and 1000, got {concurrency}"
            raise UsageError(msg)
        if provider is not None:
            self.services.backfill.capabilities(provider)  # an unknown name fails now
        schedule = Schedule(self.config.schedule, self.queue, self.services.registry, self.clock)
        return Worker(
            following=self._following(log, follow_options, provider),
            queue=self.queue,
            backfill=self.services.backfill,
            schedule=schedule,
            prune=prune,
            check=check,
            config=self.config.worker,
            name=name,
            concurrency=concurrency,
            provider=provider,
            log=log,
        )

    def _following(
        self, log: Log | None, options: FollowOptions | None, only: str | None
    ) -> Following | None:
        """The worker's followers of lake.yaml's ``follow:`` selections (of provider ``only``
        when given; None: there are none), one per provider."""
        from barlake.jobs.following import Following
        from barlake.jobs.following import Selection as Followed
        from barlake.liveness import HOST

        by_provider: dict[str, set[str]] = {}
        for entry in self.config.follow:
            name = entry.provider or self.config.default_provider
            if only is None or name == only:
                by_provider.setdefault(name, set()).update(s.upper() for s in entry.symbols)
        if not by_provider:
            return None
        selections = [
            Followed(p, tuple(sorted(names)), self._calendar_of(sorted(names)))
            for p, names in sorted(by_provider.items())
        ]
        me = (HOST, os.getpid())

        def elsewhere(provider: str) -> bool:
            return any(
                f.provider == provider and f.state in ("running", "stale") and (f.host, f.pid) != me
                for f in self.followers()
            )

        def follow(provider: str, stop: threading.Event) -> dict[str, Any]:
            return self.follow(provider=provider, stop=stop, options=options).to_dict()

        return Following(
            selections,
            follow,
            self.clock,
            self.root,
            elsewhere=elsewhere,
            lease=self.catalog.lease,
            log=log,
        )

    def _calendar_of(self, names: Sequence[str]) -> Calendar:
        """The calendar ``names`` are followed on: the first one's."""
        from barlake.calendars.calendar import calendar_for

        calendars = self.services.registry.calendars(list(names))
        return next(iter(calendars.values()), calendar_for(None))

    # -- corporate actions ------------------------------------------------------------------

    def fetch_actions(
        self, symbols: Symbols = None, *, provider: str | None = None, **chosen: Unpack[Chosen]
    ) -> ActionsFetched:
        """Fetch the splits and dividends of ``symbols`` (every active symbol when None) from
        ``provider`` (lake.yaml's default) and store them; the range is ``days`` or
        ``start``/``end``, else the span of what ``plan`` would want for the symbols.
        Adjusted reads (``bars(adjust=...)``) use them at once; no bar is fetched again.

        >>> lake.fetch_actions("AAPL", start=date(2020, 1, 1)).to_dict()  # doctest: +SKIP
        """
        return self.services.actions.fetch(Selection.of(symbols, provider=provider, **chosen))

    def actions(
        self,
        symbols: Symbols = None,
        *,
        start: date | None = None,
        end: date | None = None,
        types: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Stored corporate actions (of ``symbols``, ex-dates in [start, end], of ``types``:
        ``split reverse_split cash_dividend stock_dividend``), ordered by symbol and ex_date.

        >>> lake.actions("AAPL", types=["split"])  # doctest: +SKIP
        """
        return self.services.actions.rows(symbols_of(symbols), start=start, end=end, types=types)

    # -- providers ----------------------------------------------------------------------------

    def providers(self) -> list[ProviderInfo]:
        """Each provider: what it serves, its rate limit and that limit's source, and whether
        its credentials are set (never the credentials).

        >>> [(p.name, p.credentials) for p in lake.providers()]  # doctest: +SKIP
        [('demo', 'not needed'), ('alpaca', 'missing'), ...]
        """
        from barlake.providers.listing import of_lake

        return of_lake(self.root, given=self._providers, clock=self.clock)

    # -- live ---------------------------------------------------------------------------

    def follow(
        self,
        symbols: Symbols = None,
        *,
        provider: str | None = None,
        source: LiveSource | None = None,
        stop: threading.Event | None = None,
        options: FollowOptions | None = None,
    ) -> FollowResult:
        """Keep the minute bars of ``symbols`` (every tracked symbol when None) current
        through today's session from ``provider``'s stream (``source`` instead of lake.yaml's;
        polling its REST API when it has none), one connection for all of them; returns once
        the session is final (or ``stop`` is set). Without ``symbols``, lake.yaml's ``follow``
        selections of the provider, else every tracked symbol; without ``provider``, the first
        ``follow`` entry's, else ``default_provider``. See ``barlake.jobs.follow`` for how each
        seam is closed.

        >>> lake.follow("AAPL,MSFT", provider="alpaca").differences  # doctest: +SKIP
        """
        import asyncio
        import dataclasses
        from datetime import timedelta

        from barlake.jobs.follow import Follower, FollowOptions
        from barlake.providers import STREAMS, open_stream
        from barlake.providers.polling import PollingSource

        names = symbols_of(symbols)
        entries = self.config.follow
        if provider is None:
            given = entries[0].provider if entries and names is None else None
            provider = given or self.config.default_provider
        if names is None and entries:  # every selection of this provider, one connection
            picked = [
                e for e in entries if (e.provider or self.config.default_provider) == provider
            ]
            names = sorted({s.upper() for e in picked for s in e.symbols})
        names = names or self.symbols()["symbol"].to_list()
        rest = self.services.providers.open(provider)
        if source is None:
            config = self.config.provider(provider)
            if provider in STREAMS:
                source = open_stream(provider, config, clock=self.clock)
            else:
                source = PollingSource(rest, self.clock)
        calendar = self._calendar_of(names)
        start = self._last_minute(names)

        def catch_up() -> object:
            today = self.clock().date()
            # A worker of this lake takes the fill lock for a moment at each look at its
            # queue: wait those out (a fill that holds it longer is refused, as ever).
            for attempt in range(LOCK_TRIES):
                try:
                    return self.fill(
                        names,
                        interval="1min",
                        start=min(start, today),
                        end=today,
                        provider=provider,
                    )
                except LockError:
                    if attempt + 1 == LOCK_TRIES or (stop is not None and stop.is_set()):
                        raise
                    time.sleep(LOCK_WAIT_S)
            raise AssertionError  # unreachable: the last try returns or raises

        def read(day: date) -> pl.DataFrame:
            return self.bars(names, interval="1min", start=day, end=day).collect()

        # The final fetch must come after the lake's provisional grace, or it is not final.
        grace = timedelta(minutes=self.config.backfill.provisional_grace_minutes)
        options = options or FollowOptions()
        options = dataclasses.replace(options, close_grace=max(options.close_grace, grace))
        follower = Follower(
            names,
            source=source,
            rest=rest,
            live=self.live,
            catalog=self.catalog,
            calendar=calendar,
            clock=self.clock,
            catch_up=catch_up,
            read=read,
            options=options,
        )
        owned = not self.services.providers.owns(provider)

        async def run() -> FollowResult:
            try:
                return await follower.run(stop)
            finally:
                if owned:
                    await rest.aclose()

        return asyncio.run(run())

    def followers(self) -> list[FollowerReport]:
        """Every follower of this lake (running, stale, dead or finished) with its symbols,
        last bar, lag and reconnects, judged at the lake's clock (see
        ``barlake.jobs.followers``).

        >>> [(f.state, f.lag_s) for f in lake.followers()]  # doctest: +SKIP
        [('running', 64.0)]
        """
        from barlake.jobs.followers import FollowerFiles, reports

        return reports(FollowerFiles(self.root, self._files), self.clock())

    @property
    def _files(self) -> FileSystem:
        """The lake's file system, without loading the store when it is the local disk."""
        if "store" in self.__dict__ or self._config.storage.url is not None:
            return self.store.fs
        from barlake.storage.filesystem import LocalFileSystem

        return LocalFileSystem()

    def _last_minute(self, names: list[str]) -> date:
        """The session date of the last stored minute bar of ``names`` (today when none, or
        more than a month back: a follow catches up a month at most)."""
        import polars as pl

        from barlake.retention.selection import Selection
        from barlake.storage import reads

        window = Selection(days=31).window(self.today)
        shifts = self.services.registry.day_shifts(names)
        from barlake.calendars.calendar import calendar_for

        stored = reads.bars(self.store, "1min", names, window, shifts, calendar_for(None).day_shift)
        last = stored.select(pl.col("ts").max()).collect().item()
        return last.date() if last is not None else self.today

    # -- research: bars, coverage, report ---------------------------------------------------

    def bars(
        self,
        symbols: Symbols = None,
        *,
        interval: Interval | Period = "1day",
        start: date | None = None,
        end: date | None = None,
        days: int | None = None,
        resample_from: Interval | None = None,
        adjust: Adjust = "none",
    ) -> pl.LazyFrame:
        """The stored bars of ``symbols`` (every stored symbol when None) at ``interval``, sorted
        by (symbol, ts), in the lake's schema: the same rows as the README's reader one-liners.

        ``start``/``end`` (inclusive) or ``days`` (calendar days ending today) select by session
        date; with neither, all history. DuckDB queries the result by name
        (``duckdb.sql("select * from bars")``) or as a relation (``duckdb.from_arrow(bars)``).

        ``resample_from`` builds the ``interval`` bars from the stored bars of that finer
        interval instead (``barlake.domain.resample``: vendor-style aggregation on the exchange's
        clock grid); ``1week`` and ``1month`` bars are always built from daily ones, whole
        periods, stamped by their first session.

        ``adjust`` computes prices as of today from the catalog's actions (``lake actions``):
        ``"splits"`` divides prices before a split by its ratio and multiplies volumes,
        ``"total"`` also applies each cash dividend's ``1 - amount / close before``; the files
        stay raw (``domain.actions``). Resampled bars are adjusted by their start.

        >>> lake.bars("AAPL,BRK/B", start=date(2024, 1, 2)).collect()  # doctest: +SKIP
        >>> lake.bars("AAPL", interval="5min", resample_from="1min", days=5)  # doctest: +SKIP
        >>> lake.bars("AAPL", interval="1week", start=date(2024, 1, 1))  # doctest: +SKIP
        >>> lake.bars("AAPL", adjust="total").collect()                 # doctest: +SKIP
        """
        from barlake.domain.actions import parse_adjust

        how = parse_adjust(adjust)
        names = symbols_of(symbols)
        raw = self._read(
            names,
            interval,
            resample_from=resample_from,
            direct=how == "none",  # adjusted reads keep the general reader
            days=days,
            start=start,
            end=end,
        )
        return raw if how == "none" else self._adjusted(raw, str(interval), names, how)

    def _read(
        self,
        names: list[str] | None,
        interval: Interval | Period,
        *,
        resample_from: Interval | None = None,
        file_column: str | None = None,
        direct: bool = True,
        **dates: Any,
    ) -> pl.LazyFrame:
        """``bars`` of checked ``names`` (with ``file_column``, stored bars only: each bar's
        file; ``direct``: see ``reads.bars``)."""
        from barlake.calendars.calendar import calendar_for
        from barlake.domain import resample
        from barlake.storage import live, reads

        window = Selection(**dates).window(self.today)
        if interval not in resample.PERIODS:
            interval = spec(interval).name  # an alias (``1h``) is the interval it names
        if resample_from is not None or interval in resample.PERIODS:
            source = resample.check(interval, resample_from or "1day")
            cals = self.services.registry.calendars(names)
            return reads.resampled(
                self.store, interval, source, names, window, cals, calendar_for(None)
            )
        name = spec(interval).name
        shifts = self._day_shifts(names) if spec(name).intraday and window else {}
        default = calendar_for(None).day_shift
        # Live bars replace stored ones: with any, the general reader, and the overlay.
        overlaid = name == live.INTERVAL and file_column is None and bool(self.live.parts())
        stored = reads.bars(
            self.store,
            name,
            names,
            window,
            shifts,
            default,
            file_column=file_column,
            direct=direct and not overlaid,
        )
        if not overlaid:
            return stored
        return live.overlay(stored, self.live.read(names, window))

    def _day_shifts(self, names: list[str] | None) -> dict[str, timedelta]:
        """``registry.day_shifts(names)``: from every known symbol's shift, kept while the
        catalog's ``stamp`` stays the same, so that a loop over symbols does not open the
        catalog for each one."""
        stamp = self.catalog.stamp()  # before the query: a write during it changes the stamp
        if stamp is None:
            return self.services.registry.day_shifts(names)
        kept, every = self._shifts
        if kept != stamp:
            every = self.services.registry.day_shifts(None)
            self._shifts = (stamp, every)
        if names is None:
            return dict(every)
        return {s: every[s] for s in names if s in every}

    def _adjusted(
        self, raw: pl.LazyFrame, interval: str, names: list[str] | None, how: Adjust
    ) -> pl.LazyFrame:
        """``raw`` adjusted ``how`` by the actions on record up to today (an announced action
        adjusts nothing before its ex-date)."""
        import polars as pl

        from barlake.domain.actions import COLUMNS, adjusted

        table = self.catalog.action_frame(names, end=self.today).cast(COLUMNS)  # type: ignore[arg-type]
        if table.is_empty():
            return raw
        closes = None
        if interval not in ("1day", "1d") and how == "total":
            # A dividend's factor uses the close before it: the stored daily close, else the
            # session's last intraday close.
            daily = self.store.scan("1day", sorted(set(table["symbol"])))
            last = raw.group_by("symbol", pl.col("ts").dt.truncate("1d")).agg(
                pl.col("close").sort_by(pl.col("ts")).last()
            )
            closes = (
                pl.concat([last, daily.select("symbol", "ts", "close")])
                .unique(["symbol", "ts"], keep="last", maintain_order=True)
                .sort("symbol", "ts")
            )
        return adjusted(raw, table, how, closes=closes)

    def trades(
        self,
        symbols: Symbols = None,
        *,
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> pl.DataFrame:
        """The stored trades (one row per print, ``lake/README.md``'s trades columns) of
        ``symbols`` (None: all) in the sessions of ``days`` or ``start``/``end`` (None: all),
        sorted by symbol and time.

        >>> lake.trades("AAPL", days=5).head()  # doctest: +SKIP
        """
        return self.services.trades.read(symbols_of(symbols), self._sessions(days, start, end))

    def trade_bars(
        self,
        symbols: Symbols = None,
        *,
        every: str | timedelta = "1s",
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        conditions: Conditions | None = None,
    ) -> pl.DataFrame:
        """Bars of any intraday length (``1s``, ``10s``, ``1min``...) built from the stored
        trades, with the vendors' condition filters (``Conditions()``: odd lots and other
        prints that set no price stay out of open/high/low/close; ``Conditions.none()``
        keeps every print). Columns as the bar files' but ``source``; ``ts`` is the bar's
        UTC start. Sessions as in ``trades``.

        A method of its own, not an interval of ``bars``: these lengths are no interval the
        lake stores, fills or checks, and they take filters the stored bars do not.

        >>> lake.trade_bars("AAPL", every="10s", days=1)  # doctest: +SKIP
        """
        window = self._sessions(days, start, end)
        return self.services.trades.bars(symbols_of(symbols), window, every, conditions)

    def _sessions(self, days: int | None, start: date | None, end: date | None) -> DateRange:
        from barlake.retention.selection import requested_window

        asked = requested_window(self.today, days=days, start=start, end=end)
        return asked or DateRange(date(1900, 1, 1), self.today + timedelta(days=1))

    def info(self, symbols: Symbols = None, **chosen: Unpack[Chosen]) -> Info:
        """What the lake holds per symbol and interval: the first and last bar, bars, expected
        sessions and how many are stored, missing, provisional or empty, files and bytes on
        disk, the last fill and its provider; ``.totals()`` sums them, ``.to_dict()`` is JSON.

        Symbols, intervals and ranges are chosen as in ``gaps`` (the session counts are the
        cells of ``coverage``); with no ``interval``, every interval the lake holds bars of and
        those ``gaps`` would look at. Bar figures cover the dates given (``days`` or
        ``start``/``end``, by session date as ``bars`` reads them), else all history.

        >>> lake.info("AAPL", interval="1day", days=30).to_dict()["totals"]  # doctest: +SKIP
        """
        import polars as pl

        from barlake.domain.intervals import INTERVALS
        from barlake.views import info as info_

        sel = Selection.of(symbols, **chosen)
        intervals = None if sel.intervals is None else tuple(map(bar_interval, sel.intervals))
        if intervals is None:
            wanted = set(
                bar_intervals(t.interval for t in self.services.backfill.resolve(sel).targets)
            )
            held = {i for i in INTERVALS if self.store.files(i, None, None)}
            intervals = tuple(i for i in INTERVALS if i in wanted | held) or ("1day",)
        dates: dict[str, Any] = {"days": sel.days, "start": sel.start, "end": sel.end}
        span = {**dates, "layer": sel.layer, "policy": sel.policy}
        coverages, stored = [], {}
        for interval in intervals:
            cov = self.coverage(sel.names, interval=interval, **span)
            coverages.append(cov)
            if not cov.symbols:
                continue
            bars = self._read(list(cov.symbols), interval, file_column="file", **dates)
            stored[interval] = (
                bars.group_by("symbol", "file")
                .agg(
                    pl.len().alias("bars"),
                    pl.col("ts").min().alias("first"),
                    pl.col("ts").max().alias("last"),
                )
                .sort("symbol", "file")
                .collect()
            )
        paths = {str(f) for frame in stored.values() for f in frame["file"]}
        names = sorted({s for cov in coverages for s in cov.symbols})
        fills = self.catalog.last_fills(names)
        return info_.assemble(coverages, stored, self.store.file_stats(paths), fills)

    def move_storage(
        self, url: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> Moved:
        """Copy the lake's bar files into the bucket at ``url`` (``s3://BUCKET/PREFIX``, empty)
        and point the lake there: ``migrate(storage=url)``'s file half.

        >>> lake.move_storage("s3://research-bars/lake")              # doctest: +SKIP
        """
        moved = self.migrate(storage=url, endpoint_url=endpoint_url, region=region).storage
        assert moved is not None
        return moved

    def migrate(
        self,
        *,
        catalog: str | None = None,
        storage: str | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
    ) -> Migrated:
        """Move a laptop lake into team mode: its catalog into the empty PostgreSQL database at
        ``catalog`` (every table, row counts and a SHA-256 of each table's rows read back),
        its bar files into the empty bucket prefix at ``storage`` (``s3://BUCKET/PREFIX``;
        rows and SHA-256 of each file read back), either or both. Only once everything is
        verified does lake.yaml get its ``catalog`` and ``storage`` sections (in one atomic
        write; a password in ``catalog`` is left out of the file: give it in PGPASSWORD,
        ~/.pgpass or LAKE_CATALOG_URL). The source is only read: on any failure the lake is
        as it was and the database is left empty.

        >>> lake.migrate(catalog="postgresql://lake@db/research",    # doctest: +SKIP
        ...              storage="s3://research-bars/lake")
        """
        from contextlib import nullcontext

        from barlake import config as config_
        from barlake import wiring
        from barlake.catalog import transfer, without_password
        from barlake.storage import migration
        from barlake.storage.lock import FillLock

        if catalog is None and storage is None:
            msg = "name where the lake goes: --catalog postgresql://... and/or --storage s3://..."
            raise UsageError(msg)
        sections: dict[str, dict[str, Any]] = {}
        target_catalog = None
        if catalog is not None:
            if self.catalog_url is not None:
                msg = f"{self.root} keeps its catalog on PostgreSQL already"
                raise UsageError(msg)
            config_.parse(config_.CatalogConfig, {"url": catalog}, "--catalog")
            sections["catalog"] = {"url": without_password(catalog)[0]}
            target_catalog = open_catalog(self.root, catalog)
        target_fs = None
        if storage is not None:
            if self._config.storage.url is not None:
                msg = f"{self.root} keeps its bars at {self._config.storage.url} already"
                raise UsageError(msg)
            given = {"url": storage, "endpoint_url": endpoint_url, "region": region}
            sections["storage"] = {k: v for k, v in given.items() if v is not None}
            parsed = config_.parse(config_.StorageConfig, sections["storage"], "--storage")
            target_fs = wiring.file_system(self.root, parsed)
        with FillLock(self.root):  # no fill writes while the lake is copied
            copying = (
                transfer.copy(self.catalog, target_catalog)
                if target_catalog is not None
                else nullcontext(None)
            )
            with copying as copied:  # the catalog commits once the files are verified too
                moved = migration.move(self.store.fs, target_fs, self.root) if target_fs else None
            config_.add_sections(self.root, sections)
        if target_catalog is not None:
            self.catalog_url, self.catalog = catalog, target_catalog
        for name in ("store", "services", "_config", "live"):  # the next call reads the targets
            self.__dict__.pop(name, None)
        return Migrated(copied, moved)

    def export(
        self,
        path: str | Path,
        symbols: Symbols = None,
        *,
        format: str = "parquet",
        interval: Interval = "1day",
        layer: int | None = None,
        start: date | None = None,
        end: date | None = None,
        days: int | None = None,
    ) -> int:
        """Write the rows ``bars`` gives (of ``layer``'s symbols when given) to ``path`` as
        ``csv``, ``parquet`` or ``json``; returns how many bars were written. Unknown symbols,
        an unknown format or a folder that does not exist are UsageErrors, nothing written.

        >>> lake.export("aapl.csv", "AAPL", format="csv", days=30)  # doctest: +SKIP
        """
        from barlake.views import export as export_

        fmt = export_.format_of(format)
        names = symbols_of(symbols)
        if names is not None or layer is not None:
            names = [m.name for m in self.services.registry.members(names, layer=layer)]
        frame = self._read(names, interval, days=days, start=start, end=end).collect()
        export_.export(frame, fmt, path)
        return frame.height

    def coverage(
        self, symbols: Symbols = None, *, interval: Interval = "1day", **span: Unpack[Span]
    ) -> Coverage:
        """What the lake holds per symbol and session at ``interval``: a symbols x sessions
        matrix of state codes (``barlake.coverage.STATES``), chosen as in ``gaps``, whose
        sessions are exactly the missing and provisional cells.

        >>> cov = lake.coverage(start=date(2024, 1, 2), end=date(2024, 6, 28))  # doctest: +SKIP
        >>> cov.summary(), cov.plot("coverage.png")                             # doctest: +SKIP
        """
        from barlake.views.coverage import from_cells

        sel = Selection.of(symbols, interval=interval, **span)
        return from_cells(self.services.backfill.coverage(sel, spec(interval).name))

    def report(
        self,
        path: str | Path,
        symbols: Symbols = None,
        *,
        interval: Interval | Sequence[Interval] | None = None,
        jobs: int = 10,
        **span: Unpack[Span],
    ) -> Path:
        """Write a self-contained HTML page: what the lake holds at each interval (bars,
        symbols, first and last bar, files, bytes), each interval's coverage map and table and
        its gaps (symbols and ranges chosen as in ``gaps``), the last ``jobs`` jobs and their
        errors. ``interval`` None: every interval the lake holds (1day when it holds none).

        >>> lake.report("report.html", days=90)  # doctest: +SKIP
        """
        from barlake.fetch.job import error_rows
        from barlake.views import report as report_

        held = {h.interval: h for h in self.store.holdings()}
        if interval is None:
            chosen: list[Interval] = list(held) or ["1day"]
        else:
            given = [interval] if isinstance(interval, str) else list(interval)
            chosen = [spec(i).name for i in given]
        sections = []
        for name in chosen:
            coverage = self.coverage(symbols, interval=name, **span)
            sections.append(
                report_.Section(
                    coverage=coverage,
                    png=report_.picture(coverage),
                    gaps=[g.to_dict() for g in self.gaps(symbols, interval=name, **span)],
                    holding=held.get(name),
                )
            )
        recent = self.catalog.jobs(jobs).to_dicts()
        failed = [j for j in recent if j.get("symbols_failed")]
        page = report_.Report(
            title=f"barlake report: {self.root} ({self.clock().strftime('%Y-%m-%d %H:%M UTC')})",
            sections=sections,
            jobs=recent,
            errors=[
                {"job_id": j["job_id"], **row}
                for j in failed
                for row in error_rows(history.errors(self.catalog, str(j["job_id"])))
            ],
        )
        return report_.write(path, page)


def _environment_clock() -> Clock:
    try:
        return from_environment()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
