"""The data-quality monitor behind ``lake check``: read the bars a selection covers, run the
``quality`` rules and the gap detection, store the findings, raise gap events, send an alert."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

import polars as pl

from barlake.calendars.calendar import Calendar
from barlake.catalog.repositories import Catalog
from barlake.catalog.schema import FINDINGS
from barlake.clock import Clock
from barlake.coverage.finder import Expected, GapFinder, span_of
from barlake.coverage.gaps import Gap
from barlake.domain.actions import COLUMNS as ACTION_COLUMNS
from barlake.domain.actions import SHARE_TYPES, SPLIT_ADJUSTED_SOURCES
from barlake.domain.datasets import TRADES
from barlake.domain.events import EventType
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange
from barlake.quality import repair
from barlake.quality import rules as quality
from barlake.quality.rules import Finding
from barlake.quality.tradecheck import trades_vs_bars
from barlake.storage.trades import TradeStore
from barlake.universe.members import Member

if TYPE_CHECKING:
    from barlake.retention.targets import Target


@dataclass
class CheckResult:
    """What a check found; ``lake check --json`` prints ``findings``."""

    check_id: str
    findings: list[Finding]
    checked: int
    gap_events: int = 0
    alert_error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    def summary(self) -> dict[str, Any]:
        by_rule: dict[str, int] = {}
        for f in self.findings:
            by_rule[f.rule] = by_rule.get(f.rule, 0) + 1
        by_severity = {
            s: sum(1 for f in self.findings if f.severity == s)
            for s in ("error", "warning", "info")
        }
        return {
            "check_id": self.check_id,
            "series_checked": self.checked,
            "findings": len(self.findings),
            "by_severity": by_severity,
            "by_rule": dict(sorted(by_rule.items())),
            "gap_events": self.gap_events,
            "first_findings": [f.to_dict() for f in self.findings[:50]],
        }


class BarReader(Protocol):
    """Stored bars (``storage.store.Store``)."""

    def scan(
        self,
        interval: Interval,
        symbols_: list[str] | None = None,
        window: DateRange | None = None,
        day_shift: timedelta = ...,
    ) -> pl.LazyFrame: ...

    def keyless(
        self, interval: Interval, symbols_: list[str] | None, window: DateRange | None
    ) -> pl.DataFrame: ...


class Checker:
    """Runs the quality rules and the gap detection over a selection's bars."""

    def __init__(
        self,
        *,
        finder: GapFinder,
        bars: BarReader,
        catalog: Catalog,
        clock: Clock,
        grace: timedelta,
        trades: TradeStore | None = None,
    ) -> None:
        self.finder, self.bars, self.catalog = finder, bars, catalog
        self.clock, self.grace = clock, grace
        #: The trades files: their gaps, and the rule comparing them with the minute bars.
        self.trades = trades

    def check(
        self, targets: list[Target], found: Sequence[Member], *, webhook: str | None
    ) -> CheckResult:
        """Findings for the ``targets`` of the members ``found``, stored (replacing those of
        the checked series) with gap events for active symbols, and an alert when asked."""
        findings, gaps = self.find(targets, found)
        return self.record(targets, found, findings, gaps, webhook=webhook)

    def find(
        self, targets: list[Target], found: Sequence[Member]
    ) -> tuple[list[Finding], list[Gap]]:
        """Findings for ``targets``, worst first, and the gaps among them. Only reads."""
        calendars = {m.name: m.calendar for m in found}
        findings: list[Finding] = []
        gaps: list[Gap] = []
        for interval, windows in _by_interval(targets).items():
            expected = self.finder.expected(found, windows)
            here = self.finder.gaps(interval, expected)
            gaps += here
            findings += [_gap_finding(g) for g in here]
            findings += self._rules(interval, expected, calendars)
        trade_gaps, trade_findings = self._trades(targets, found)
        gaps += trade_gaps
        findings += trade_findings
        findings += self._unanswered(targets)
        ranked = sorted(findings, key=lambda f: (_rank(f), f.symbol, f.interval, f.rule, f.first))
        return ranked, gaps

    def _trades(
        self, targets: list[Target], found: Sequence[Member]
    ) -> tuple[list[Gap], list[Finding]]:
        """The trades targets' gaps, and where stored 1min bars exist for sessions with
        trades, the comparison of both (``quality.tradecheck``)."""
        windows = {t.symbol: t.window for t in targets if t.interval == TRADES}
        if not windows or self.trades is None:
            return [], []
        finder = GapFinder(self.trades, self.catalog, self.clock)
        expected = finder.expected(found, windows)
        gaps = finder.gaps(cast(Interval, TRADES), expected)
        findings = [_gap_finding(g) for g in gaps]
        for sym, e in sorted(expected.items()):
            sessions = self.trades.stored([sym], e.window).get(sym, [])
            if not sessions:
                continue
            shift = e.calendar.day_shift
            bars = (
                self.bars.scan("1min", [sym], e.window, shift)
                .filter((pl.col("ts") + shift).dt.date().is_in(sessions))
                .collect()
            )
            if bars.is_empty():
                continue  # no minute bars to compare with
            built = self.trades.bars([sym], e.window, "1min")
            findings += trades_vs_bars(sym, bars.sort("ts"), built)
        return gaps, findings

    def _unanswered(self, targets: list[Target]) -> list[Finding]:
        """A warning for each series whose latest fetch came back empty for every session
        from a provider that has not shown the symbol exists (the fill's warning)."""
        if not targets:
            return []
        names = sorted({t.symbol for t in targets})
        wanted = {(t.symbol, t.interval) for t in targets}
        rows = self.catalog.warnings(sorted({t.interval for t in targets}), names)
        return [
            Finding(
                "no_data",
                "warning",
                r["symbol"],
                r["interval"],
                r["start_date"].isoformat(),
                r["end_date"].isoformat(),
                str(r["error_message"]),
            )
            for r in rows
            if (r["symbol"], r["interval"]) in wanted
        ]

    def record(
        self,
        targets: list[Target],
        found: Sequence[Member],
        findings: list[Finding],
        gaps: Sequence[Gap],
        *,
        webhook: str | None,
    ) -> CheckResult:
        check_id = str(uuid.uuid4())
        # Rows of no known symbol are reported under "" (``key_rule``): checked per interval.
        series = [(t.symbol, t.interval) for t in targets]
        series += [("", i) for i in sorted({t.interval for t in targets})]
        checked = pl.DataFrame(
            {"symbol": [s for s, _ in series], "interval": [i for _, i in series]},
            schema={"symbol": pl.String, "interval": pl.String},
        )
        stored = pl.DataFrame([f.to_dict() for f in findings], schema=FINDINGS)
        active = {m.name for m in found if m.active}
        with self.catalog.session():
            self.catalog.replace_findings(check_id, checked, stored)
            gap_events = self._gap_events(active, gaps)
        result = CheckResult(check_id, findings, len(targets), gap_events)
        if webhook and findings:
            from barlake.quality import alerts

            result.alert_error = alerts.post(webhook, result.summary())
        return result

    def bad_sessions(
        self, targets: list[Target], found: Sequence[Member]
    ) -> dict[tuple[str, Interval], list[date]]:
        """The sessions of ``targets`` whose stored bars a check flags (``quality.repair``),
        per (symbol, interval): what ``lake fill --repair`` fetches again. Only reads."""
        calendars = {m.name: m.calendar for m in found}
        out: dict[tuple[str, Interval], list[date]] = {}
        for interval, windows in _by_interval(targets).items():
            expected = self.finder.expected(found, windows)
            if not expected:
                continue
            span, bars = self._read(interval, expected)
            closed = None if interval == "1day" else self._closed(expected, span)
            bad = repair.bad_sessions(bars, interval, calendars, closed)
            for sym, day in bad.iter_rows():
                if sym in expected and day in expected[sym].window:
                    out.setdefault((sym, interval), []).append(day)
        return out

    def _read(
        self, interval: Interval, expected: dict[str, Expected]
    ) -> tuple[DateRange, pl.DataFrame]:
        """The span of ``expected`` and the stored bars of its symbols over it."""
        span = span_of(e.window for e in expected.values())
        shift = next(iter(expected.values())).calendar.day_shift
        # Unsorted: the rules that need order sort within each symbol, far cheaper than a sort
        # of millions of rows by (symbol, ts).
        return span, self.bars.scan(interval, sorted(expected), span, shift).collect()

    def _closed(self, expected: dict[str, Expected], span: DateRange) -> date:
        """The last session closed (with the grace) on every calendar of ``expected``."""
        now = self.clock()
        return min(
            (e.calendar.closed_before(now, self.grace) or span.start) for e in expected.values()
        )

    def _rules(
        self,
        interval: Interval,
        expected: dict[str, Expected],
        calendars: dict[str, Calendar],
    ) -> list[Finding]:
        if not expected:
            return []
        symbols = sorted(expected)
        span, bars = self._read(interval, expected)
        out = quality.bar_rules(bars, interval)
        out += quality.duplicate_rule(bars, interval)
        out += quality.key_rule(self.bars.keyless(interval, symbols, span), interval)
        out += quality.timestamp_rule(bars, interval, calendars)
        out += quality.mixed_rule(bars, interval, SPLIT_ADJUSTED_SOURCES)
        bars = quality.sound(bars)
        if interval == "1day":
            splits = self._splits(symbols, span)
            out += quality.jump_rule(bars, splits) + quality.stale_rule(bars)
            # Split-adjusted rows show no jump at a split, by design: only raw rows tell.
            raw = bars.filter(~pl.col("source").is_in(list(SPLIT_ADJUSTED_SOURCES)))
            out += quality.action_rule(raw, splits)
        else:
            out += quality.partial_rule(bars, interval, calendars, self._closed(expected, span))
            daily = quality.sound(self.bars.scan("1day", symbols, span).collect())
            if not daily.is_empty():
                out += quality.daily_intraday_rule(daily, bars, interval, calendars)
        for sym, cover in self.finder.covers(interval, span, symbols).items():
            for r in cover.refetch:
                out.append(
                    Finding(
                        "provisional",
                        "info",
                        sym,
                        interval,
                        r.start.isoformat(),
                        r.last.isoformat(),
                        "fetched before its last session closed; the next fill fetches it again",
                    )
                )
        return out

    def _splits(self, symbols: list[str], span: DateRange) -> pl.DataFrame:
        """The share actions on record for ``symbols`` with ex-dates in ``span``."""
        rows = self.catalog.action_rows(
            symbols, start=span.start, end=span.last, types=list(SHARE_TYPES)
        )
        schema = {k: ACTION_COLUMNS[k] for k in ("symbol", "type", "ex_date", "ratio", "source")}
        return pl.DataFrame([{k: r[k] for k in schema} for r in rows], schema=schema).unique(
            ["symbol", "type", "ex_date"], keep="first", maintain_order=True
        )

    def _gap_events(self, active: set[str], gaps: Sequence[Gap]) -> int:
        """Write a ``data.gap.detected`` event per gap of an active symbol not already pending."""
        pending = self.catalog.pending_gap_events()
        payloads = []
        for g in gaps:
            d = g.to_dict()
            key = (g.symbol, g.interval, d["first"], d["last"])
            if g.symbol in active and key not in pending:
                payloads.append(d)
        return self.catalog.add_events(EventType.GAP_DETECTED, payloads)


def _by_interval(targets: list[Target]) -> dict[Interval, dict[str, DateRange]]:
    by_interval: dict[Interval, dict[str, DateRange]] = {}
    for t in targets:
        if t.interval != TRADES:  # trades have their own rule (``trades_rule``)
            by_interval.setdefault(t.interval, {})[t.symbol] = t.window
    return by_interval


def _gap_finding(g: Gap) -> Finding:
    return Finding(
        "gap",
        "error",
        g.symbol,
        g.interval,
        g.range.start.isoformat(),
        g.range.last.isoformat(),
        f"{g.sessions} session(s) missing",
    )


def _rank(f: Finding) -> int:
    return {"error": 0, "warning": 1, "info": 2}[f.severity]
