"""``Lake``: the one object a notebook or the CLI holds. It wires the store, the catalog, the
calendars and the providers together; each method is one thing a user asks of the lake.

>>> lake = Lake.init("lake")                                    # doctest: +SKIP
>>> lake.add_symbols(["AAPL", "MSFT"])                          # doctest: +SKIP
>>> lake.gaps(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 28))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from barlake import gaps as gaps_
from barlake import layers, monitor
from barlake.bars import KEY as BAR_KEY
from barlake.calendar import Calendar, calendar_for
from barlake.catalog import SYMBOL_COLUMNS, Catalog
from barlake.config import LakeConfig, load
from barlake.coverage import Coverage, assemble
from barlake.coverage import states as coverage_states
from barlake.errors import StorageError, UnknownSymbolError, UsageError
from barlake.intervals import LAYOUT_VERSION, SPECS, Interval, spec
from barlake.lock import FillLock
from barlake.monitor import CheckResult
from barlake.plan import Origin, Plan, Skipped, order, price
from barlake.policy import Policy, load_policy
from barlake.providers import open_provider
from barlake.providers.base import Capabilities, Provider
from barlake.prune import Pruned
from barlake.prune import prune as prune_bars
from barlake.ranges import ONE_DAY, DateRange, subtract
from barlake.ratelimit import RateLimiter
from barlake.scheduler import JobResult, ProgressCallback, Scheduler
from barlake.store import Store
from barlake.symbols import check_symbol, split_symbols
from barlake.targets import Ask, Target, resolve
from barlake.targets import Symbol as TargetSymbol
from barlake.tiers import tier_of

#: What a symbols file may carry: the catalog's descriptive columns (layers have their own import).
IMPORT_COLUMNS = SYMBOL_COLUMNS[: SYMBOL_COLUMNS.index("market_cap") + 1]


def requested_window(
    today: date, *, days: int | None = None, start: date | None = None, end: date | None = None
) -> DateRange | None:
    """The range a user asked for: ``days`` calendar days ending today, or ``start``..``end``
    inclusive (``end`` defaults to today); None when they asked for nothing."""
    if days is not None and (start or end):
        msg = "give either --days or --start/--end, not both"
        raise UsageError(msg)
    if days is not None:
        if days < 1:
            msg = f"--days must be at least 1, got {days}"
            raise UsageError(msg)
        return DateRange(today - (days - 1) * ONE_DAY, today + ONE_DAY)
    if start is None and end is None:
        return None
    if start is None:
        msg = "--end needs --start (or use --days N)"
        raise UsageError(msg)
    return DateRange.inclusive(start, end or today)


class Lake:
    """A lake on disk: bars under ``bars/``, the catalog in ``catalog.duckdb``."""

    def __init__(self, root: str | Path, *, clock: Callable[[], datetime] | None = None) -> None:
        self.root = Path(root)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.catalog = Catalog(self.root)
        self.store = Store(self.root, day_index=True)
        self._config: LakeConfig | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def init(cls, root: str | Path, **kwargs: Any) -> Lake:
        """Create a lake at ``root`` (or bring an existing one up to date) and open it."""
        lake = cls(root, **kwargs)
        lake.root.mkdir(parents=True, exist_ok=True)
        (lake.root / "bars").mkdir(exist_ok=True)
        lake.catalog.create()
        recorded = lake.catalog.meta("layout_version")
        if recorded is None:
            lake.catalog.set_meta("layout_version", str(LAYOUT_VERSION))
        lake._check_layout(recorded)
        return lake

    @classmethod
    def open(cls, root: str | Path, **kwargs: Any) -> Lake:
        """Open the existing lake at ``root``."""
        lake = cls(root, **kwargs)
        if not lake.catalog.path.exists():
            msg = f"no lake at {lake.root}; run `lake init` there or pass --lake PATH"
            raise UsageError(msg)
        lake._check_layout(lake.catalog.meta("layout_version"))
        return lake

    def _check_layout(self, recorded: str | None) -> None:
        if recorded is not None and int(recorded) != LAYOUT_VERSION:
            msg = (
                f"{self.root} has layout version {recorded}, this barlake writes {LAYOUT_VERSION}; "
                "upgrade barlake or migrate the lake"
            )
            raise StorageError(msg)

    @property
    def config(self) -> LakeConfig:
        if self._config is None:
            self._config = load(self.root)
        return self._config

    @property
    def today(self) -> date:
        return self.clock().date()

    # -- symbols -----------------------------------------------------------------------------

    def add_symbols(self, names: str | Sequence[str], **attributes: Any) -> int:
        """Add symbols (``"AAPL,MSFT"`` or a list); ``attributes`` set catalog columns."""
        unknown = sorted(set(attributes) - set(SYMBOL_COLUMNS))
        if unknown:
            msg = f"unknown symbol attribute(s) {', '.join(unknown)}"
            raise UsageError(msg)
        symbols = split_symbols(names if isinstance(names, str) else list(names))
        frame = pl.DataFrame({"symbol": symbols}).with_columns(
            **{k: pl.lit(v) for k, v in attributes.items()}
        )
        return self.catalog.upsert_symbols(_typed_symbols(frame, "arguments"))

    def import_symbols(self, path: str | Path) -> int:
        """Add or update symbols from a CSV or Parquet file with a ``symbol`` column."""
        frame = _read_table(Path(path))
        extra = sorted(set(frame.columns) - set(IMPORT_COLUMNS))
        if "symbol" not in frame.columns or extra:
            what = f"unknown column(s) {', '.join(extra)}" if extra else "no 'symbol' column"
            msg = f"{path}: {what}; allowed columns: {', '.join(IMPORT_COLUMNS)}"
            raise UsageError(msg)
        frame = frame.with_columns(pl.col("symbol").cast(pl.String))
        if frame["symbol"].is_null().any():
            msg = f"{path}: a row has an empty symbol"
            raise UsageError(msg)
        checked = [check_symbol(s) for s in frame["symbol"].to_list()]
        if any(len(s.replace(",", " ").split()) != 1 for s in checked):
            msg = f"{path}: a symbol cell holds several names; put one symbol per row"
            raise UsageError(msg)
        if len(set(checked)) != len(checked):
            msg = f"{path}: symbols repeat; each symbol may appear once"
            raise UsageError(msg)
        frame = frame.with_columns(pl.Series("symbol", checked, dtype=pl.String))
        return self.catalog.upsert_symbols(_typed_symbols(frame, str(path)))

    def symbols(self, names: Sequence[str] | None = None) -> pl.DataFrame:
        """The symbols table (all, or ``names``)."""
        return self.catalog.symbols(names)

    def remove_symbols(self, names: str | Sequence[str]) -> int:
        """Forget symbols (their bars stay on disk until pruned)."""
        symbols = split_symbols(names if isinstance(names, str) else list(names))
        self.require_symbols(symbols)
        return self.catalog.remove_symbols(symbols)

    def require_symbols(
        self, names: Sequence[str] | None, *, layer: int | None = None
    ) -> pl.DataFrame:
        """Catalog rows of ``names`` (all active symbols when None); unknown names are errors."""
        rows = self.catalog.symbols(names, active_only=names is None)
        if names is not None:
            missing = sorted(set(names) - set(rows["symbol"].to_list()))
            if missing:
                shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
                msg = f"unknown symbol(s) {shown}; add them with `lake symbols add`"
                raise UnknownSymbolError(msg)
        if layer is not None:
            rows = rows.filter(pl.col("layer") == layer)
        return rows

    # -- gaps --------------------------------------------------------------------------------

    def window(
        self, *, days: int | None = None, start: date | None = None, end: date | None = None
    ) -> DateRange:
        """The requested range, or the configured default number of days ending today."""
        return requested_window(self.today, days=days, start=start, end=end) or requested_window(
            self.today, days=self.config.backfill.default_days
        )  # type: ignore[return-value]

    def gaps(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval | Sequence[Interval] | None = None,
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        layer: int | None = None,
        policy: str | Policy | None = None,
    ) -> list[gaps_.Gap]:
        """Missing sessions per symbol and interval, as ranges of consecutive sessions.

        Ranges are chosen as in ``plan``: your dates, else the policy, else the default.
        """
        with self.catalog.session(read_only=True):
            rows, targets = self._selected(symbols, interval, days, start, end, layer, policy)
            by_interval: dict[Interval, dict[str, DateRange]] = {}
            for t in targets:
                by_interval.setdefault(t.interval, {})[t.symbol] = t.window
            out: list[gaps_.Gap] = []
            for i, windows in by_interval.items():
                out += self.gaps_for(rows, i, windows)
        return sorted(out, key=lambda g: (g.symbol, g.interval, g.range))

    def expected_windows(
        self, rows: pl.DataFrame, windows: dict[str, DateRange]
    ) -> dict[str, tuple[Calendar, DateRange]]:
        """Each symbol's calendar and the part of its window in which sessions are expected:
        inside its listing window, and no later than the last session that has opened."""
        out: dict[str, tuple[Calendar, DateRange]] = {}
        now = self.clock()
        opened: dict[str, date | None] = {}
        for sym, cal_name, asset_class, listed, delisted in rows.select(
            "symbol", "calendar", "asset_class", "listed_on", "delisted_on"
        ).iter_rows():
            window = windows.get(sym)
            if window is None:
                continue
            cal = calendar_for(cal_name, asset_class)
            if cal.name not in opened:
                opened[cal.name] = cal.opened_before(now)
            last = opened[cal.name]
            if last is None:
                continue
            if window.end > last + ONE_DAY:
                if window.start > last:
                    continue
                window = DateRange(window.start, last + ONE_DAY)
            w = gaps_.listing_window(window, listed, delisted) if listed or delisted else window
            if w:
                out[sym] = (cal, w)
        return out

    def gaps_for(
        self,
        rows: pl.DataFrame,
        interval: Interval,
        windows: dict[str, DateRange],
        expected: dict[str, tuple[Calendar, DateRange]] | None = None,
    ) -> list[gaps_.Gap]:
        """Gaps of the catalog ``rows`` at ``interval``, each symbol within its own window
        (``expected``: the result of ``expected_windows`` when the caller has it)."""
        if expected is None:
            expected = self.expected_windows(rows, windows)
        by_calendar: dict[str, tuple[Calendar, dict[str, DateRange]]] = {}
        for sym, (cal, w) in expected.items():
            by_calendar.setdefault(cal.name, (cal, {}))[1][sym] = w
        out: list[gaps_.Gap] = []
        for cal, mine in by_calendar.values():
            out += self._gaps_on(cal, interval, mine)
        return sorted(out, key=lambda g: (g.symbol, g.interval, g.range))

    def _gaps_on(
        self, cal: Calendar, interval: Interval, windows: dict[str, DateRange]
    ) -> list[gaps_.Gap]:
        if not windows:
            return []
        span = DateRange(
            min(w.start for w in windows.values()), max(w.end for w in windows.values())
        )
        sessions = cal.sessions_in(span)
        frame = pl.DataFrame(
            {
                "symbol": list(windows),
                "start": [w.start for w in windows.values()],
                "end": [w.end for w in windows.values()],
            }
        )
        counts = self.store.session_counts(interval, frame, sessions, cal.day_shift)
        ledger = self.catalog.ledger(interval, span, list(windows) if len(windows) < 1000 else None)
        # Empty final ranges cover their sessions (halts, pre-listing days); a provisional range
        # is fetched again unless a final fetch (empty or not) made after it settled it.
        ranges: dict[str, tuple[list[DateRange], list[DateRange]]] = {}
        finals: dict[str, list[tuple[DateRange, datetime]]] = {}
        interim: dict[str, list[tuple[DateRange, datetime]]] = {}
        for sym, lo, hi, final, n, at in ledger.select(
            "symbol", "start_date", "end_date", "final", "bars", "fetched_at"
        ).iter_rows():
            if sym not in windows:
                continue
            (finals if final else interim).setdefault(sym, []).append((DateRange(lo, hi), at))
            if final and n == 0:
                ranges.setdefault(sym, ([], []))[0].append(DateRange(lo, hi))
        for sym, fetched in interim.items():
            for window, at in fetched:
                later = [r for r, when in finals.get(sym, []) if when >= at]
                ranges.setdefault(sym, ([], []))[1].extend(subtract([window], later))
        todo = [
            s
            for s, w in windows.items()
            if counts.get(s, 0) < cal.session_count(w) or ranges.get(s, ([], []))[1]
        ]
        if not todo:
            return []
        stored = self.store.days_by_symbol(interval, todo, span, cal.day_shift)
        out: list[gaps_.Gap] = []
        empty = np.array([], dtype="datetime64[D]")
        for sym in todo:
            final, provisional = ranges.get(sym, ([], []))
            if sym not in stored and not final:
                # Nothing stored and nothing asked yet: the whole expected window is one gap.
                whole = cal.sessions_in(windows[sym])
                if len(whole):
                    first, last = _as_date(whole[0]), _as_date(whole[-1])
                    window = DateRange(first, last + ONE_DAY)
                    out.append(gaps_.Gap(sym, interval, window, len(whole)))
                continue
            out += gaps_.find_gaps(
                sym,
                interval,
                cal.sessions_in(windows[sym]),
                stored.get(sym, empty),
                final,
                provisional,
            )
        return out

    # -- plan and fill ------------------------------------------------------------------------

    def plan(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval | Sequence[Interval] | None = None,
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        layer: int | None = None,
        provider: str | None = None,
        policy: str | Policy | None = None,
    ) -> Plan:
        """What a fill would fetch, request by request, and why.

        Ranges come from ``days`` or ``start``/``end`` when given (they always win), else from
        ``policy`` (or lake.yaml's ``default_policy``) by each symbol's layer, else from
        ``backfill.default_days``. ``interval`` None means the policy's intervals (or 1day).

        >>> plan = lake.plan("AAPL,MSFT", days=30, interval=["1day", "1min"])  # doctest: +SKIP
        >>> plan.total_requests, plan.estimated_bars                          # doctest: +SKIP
        """
        with self.catalog.session(read_only=True):
            names = _names(symbols)
            rows = self.require_symbols(names, layer=layer)
            asked = self._ask(interval, days, start, end, policy)
            targets, skipped, priority = resolve(asked, _target_symbols(rows), self.today)
            parameters = {
                "symbols": names,
                "intervals": list(asked.intervals) if asked.intervals else None,
                "days": days,
                "start": start.isoformat() if start else None,
                "end": end.isoformat() if end else None,
                "layer": layer,
                "policy": asked.policy.name if asked.policy else None,
            }
            return self.plan_targets(
                rows,
                targets,
                provider=provider,
                skipped=skipped,
                priority=priority,
                parameters=parameters,
            )

    def _selected(
        self,
        symbols: str | Sequence[str] | None,
        interval: Interval | Sequence[Interval] | None,
        days: int | None,
        start: date | None,
        end: date | None,
        layer: int | None,
        policy: str | Policy | None,
    ) -> tuple[pl.DataFrame, list[Target]]:
        """The catalog rows of a selection and each symbol's wanted range per interval (what
        gaps, check and coverage look at). Run inside a catalog session."""
        rows = self.require_symbols(_names(symbols), layer=layer)
        asked = self._ask(interval, days, start, end, policy)
        targets, _, _ = resolve(asked, _target_symbols(rows), self.today)
        return rows, targets

    def _ask(
        self,
        interval: Interval | Sequence[Interval] | None,
        days: int | None,
        start: date | None,
        end: date | None,
        policy: str | Policy | None,
    ) -> Ask:
        intervals = None
        if interval is not None:
            intervals = [
                spec(i).name for i in ([interval] if isinstance(interval, str) else interval)
            ]
        window = requested_window(self.today, days=days, start=start, end=end)
        chosen = policy if policy is not None else self.config.default_policy
        loaded = load_policy(chosen, self.root) if isinstance(chosen, str) else chosen
        default_days = self.config.backfill.default_days
        return Ask(
            intervals=intervals,
            window=window,
            flag=f"--days {days}" if days is not None else f"--start/--end {window}",
            policy=loaded,
            default_window=self.window(),
            default_source=f"default: backfill.default_days = {default_days}",
            respect_user=self.config.backfill.respect_user_overrides,
        )

    def plan_targets(
        self,
        rows: pl.DataFrame,
        targets: Sequence[Target],
        *,
        provider: str | None = None,
        skipped: Sequence[tuple[str, str, str]] = (),
        priority: dict[str, int] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Plan:
        """The plan that brings each target's symbol to its wanted range (the catalog ``rows``
        describe the symbols)."""
        name = provider or self.config.default_provider
        caps = self._capabilities(name)
        by_interval: dict[Interval, dict[str, Target]] = {}
        for t in targets:
            by_interval.setdefault(t.interval, {})[t.symbol] = t
        all_gaps: list[gaps_.Gap] = []
        origins: list[Origin] = []
        skips = [Skipped((s,), i, reason) for s, i, reason in skipped]
        for interval, chosen in by_interval.items():
            if interval not in caps.intervals:
                reason = f"{name} does not serve {interval} bars"
                skips.append(Skipped(tuple(chosen), interval, reason))
                continue
            windows = {s: t.window for s, t in chosen.items()}
            expected = self.expected_windows(rows, windows)
            found = self.gaps_for(rows, interval, windows, expected)
            all_gaps += found
            origins += _origins(chosen, expected, found)
        cals = {t.name: t.calendar for t in _target_symbols(rows)}
        weight = self.config.backfill.reread_weight
        listings = {
            s: (listed, delisted)
            for s, listed, delisted in rows.select("symbol", "listed_on", "delisted_on").iter_rows()
        }
        planned, bound, timed_out = price(
            name, caps, all_gaps, cals, reread_weight=weight, listings=listings
        )
        return Plan(
            provider=name,
            rate_limit_per_min=self._rate_limit(name, caps),
            requests=tuple(order(planned, priority or {})),
            gaps=tuple(all_gaps),
            origins=tuple(origins),
            skipped=tuple(_merge_skips(skips)),
            parameters={**(parameters or {}), "provider": name},
            lower_bound=bound,
            time_limit_reached=timed_out,
        )

    def fill(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        parallel: int | None = None,
        on_progress: ProgressCallback | None = None,
        command: str | None = None,
        **selection: Any,
    ) -> JobResult:
        """Fetch what ``plan`` finds missing and write it; returns the job's result.

        Takes the lake's fill lock, marks jobs left running by a killed process as interrupted,
        and records the job in the catalog as it goes. Raises ``AuthError`` when credentials are
        refused and ``Interrupted`` on SIGINT/SIGTERM (after saving all fetched bars).
        """
        with FillLock(self.root):
            with self.catalog.session():
                self.catalog.interrupt_stale()
                plan = self.plan(symbols, **selection)
                scheduler, provider = self._start_job(plan, parallel, on_progress, command)
            return _run_until_signalled(scheduler, provider)

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
        their layer's retention implies (only what is missing is fetched), detected gaps are
        fetched as recorded. Each event records the job; events whose symbols failed stay
        pending for the next run."""
        with FillLock(self.root):
            with self.catalog.session():
                self.catalog.interrupt_stale()
                pending = self.catalog.events(pending=True)
                plan, served = self._plan_events(pending, policy, provider)
                scheduler, source = self._start_job(plan, parallel, on_progress, command)
            result = _run_until_signalled(scheduler, source)
        done = [i for i, symbol in served if symbol not in result.symbol_errors]
        self.catalog.mark_events(done, result.job_id)
        return result

    def _plan_events(
        self, pending: pl.DataFrame, policy: str | Policy | None, provider: str | None
    ) -> tuple[Plan, list[tuple[int, str]]]:
        served: list[tuple[int, str]] = []
        by_policy: set[str] = set()
        explicit: list[Target] = []
        for event_id, kind, payload in pending.select("id", "type", "payload").iter_rows():
            data = json.loads(payload or "{}")
            symbol = str(data.get("symbol", ""))
            served.append((int(event_id), symbol))
            if kind in ("symbol.qualified", "layer.promoted"):
                by_policy.add(symbol)
            elif kind == "data.gap.detected":
                first, last = date.fromisoformat(data["first"]), date.fromisoformat(data["last"])
                window = DateRange.inclusive(first, last)
                explicit.append(
                    Target(
                        symbol,
                        spec(data["interval"]).name,
                        window,
                        f"event {event_id}: gap detected",
                    )
                )
        known = set(
            self.catalog.symbols(sorted(by_policy | {t.symbol for t in explicit}))[
                "symbol"
            ].to_list()
        )
        rows = self.catalog.symbols(sorted(known))
        asked = self._ask(
            None,
            None,
            None,
            None,
            policy if policy is not None else self._policy(None) if by_policy else None,
        )
        chosen = rows.filter(pl.col("symbol").is_in(sorted(by_policy)))
        targets, skipped, priority = resolve(asked, _target_symbols(chosen), self.today)
        targets += [t for t in explicit if t.symbol in known]
        parameters = {"events": len(served), "policy": asked.policy.name if asked.policy else None}
        plan = self.plan_targets(
            rows,
            targets,
            provider=provider,
            skipped=skipped,
            priority=priority,
            parameters=parameters,
        )
        return plan, served

    def run_plan(
        self,
        plan: Plan,
        *,
        parallel: int | None = None,
        on_progress: ProgressCallback | None = None,
        command: str | None = None,
    ) -> JobResult:
        """Run an existing ``plan`` as a new job (takes the fill lock)."""
        with FillLock(self.root):
            with self.catalog.session():
                self.catalog.interrupt_stale()
                scheduler, provider = self._start_job(plan, parallel, on_progress, command)
            return _run_until_signalled(scheduler, provider)

    def _start_job(
        self,
        plan: Plan,
        parallel: int | None,
        on_progress: ProgressCallback | None,
        command: str | None,
    ) -> tuple[Scheduler, Provider]:
        job_id = str(uuid.uuid4())
        config = self.config.backfill
        if parallel is not None:
            config = config.model_copy(update={"parallel_symbols": parallel})
        rows = self.catalog.symbols(sorted({g.symbol for g in plan.gaps}))
        calendars = {
            sym: calendar_for(cal, ac)
            for sym, cal, ac in rows.select("symbol", "calendar", "asset_class").iter_rows()
        }
        progress = _progress_rows(plan)
        self.catalog.create_job(
            job_id,
            progress,
            command=command,
            parameters=json.dumps(plan.parameters),
            provider=plan.provider,
            pid=os.getpid(),
            requests_planned=plan.total_requests,
            symbols_total=progress["symbol"].n_unique() if progress.height else 0,
        )
        provider = self._open_provider(plan.provider)
        # Every process filling from the same vendor endpoint counts against one window.
        source = self.config.provider(plan.provider)
        shared_as = f"{plan.provider} {source.base_url or 'default'}"
        scheduler = Scheduler(
            job_id=job_id,
            plan=plan,
            provider=provider,
            limiter=RateLimiter(
                plan.rate_limit_per_min,
                window_s=source.rate_limit_window_s,
                share=shared_as if config.shared_rate_limit else None,
            ),
            write=self.store.write,
            record=self.catalog.record,
            calendars=calendars,
            config=config,
            clock=self.clock,
            on_progress=on_progress,
            tiers=self._tiers(rows) if config.use_symbol_tiers else None,
        )
        return scheduler, provider

    def _tiers(self, rows: pl.DataFrame) -> dict[str, str]:
        tiers = self.config.backfill.tiers
        return {
            sym: tier_of(cap, tiers) for sym, cap in rows.select("symbol", "market_cap").iter_rows()
        }

    def _capabilities(self, name: str) -> Capabilities:
        provider = self._open_provider(name)
        return provider.capabilities

    def _open_provider(self, name: str) -> Provider:
        return open_provider(name, self.config.provider(name))

    def _rate_limit(self, name: str, caps: Capabilities) -> float:
        return self.config.provider(name).rate_limit_per_min or caps.rate_limit_per_min

    # -- layers, events, retention ----------------------------------------------------------

    def set_layers(
        self, symbols: str | Sequence[str], layer: int, *, liquidity_score: float | None = None
    ) -> dict[str, int]:
        """Put symbols at ``layer`` (qualified for layers 1..layer); returns counts of symbols
        and of the events written (promoted, demoted, qualified)."""
        names = _names(symbols) or []
        frame = pl.DataFrame({"symbol": names, "layer": [layer] * len(names)})
        if liquidity_score is not None:
            frame = frame.with_columns(pl.lit(liquidity_score).alias("liquidity_score"))
        return self.catalog.set_layers(layers.updates_from(frame, "arguments"))

    def import_layers(self, path: str | Path) -> dict[str, int]:
        """Layer updates from a scanner's CSV, Parquet or JSON file: ``symbol`` with ``layer``
        or ``layerN_qualified`` columns, optionally ``liquidity_score``."""
        frame = _read_table(Path(path))
        updates = layers.updates_from(frame, str(path))
        if updates["symbol"].is_duplicated().any():
            msg = f"{path}: symbols repeat; each symbol may appear once"
            raise UsageError(msg)
        return self.catalog.set_layers(updates)

    def compute_layers(self, policy: str | Policy | None = None) -> dict[str, int]:
        """Score liquidity from the lake's own daily bars (median dollar volume of the last
        sessions, in $ millions) and qualify layer 1 by the policy's threshold."""
        chosen = self._policy(policy)
        rules = chosen.liquidity
        rows = self.require_symbols(None)
        # Enough calendar days to hold the lookback's sessions, holidays included.
        back = timedelta(days=rules.lookback_sessions * 2 + 14)
        window = DateRange(self.today - back, self.today + ONE_DAY)
        scores = self.store.liquidity(rows["symbol"].to_list(), window, rules.lookback_sessions)
        if scores.is_empty():
            return {"symbols": 0, "promoted": 0, "demoted": 0, "qualified": 0}
        updates = scores.with_columns(
            (pl.col("dollar_volume") >= rules.layer1_min_dollar_volume).alias("layer1_qualified"),
            (pl.col("dollar_volume") / layers.SCORE_UNIT).round(2).alias("liquidity_score"),
        ).select("symbol", "layer1_qualified", "liquidity_score")
        return self.catalog.set_layers(updates)

    def events(self, *, pending: bool = False) -> pl.DataFrame:
        """Events, oldest first: layer changes and detected gaps, with the job that served each."""
        return self.catalog.events(pending=pending)

    def prune(
        self,
        policy: str | Policy | None = None,
        *,
        dry_run: bool = False,
        symbols: str | Sequence[str] | None = None,
    ) -> Pruned:
        """Remove bars older than each symbol's retention (the policy's keep range for its
        layer); an interval its layer does not keep is removed whole. Symbols whose layer has
        no rule in the policy are untouched."""
        chosen = self._policy(policy)
        report = Pruned(dry_run=dry_run)
        rows = self.require_symbols(_names(symbols))
        per_interval: dict[Interval, dict[str, date | None]] = {i: {} for i in SPECS}
        shifts: dict[str, timedelta] = {}
        for sym in _target_symbols(rows):
            if chosen.for_layer(sym.layer) is None:
                continue
            shifts[sym.name] = sym.calendar.day_shift
            for interval in SPECS:
                keep = chosen.keep_window(sym.layer, interval, self.today, sym.calendar)
                per_interval[interval][sym.name] = keep.start if keep else None
        with FillLock(self.root):
            for interval, cutoffs in per_interval.items():
                prune_bars(self.store, interval, cutoffs, shifts, report)
                if not dry_run:
                    self.catalog.trim_ledger(interval, cutoffs)
        return report

    def _policy(self, policy: str | Policy | None) -> Policy:
        chosen = policy if policy is not None else self.config.default_policy
        if isinstance(chosen, Policy):
            return chosen
        if chosen is None:
            msg = (
                "no policy: pass --policy NAME (e.g. scanner_layers) "
                "or set default_policy in lake.yaml"
            )
            raise UsageError(msg)
        return load_policy(chosen, self.root)

    # -- quality -----------------------------------------------------------------------------

    def check(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval | Sequence[Interval] | None = None,
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        layer: int | None = None,
        policy: str | Policy | None = None,
        webhook: str | None = None,
    ) -> CheckResult:
        """Check stored bars against the calendar and the quality rules (``barlake.quality``);
        store the findings, raise ``data.gap.detected`` events for active symbols' gaps, and
        POST a summary to ``webhook`` (or lake.yaml's ``alerts.webhook_url``) when anything
        was found. Ranges are chosen as in ``plan``.

        >>> result = lake.check(interval=["1day", "1min"], days=30)    # doctest: +SKIP
        >>> [f.to_dict() for f in result.findings if f.severity == "error"]  # doctest: +SKIP
        """
        with self.catalog.session(read_only=True):
            rows, targets = self._selected(symbols, interval, days, start, end, layer, policy)
            found = monitor.find(self, targets, rows)
        url = webhook or self.config.alerts.webhook_url
        return monitor.record(self, targets, rows, found, webhook=url)

    def findings(self) -> pl.DataFrame:
        """The findings of the latest checks, worst first."""
        return self.catalog.findings()

    # -- jobs --------------------------------------------------------------------------------

    def status(self, job: str | None = None) -> dict[str, Any]:
        """The job row (the latest job when ``job`` is None) with its progress counts."""
        job_id = self.catalog.find_job(job)
        row = self.catalog.job(job_id)
        progress = self.catalog.progress(job_id)
        counts = dict(progress.group_by("status").len().iter_rows()) if progress.height else {}
        row["progress"] = {k: int(v) for k, v in sorted(counts.items())}
        row["records_loaded"] = int(progress["records_loaded"].sum()) if progress.height else 0
        return row

    def jobs(self, limit: int = 20) -> pl.DataFrame:
        """Recent jobs, newest first."""
        return self.catalog.jobs(limit)

    def errors(self, job: str | None = None) -> dict[str, dict[str, Any]]:
        """Per-symbol errors of a job: ``{symbol: {error, stage, interval, timestamp}}``."""
        job_id = self.catalog.find_job(job)
        failed = self.catalog.progress(job_id).filter(pl.col("status") == "failed")
        return {
            sym: {
                "error": err,
                "stage": stage,
                "interval": interval,
                "timestamp": ts.isoformat() if ts else None,
            }
            for sym, err, stage, interval, ts in failed.select(
                "symbol", "error_message", "stage", "interval", "completed_at"
            ).iter_rows()
        }

    # -- research: bars, coverage, report ---------------------------------------------------

    def bars(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval = "1day",
        start: date | None = None,
        end: date | None = None,
        days: int | None = None,
    ) -> pl.LazyFrame:
        """The stored bars of ``symbols`` (every stored symbol when None) at ``interval``, sorted
        by (symbol, ts), in the lake's schema.

        ``start``/``end`` (inclusive) or ``days`` (calendar days ending today) select by session
        date, as everywhere in barlake; with neither, all history. It is the same rows as the
        reader one-liners of the README, and DuckDB queries it by name (``duckdb.sql("select *
        from bars")``) or as a relation (``duckdb.from_arrow(bars)``).

        >>> lake.bars("AAPL,BRK/B", start=date(2024, 1, 2)).collect()  # doctest: +SKIP
        """
        name = spec(interval).name
        names = _names(symbols)
        window = requested_window(self.today, days=days, start=start, end=end)
        if window is None or not spec(name).intraday:
            return self.store.scan(name, names, window).sort(BAR_KEY)
        # Intraday bars belong to the session date of their exchange: one scan per calendar.
        rows = self.catalog.symbols(names).select("symbol", "calendar", "asset_class")
        shift_of = {s: calendar_for(c, a).day_shift for s, c, a in rows.iter_rows()}
        default = calendar_for(None).day_shift
        groups: dict[timedelta, list[str]] = {}
        for sym in names if names is not None else list(shift_of):
            groups.setdefault(shift_of.get(sym, default), []).append(sym)
        if names is None and set(groups) <= {default}:
            return self.store.scan(name, None, window, default).sort(BAR_KEY)
        if names is not None and len(groups) == 1:
            return self.store.scan(name, names, window, next(iter(groups))).sort(BAR_KEY)
        parts = [self.store.scan(name, syms, window, shift) for shift, syms in groups.items()]
        if names is None:  # stored symbols the catalog does not know: the default calendar
            unknown = ~pl.col("symbol").is_in(list(shift_of))
            parts.append(self.store.scan(name, None, window, default).filter(unknown))
        return pl.concat(parts).sort(BAR_KEY)

    def coverage(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        interval: Interval = "1day",
        days: int | None = None,
        start: date | None = None,
        end: date | None = None,
        layer: int | None = None,
        policy: str | Policy | None = None,
    ) -> Coverage:
        """What the lake holds per symbol and session at ``interval``: a symbols x sessions
        matrix of state codes (missing, stored, provisional, empty, not expected; see
        ``barlake.coverage``). Symbols and ranges are chosen as in ``gaps``, whose sessions are
        exactly the missing and provisional cells.

        >>> cov = lake.coverage(start=date(2024, 1, 2), end=date(2024, 6, 28))  # doctest: +SKIP
        >>> cov.summary(), cov.plot("coverage.png")                             # doctest: +SKIP
        """
        name = spec(interval).name
        with self.catalog.session(read_only=True):
            rows, targets = self._selected(symbols, name, days, start, end, layer, policy)
            expected = self.expected_windows(rows, {t.symbol: t.window for t in targets})
            by_calendar: dict[str, tuple[Calendar, dict[str, DateRange]]] = {}
            for sym, (cal, w) in expected.items():
                by_calendar.setdefault(cal.name, (cal, {}))[1][sym] = w
            cells: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}
            columns = [np.array([], dtype="datetime64[D]")]
            span = _span([t.window for t in targets])
            for cal, mine in by_calendar.values():
                here = _span(list(mine.values()))
                columns.append(cal.sessions_in(DateRange(span.start, here.end)))
                stored = self.store.days_by_symbol(name, list(mine), here, cal.day_shift)
                ledger = self.catalog.ledger(name, here, list(mine))
                ranges: dict[str, tuple[list[DateRange], list[DateRange]]] = {}
                for sym, lo, hi, final in ledger.select(
                    "symbol", "start_date", "end_date", "final"
                ).iter_rows():
                    ranges.setdefault(sym, ([], []))[0 if final else 1].append(DateRange(lo, hi))
                empty = np.array([], dtype="datetime64[D]")
                for sym, w in mine.items():
                    days_ = cal.sessions_in(w)
                    final_, provisional = ranges.get(sym, ([], []))
                    found_states = coverage_states(
                        days_, stored.get(sym, empty), final_, provisional
                    )
                    cells[sym] = (days_, found_states)
        sessions = np.unique(np.concatenate(columns))
        return assemble(name, rows["symbol"].to_list(), sessions, cells)

    def report(
        self, path: str | Path, symbols: str | Sequence[str] | None = None, **selection: Any
    ) -> Path:
        """Write a self-contained HTML page: coverage map and table, gaps, recent jobs and
        their errors (``selection``: ``interval``, ``days``, ``start``, ``end``, ``jobs``)."""
        from barlake import report

        return report.write(self, path, symbols=symbols, **selection)


def _as_date(value: np.datetime64) -> date:
    return date.fromisoformat(str(value))


def _span(windows: Sequence[DateRange]) -> DateRange:
    """The smallest range holding all ``windows`` (an empty range at the epoch when none)."""
    if not windows:
        return DateRange(date(1970, 1, 1), date(1970, 1, 1))
    return DateRange(min(w.start for w in windows), max(w.end for w in windows))


def _names(symbols: str | Sequence[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    return split_symbols(symbols if isinstance(symbols, str) else list(symbols))


def _target_symbols(rows: pl.DataFrame) -> list[TargetSymbol]:
    return [
        TargetSymbol(sym, int(layer or 0), calendar_for(cal, ac))
        for sym, layer, cal, ac in rows.select(
            "symbol", "layer", "calendar", "asset_class"
        ).iter_rows()
    ]


def _origins(
    chosen: dict[str, Target],
    expected: dict[str, tuple[Calendar, DateRange]],
    found: Sequence[gaps_.Gap],
) -> list[Origin]:
    by_symbol: dict[str, list[gaps_.Gap]] = {}
    for g in found:
        by_symbol.setdefault(g.symbol, []).append(g)
    out = []
    for sym, target in chosen.items():
        cal_w = expected.get(sym)
        note = ""
        if cal_w is None:
            note = "nothing expected: not listed then, or no session has opened yet"
        else:
            cal, window = cal_w
            every = cal.sessions_in(target.window)
            have = cal.sessions_in(window)
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
                cal_w[0].session_count(cal_w[1]) if cal_w else 0,
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


def _progress_rows(plan: Plan) -> pl.DataFrame:
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
            "data_type": ["bars"] * len(spans),
            "interval": [k[1] for k in spans],
            "start_date": [r.start for r in spans.values()],
            "end_date": [r.last for r in spans.values()],
            "status": ["pending"] * len(spans),
        },
        schema={
            "symbol": pl.String,
            "data_type": pl.String,
            "interval": pl.String,
            "start_date": pl.Date,
            "end_date": pl.Date,
            "status": pl.String,
        },
    )


def _run_until_signalled(scheduler: Scheduler, provider: Provider) -> JobResult:
    """Run the scheduler; SIGINT and SIGTERM cancel it cleanly (fetched bars are saved)."""

    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> JobResult:
        loop = asyncio.get_running_loop()
        loops.append(loop)
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, scheduler.interrupt)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                # No signal handlers outside the main thread (e.g. a notebook's worker thread)
                # or on platforms without them: the job then stops on KeyboardInterrupt only.
                pass
        try:
            return await scheduler.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await provider.aclose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    # Called inside a running event loop (a Jupyter kernel runs cells in one): run the job on a
    # loop of its own in a worker thread; interrupting the kernel stops the job cleanly.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="barlake-job") as pool:
        job = pool.submit(asyncio.run, main())
        try:
            return job.result()
        except KeyboardInterrupt:
            if loops:
                loops[0].call_soon_threadsafe(scheduler.interrupt)
            return job.result()


def _read_table(path: Path) -> pl.DataFrame:
    if not path.is_file():
        msg = f"no file at {path}"
        raise UsageError(msg)
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        if path.suffix.lower() in {".csv", ".txt"}:
            return pl.read_csv(path, infer_schema_length=0)
        if path.suffix.lower() == ".json":
            return pl.read_json(path)
    except Exception as exc:  # polars raises many kinds for malformed input
        msg = f"{path}: cannot be read ({str(exc).splitlines()[0]}); check the file's format"
        raise UsageError(msg) from exc
    msg = f"{path}: use a .csv, .parquet or .json file"
    raise UsageError(msg)


_SYMBOL_TYPES: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "name": pl.String(),
    "exchange": pl.String(),
    "asset_class": pl.String(),
    "calendar": pl.String(),
    "listed_on": pl.Date(),
    "delisted_on": pl.Date(),
    "market_cap": pl.Float64(),
}


def _typed_symbols(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """``frame`` with import columns cast to catalog types; bad values name column and row."""
    for name, dtype in _SYMBOL_TYPES.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        try:
            if dtype == pl.Date() and col.dtype == pl.String:
                cast = col.str.strptime(pl.Date, "%Y-%m-%d", strict=True)
            else:
                cast = col.cast(dtype, strict=True)
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            msg = f"{source}: column {name!r} has a value that is not a {dtype}"
            raise UsageError(msg) from None
        frame = frame.with_columns(cast.alias(name))
    if "calendar" in frame.columns:
        for cal in frame["calendar"].drop_nulls().unique().to_list():
            calendar_for(cal)
    return frame
