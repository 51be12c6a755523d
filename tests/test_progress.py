"""The progress a fill reports, driven on a fake clock: requests (one per page, retries too)
and bars in step with what the job records in the catalog, the waits it goes through (the
rate limit's window, a Retry-After), and a last report equal to the job's result."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from barlake import Lake, Progress, RateLimitError
from barlake.cli.progress import line
from barlake.fetch import scheduler
from barlake.fetch.progress import RATE_LIMIT, RETRY_AFTER, Waiting
from barlake.fetch.ratelimit import Timing
from barlake.jobs.backfill import RunOptions
from barlake.jobs.worker import ProgressLog
from barlake.providers.base import Page, Request
from barlake.providers.demo import DemoProvider

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}  # 19 sessions (Juneteenth)
LATENCY_S = 0.5
RETRY_AFTER_S = 7.0


class FakeTime:
    """A clock that moves only when someone sleeps; sleeping still yields to other tasks."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


class Slow(DemoProvider):
    """The demo, one symbol per request, answering after ``LATENCY_S`` of fake time; its
    ``throttle_at``-th call is answered 429 with a Retry-After."""

    def __init__(self, fake: FakeTime, throttle_at: int) -> None:
        super().__init__()
        self.capabilities = replace(self.capabilities, symbols_per_request=1, bars_per_page=10)
        self.fake, self.throttle_at, self.calls = fake, throttle_at, 0

    async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
        self.calls += 1
        await self.fake.sleep(LATENCY_S)
        if self.calls == self.throttle_at:
            raise RateLimitError("429 Too Many Requests", retry_after=RETRY_AFTER_S)
        return await super().fetch_page(request, cursor)


@dataclass(frozen=True)
class Seen:
    """One report and what the catalog held when it came."""

    report: Progress
    at: float
    requests_made: int
    job_bars: int
    progress_bars: int
    progress_requests: int


def open_lake(
    tmp_path: Path, provider: DemoProvider, rate_per_min: float, parallel: int = 1
) -> Lake:
    Lake.init(tmp_path, clock=lambda: NOW, providers={"demo": provider})
    settings = {
        "backfill": {"parallel_symbols": parallel, "flush_rows": 25, "shared_rate_limit": False},
        "providers": {"demo": {"rate_limit_per_min": rate_per_min}},
    }
    (tmp_path / "lake.yaml").write_text(yaml.safe_dump(settings))
    lake = Lake.open(tmp_path, clock=lambda: NOW, providers={"demo": provider})
    lake.add_symbols("AAA,BBB,CCC")
    return lake


def watch(lake: Lake, fake: FakeTime, seen: list[Seen]) -> Any:
    def on_progress(report: Progress) -> None:
        catalog = lake.catalog
        job = catalog.job(catalog.find_job())
        rows = catalog.progress(str(job["job_id"]))
        seen.append(
            Seen(
                report,
                fake.now,
                int(job["requests_made"]),
                int(job["bars_written"]),
                int(rows["records_loaded"].sum()),
                int(rows["requests"].sum()),
            )
        )

    return on_progress


def test_reports_count_every_request_and_wait_in_step_with_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saves come from flushes and the end alone: the background reporter, on wall time, would
    # save whenever the machine lets it.
    monkeypatch.setattr(scheduler, "REPORT_EVERY_S", 3600.0)
    fake = FakeTime()
    provider = Slow(fake, throttle_at=5)
    lake = open_lake(tmp_path, provider, rate_per_min=3)
    plan = lake.plan(interval="1day", **JUNE)
    # 19 daily bars a symbol at 10 a page: 2 requests each, as planned.
    assert (plan.total_ranges, plan.total_requests) == (3, 6)
    # The provider then serves pages of 5: 4 requests a symbol, which the plan did not know.
    provider.capabilities = replace(provider.capabilities, bars_per_page=5)
    seen: list[Seen] = []
    timing = Timing(fake.clock, fake.sleep)
    options = RunOptions(on_progress=watch(lake, fake, seen), timing=timing)
    result = lake.services.backfill.run(plan, options)

    assert result.status == "done"
    # 12 pages and the one call answered 429: 13 requests, as the provider counted them.
    assert (result.requests, result.retries, provider.calls) == (13, 1, 13)
    assert result.bars_written == 3 * 19
    reports = [s.report for s in seen]
    final = reports[-1]
    assert [r.done for r in reports] == [False] * (len(reports) - 1) + [True]
    # The last report is the result, and the catalog agrees.
    assert (final.requests, final.bars_written) == (result.requests, result.bars_written)
    assert (final.requests_expected, final.bars_fetched) == (13, 57)
    assert (seen[-1].requests_made, seen[-1].job_bars, seen[-1].progress_bars) == (13, 57, 57)
    # One report per call, as it ends: requests count 1, 2, ... 13.
    calls = [r for r in reports if not r.saved and r.waiting is None]
    assert [r.requests for r in calls] == list(range(1, 14))
    for s in seen:
        r = s.report
        # Bars written are those the catalog holds: its job row and its progress rows.
        assert r.bars_written == s.job_bars == s.progress_bars
        # Requests made are never more than expected; the job row has them after a save.
        assert r.requests <= r.requests_expected
        if r.saved:
            assert r.requests == s.requests_made
        # Each page of a symbol's request counts on its progress row (429 apart).
        assert s.progress_requests <= r.requests
    # Saves in between (flush_rows 25: after every second symbol) moved the bars on.
    written = [r.bars_written for r in reports]
    assert written == sorted(written)
    assert sorted(set(written)) == [0, 38, 57]
    # Expected requests grow as answers show more pages than planned, and end at the truth.
    expected = [r.requests_expected for r in reports]
    assert expected[0] == 6 and expected[-1] == 13 and max(expected) == 13

    waits = [(s.at, s.report.waiting) for s in seen if s.report.waiting is not None]
    reasons = [w.reason for _, w in waits]
    assert RATE_LIMIT in reasons and RETRY_AFTER in reasons
    # The first wait: 3 requests went out at 0, 0.5 and 1.0 s; the fourth waits for the first
    # to leave the 61 s window (60 s + 1 s margin).
    first_at, first = waits[0]
    assert first == Waiting(RATE_LIMIT, pytest.approx(61 - 3 * LATENCY_S))
    assert first_at == pytest.approx(1000 + 3 * LATENCY_S)
    # The 5th call is answered 429 with Retry-After 7: everyone waits that long.
    retry = next(w for _, w in waits if w.reason == RETRY_AFTER)
    assert retry.seconds == pytest.approx(RETRY_AFTER_S)
    # Reports say so, and a call clears the wait.
    waiting = next(r for r in reports if r.waiting is not None)
    assert "waiting" in str(waiting) and "rate limit" in str(waiting)
    after = reports[reports.index(waiting) + 1]
    assert after.waiting is None and after.requests == waiting.requests + 1
    # Time on the job's clock: the elapsed seconds of the last report are the fake clock's.
    assert final.elapsed_s == pytest.approx(fake.now - 1000)
    assert final.eta_s == 0.0
    assert str(final).startswith("fill: 13/13 requests, 57 bars fetched, 57 written")


def test_the_eta_waits_out_the_wait_and_the_windows_the_rest_needs() -> None:
    # 30 of 75 requests went out in the first second, at 30 a window of 61 s.
    p = Progress(
        requests=30,
        requests_expected=75,
        bars_fetched=0,
        bars_written=0,
        elapsed_s=1.0,
        limit=30,
        window_s=61.0,
    )
    assert p.rate == 30.0
    # The 45 left need two more windows: one a window from now, the rest a window later.
    assert p.eta_s == pytest.approx(61.0)
    waiting = replace(p, waiting=Waiting(RATE_LIMIT, 60.0))
    assert waiting.eta_s == pytest.approx(121.0)
    # Unlimited: the rate so far; before any rate, nothing to say.
    assert replace(p, limit=None).eta_s == pytest.approx(1.5)
    assert replace(p, limit=None, requests=0, elapsed_s=0.0).eta_s is None
    assert replace(p, done=True).eta_s == 0.0


def test_the_worker_logs_progress_every_30_s_and_when_a_new_wait_starts() -> None:
    lines: list[tuple[str, dict[str, Any]]] = []
    log = ProgressLog(lambda event, fields: lines.append((event, fields)), "r1")
    at = Progress(requests=1, requests_expected=10, bars_fetched=5, bars_written=0, elapsed_s=1)
    log(at)  # nothing to say yet
    log(replace(at, waiting=Waiting(RATE_LIMIT, 0.2)))  # too short to mention
    log(replace(at, requests=3, elapsed_s=2, waiting=Waiting(RATE_LIMIT, 58)))
    log(replace(at, requests=4, elapsed_s=60, waiting=Waiting(RATE_LIMIT, 1)))  # again: 30 s on
    log(replace(at, requests=4, elapsed_s=61, waiting=Waiting(RATE_LIMIT, 30)))  # the same wait
    log(replace(at, requests=5, elapsed_s=62, waiting=Waiting(RETRY_AFTER, 7)))
    log(replace(at, requests=10, elapsed_s=200, done=True))  # the worker's done line says it
    assert [(f["requests"], f.get("waiting_for")) for _, f in lines] == [
        (3, RATE_LIMIT),
        (4, RATE_LIMIT),
        (5, RETRY_AFTER),
    ]
    assert {e for e, _ in lines} == {"progress"}
    assert lines[0][1] == {
        "request": "r1",
        "requests": 3,
        "requests_expected": 10,
        "bars_written": 0,
        "waiting_for": RATE_LIMIT,
        "wait_s": 58.0,
    }


def test_the_bar_shows_bars_rate_time_left_and_the_wait() -> None:
    p = Progress(
        requests=30,
        requests_expected=47,
        bars_fetched=300_000,
        bars_written=0,
        elapsed_s=2.0,
        waiting=Waiting(RATE_LIMIT, 59.0),
        limit=30,
        window_s=61.0,
    )
    assert line(p) == (
        "300,000 bars (0 written), 15.0 req/s, ETA 0:00:59, waiting 59s for the rate limit"
    )
    retry = replace(p, waiting=Waiting(RETRY_AFTER, 7.0), limit=None)
    assert line(retry).endswith("ETA 0:00:07, waiting 7.0s as the provider asked (Retry-After)")
    assert line(replace(p, requests=47, done=True)) == "300,000 bars (0 written), 23.5 req/s"


def test_an_answer_that_comes_while_another_request_waits_still_says_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler, "REPORT_EVERY_S", 3600.0)
    fake = FakeTime()

    class Uneven(Slow):
        async def fetch_page(self, request: Request, cursor: str | None = None) -> Page:
            # BBB's answer takes 2 s; the others' 0.5 s.
            await self.fake.sleep(1.5 if "BBB" in request.symbols else 0.0)
            return await super().fetch_page(request, cursor)

    provider = Uneven(fake, throttle_at=0)
    provider.capabilities = replace(provider.capabilities, bars_per_page=100)
    lake = open_lake(tmp_path, provider, rate_per_min=2, parallel=2)
    plan = lake.plan(interval="1day", **JUNE)
    assert plan.total_requests == 3
    seen: list[Seen] = []
    timing = Timing(fake.clock, fake.sleep)
    lake.services.backfill.run(plan, RunOptions(on_progress=watch(lake, fake, seen), timing=timing))
    # The workers send AAA and BBB; AAA's answer comes first and its worker's next request
    # (CCC) waits for the window (2 a minute); BBB's answer comes while it waits. The report
    # of that answer still says the job waits for the rate limit: only a call going out ends
    # the wait, not another request's answer.
    reports = [s.report for s in seen]
    first = next(i for i, r in enumerate(reports) if r.waiting is not None)
    assert reports[first].requests == 2 and reports[first].waiting.reason == RATE_LIMIT
    answer = reports[first + 1]
    assert answer.requests == 2 and answer.waiting is not None
    assert answer.waiting.reason == RATE_LIMIT
    assert reports[-1].requests == 3 and reports[-1].waiting is None
