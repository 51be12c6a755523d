"""``lake plan``'s time estimate: the requests replayed inside the rate limit's window, with
the provider's latency and the fill's workers; the latency measured by past jobs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from barlake import Lake
from barlake.planning.duration import WRITE_S_PER_BAR, Pace, seconds

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)


def test_a_window_full_of_requests_waits_for_the_next_window() -> None:
    # 45 one-page ranges at 30 a minute, 10 in flight, 50 ms each: three rounds of ten at 0,
    # 0.05 and 0.1 s fill the window; the rest go out when the first leave it (60 s + 1 s).
    pace = Pace(latency_s=0.05, parallel=10)
    assert seconds([1] * 45, 30, pace) == pytest.approx(61.1)
    # The rate limit as plans counted it before said 60 s; no latency, no margin: 60.
    assert seconds([1] * 45, 30, Pace(margin_s=0)) == pytest.approx(60.0)


def test_the_pages_of_one_range_go_one_after_the_other() -> None:
    # Unlimited rate: 12 pages of one range take 12 answers, however many workers there are.
    assert seconds([12], 0, Pace(latency_s=0.5, parallel=10)) == pytest.approx(6.0)
    # Two ranges on two workers: the longer one decides.
    assert seconds([10, 6], 0, Pace(latency_s=0.5, parallel=2)) == pytest.approx(5.0)
    # One worker: one after the other.
    assert seconds([10, 6], 0, Pace(latency_s=0.5, parallel=1)) == pytest.approx(8.0)


def test_the_bars_buffered_after_the_last_answer_are_written_on_top() -> None:
    pace = Pace(latency_s=0.5, write_s_per_bar=2e-6, flush_rows=1_000_000)
    assert seconds([4], 0, pace, last_bars=400_000) == pytest.approx(2.0 + 0.8)
    # At most flush_rows are left to write: the rest was written while fetching.
    assert seconds([4], 0, pace, last_bars=3_000_000) == pytest.approx(2.0 + 2.0)


def test_a_limit_below_one_a_minute_stretches_the_window() -> None:
    # 0.5 a minute: one request per 120 s (+1 s margin), as the rate limiter counts it.
    assert seconds([1, 1, 1], 0.5, Pace()) == pytest.approx(242.0)
    assert seconds([], 30, Pace(latency_s=1)) == 0.0
    assert seconds([3], float("inf"), Pace()) == 0.0


def test_the_estimate_uses_the_latency_past_jobs_measured(tmp_path: Path) -> None:
    Lake.init(tmp_path, clock=lambda: NOW)
    config = {"providers": {"demo": {"options": {"latency_ms": 40}}}}
    (tmp_path / "lake.yaml").write_text(yaml.safe_dump(config))
    lake = Lake.open(tmp_path, clock=lambda: NOW)
    lake.add_symbols("AAA")
    june = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
    first = lake.plan(interval="1min", **june)
    # 19 sessions of 390 bars in pages of 50,000, ranges of at most 31 days: one request.
    assert (first.total_ranges, first.total_requests) == (1, 1)
    estimate = first.to_dict()["estimate"]
    assert estimate["latency_s"] == 0.04 and "typical" in estimate["latency_source"]
    # One answer, then the write of its 7,410 bars at the typical pace.
    assert first.estimated_seconds == pytest.approx(0.04 + 7410 * WRITE_S_PER_BAR)
    result = lake.run_plan(first)
    assert (result.requests, result.bars_written) == (1, 7410)
    job = lake.catalog.job(result.job_id)
    assert job["latency_ms"] >= 40 and job["write_us_per_bar"] > 0
    again = lake.plan(interval="1day", **june)
    assert again.pace.latency_source == "measured over the latest 1 demo job(s)"
    assert again.pace.latency_s == pytest.approx(job["latency_ms"] / 1000)
    assert again.pace.write_s_per_bar == pytest.approx(job["write_us_per_bar"] / 1e6)
    assert again.estimated_seconds == pytest.approx(
        again.pace.latency_s + 19 * again.pace.write_s_per_bar
    )
