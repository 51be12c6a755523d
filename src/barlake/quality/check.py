"""The data-quality monitor behind ``lake check``: read the bars a selection covers, run the
``quality`` rules and the gap detection, store the findings, raise gap events, send an alert."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from barlake.calendars.calendar import Calendar, calendar_for
from barlake.catalog.schema import FINDINGS
from barlake.domain.events import EventType
from barlake.domain.intervals import Interval
from barlake.domain.ranges import DateRange
from barlake.quality import rules as quality
from barlake.quality.rules import Finding

if TYPE_CHECKING:
    from barlake.lake import Lake
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


def find(lake: Lake, targets: list[Target], rows: pl.DataFrame) -> list[Finding]:
    """Findings for the ``targets`` (symbol, interval, window) of the catalog ``rows``, worst
    first. Only reads: run it inside a read-only catalog session."""
    calendars = {
        sym: calendar_for(cal, ac)
        for sym, cal, ac in rows.select("symbol", "calendar", "asset_class").iter_rows()
    }
    by_interval: dict[Interval, dict[str, DateRange]] = {}
    for t in targets:
        by_interval.setdefault(t.interval, {})[t.symbol] = t.window
    findings: list[Finding] = []
    for interval, windows in by_interval.items():
        findings += _check_interval(lake, rows, interval, windows, calendars)
    return sorted(findings, key=lambda f: (_rank(f), f.symbol, f.interval, f.rule, f.first))


def record(
    lake: Lake,
    targets: list[Target],
    rows: pl.DataFrame,
    findings: list[Finding],
    *,
    webhook: str | None,
) -> CheckResult:
    """Store ``findings`` (replacing those of the checked series), raise gap events, alert."""
    check_id = str(uuid.uuid4())
    checked = pl.DataFrame(
        {"symbol": [t.symbol for t in targets], "interval": [t.interval for t in targets]},
        schema={"symbol": pl.String, "interval": pl.String},
    )
    stored = pl.DataFrame([f.to_dict() for f in findings], schema=FINDINGS)
    with lake.catalog.session():
        lake.catalog.replace_findings(check_id, checked, stored)
        gap_events = _gap_events(lake, rows, findings)
    result = CheckResult(check_id, findings, checked.height, gap_events)
    if webhook and findings:
        from barlake.quality import alerts

        result.alert_error = alerts.post(webhook, result.summary())
    return result


def _check_interval(
    lake: Lake,
    rows: pl.DataFrame,
    interval: Interval,
    windows: dict[str, DateRange],
    calendars: dict[str, Calendar],
) -> list[Finding]:
    expected = lake.expected_windows(rows, windows)
    out = [
        Finding(
            "gap",
            "error",
            g.symbol,
            g.interval,
            g.range.start.isoformat(),
            g.range.last.isoformat(),
            f"{g.sessions} session(s) missing",
        )
        for g in lake.gaps_for(rows, interval, windows, expected)
    ]
    if not expected:
        return out
    span = DateRange(
        min(w.start for _, w in expected.values()), max(w.end for _, w in expected.values())
    )
    symbols = sorted(expected)
    shift = next(iter(expected.values()))[0].day_shift
    # Unsorted: the rules that need order sort within each symbol, far cheaper than a sort of
    # millions of rows by (symbol, ts).
    bars = lake.store.scan(interval, symbols, span, shift).collect()
    out += quality.bar_rules(bars, interval)
    out += quality.timestamp_rule(bars, interval, calendars)
    bars = quality.sound(bars)
    if interval == "1day":
        out += quality.jump_rule(bars) + quality.stale_rule(bars)
    else:
        now = lake.clock()
        closed = min(
            (
                c.closed_before(
                    now, timedelta(minutes=lake.config.backfill.provisional_grace_minutes)
                )
                or span.start
            )
            for c, _ in expected.values()
        )
        out += quality.partial_rule(bars, interval, calendars, closed)
        daily = quality.sound(lake.store.scan("1day", symbols, span).collect())
        if not daily.is_empty():
            out += quality.daily_intraday_rule(daily, bars, interval, calendars)
    ledger = lake.catalog.ledger(interval, span, symbols if len(symbols) < 1000 else None)
    for sym, lo, hi in (
        ledger.filter(~pl.col("final")).select("symbol", "start_date", "end_date").iter_rows()
    ):
        if sym in expected:
            out.append(
                Finding(
                    "provisional",
                    "info",
                    sym,
                    interval,
                    lo.isoformat(),
                    (hi - timedelta(days=1)).isoformat(),
                    "fetched before its last session closed; the next fill fetches it again",
                )
            )
    return out


def _gap_events(lake: Lake, rows: pl.DataFrame, findings: list[Finding]) -> int:
    """Write a ``data.gap.detected`` event per gap of an active symbol not already pending."""
    active = set(rows.filter(pl.col("active"))["symbol"].to_list())
    pending = lake.catalog.pending_gap_events()
    payloads = []
    for f in findings:
        key = (f.symbol, f.interval, f.first, f.last)
        if f.rule == "gap" and f.symbol in active and key not in pending:
            sessions = int(f.message.split()[0])
            payloads.append(
                {
                    "symbol": f.symbol,
                    "interval": f.interval,
                    "first": f.first,
                    "last": f.last,
                    "sessions": sessions,
                }
            )
    return lake.catalog.add_events(EventType.GAP_DETECTED, payloads)


def _rank(f: Finding) -> int:
    return {"error": 0, "warning": 1, "info": 2}[f.severity]
