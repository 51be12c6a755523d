"""The work queue and the worker, in one process: requests, claims, leases, events, schedules."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from tests.conftest import clock

from barlake.domain.events import EventType
from barlake.errors import ConfigError, NotFoundError, UnknownSymbolError, UsageError
from barlake.lake import Lake
from barlake.liveness import HOST
from barlake.storage.lock import FillLock

JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}


def served(lake: Lake, **kwargs):
    """Run a worker until the queue is empty; its log lines."""
    lines: list[tuple[str, dict]] = []
    lake.worker(log=lambda e, f: lines.append((e, f)), **kwargs).run(once=True)
    return lines


def bar_count(lake: Lake, interval: str = "1day") -> int:
    return lake.bars(interval=interval).select("symbol").collect().height


def demo_requests(lake: Lake) -> int:
    return sum(int(j["requests_made"]) for j in lake.jobs(100).to_dicts())


# -- requests -------------------------------------------------------------------------------


def test_a_queued_request_is_planned_and_run_by_the_worker(lake):
    lake.add_symbols("AAPL,MSFT")
    request, new = lake.queue.add("AAPL,MSFT", interval="1day", **JUNE)
    assert new
    assert (request.state, request.kind, request.provider, request.source) == (
        "queued",
        "fill",
        "demo",
        "cli",
    )
    assert request.selection["symbols"] == ["AAPL", "MSFT"]
    assert request.job_id is None

    lines = served(lake)
    done = lake.queue.get(request.id)
    assert done.state == "done"
    assert done.attempts == 1
    assert done.job_id is not None
    status = lake.status(done.job_id)
    assert status["status"] == "done"
    assert (
        status["bars_written"] == bar_count(lake) == 2 * 19
    )  # June 2024: 19 sessions (Juneteenth closed)
    assert [e for e, _ in lines] == ["started", "claimed", "done", "stopped"]
    assert lines[2][1]["bars_written"] == 38


def test_the_same_selection_queued_twice_is_one_request_while_it_waits(lake):
    lake.add_symbols("AAPL")
    first, new1 = lake.queue.add("AAPL", interval="1day", **JUNE)
    again, new2 = lake.queue.add(["AAPL"], interval=["1day"], **JUNE)
    other, new3 = lake.queue.add("AAPL", interval="1day", days=10)
    assert (new1, new2, new3) == (True, False, True)
    assert again.id == first.id
    assert other.id != first.id
    served(lake)
    # Once it has run, the same selection is new work again (planned then: nothing missing).
    later, new4 = lake.queue.add("AAPL", interval="1day", **JUNE)
    assert new4
    assert later.id != first.id


def test_an_idempotency_key_queues_once_whatever_became_of_the_request(lake):
    lake.add_symbols("AAPL")
    first, _ = lake.queue.add("AAPL", interval="1day", key="nightly-2024-06", **JUNE)
    served(lake)
    again, new = lake.queue.add("AAPL", interval="1day", days=5, key="nightly-2024-06")
    assert not new
    assert again.id == first.id
    assert again.state == "done"


def test_planning_happens_at_claim_so_a_late_request_fetches_only_what_is_missing(lake):
    lake.add_symbols("AAPL,MSFT")
    request, _ = lake.queue.add("AAPL,MSFT", interval="1day", **JUNE)
    lake.fill("AAPL,MSFT", interval="1day", **JUNE)  # someone filled it meanwhile
    before = demo_requests(lake)
    served(lake)
    job = lake.status(lake.queue.get(request.id).job_id)
    assert job["requests_made"] == 0
    assert demo_requests(lake) == before


def test_higher_priority_is_claimed_first_then_oldest(lake):
    lake.add_symbols("AAPL,MSFT,SPY")
    low, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
    high, _ = lake.queue.add("MSFT", interval="1day", priority=5, **JUNE)
    low2, _ = lake.queue.add("SPY", interval="1day", **JUNE)
    lines = served(lake)
    claimed = [f["request"] for e, f in lines if e == "claimed"]
    assert claimed == [high.id, low.id, low2.id]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        (("NOPE",), {"interval": "1day"}, UnknownSymbolError, "NOPE"),
        (("AAPL",), {"interval": "2day"}, UsageError, "2day"),
        (("AAPL",), {"start": date(2024, 6, 28), "end": date(2024, 6, 3)}, UsageError, "before"),
        (("AAPL",), {"policy": "no_such_policy"}, UsageError, "no_such_policy"),
        (("AAPL",), {"provider": "nosuch"}, UsageError, "nosuch"),
        (("AAPL",), {"priority": 10_000}, UsageError, "priority"),
        (("AAPL",), {"kind": "explode"}, UsageError, "explode"),
        (("AAPL",), {"days": 3, "start": date(2024, 6, 3)}, UsageError, "--days"),
        (("AAPL",), {"key": ""}, UsageError, "idempotency key"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_queued(lake, args, kwargs, error, words):
    lake.add_symbols("AAPL")
    with pytest.raises(error, match=None) as raised:
        lake.queue.add(*args, **kwargs)
    assert words in str(raised.value)
    assert lake.queue.list() == []


def test_unknown_request_ids_and_ended_requests(lake):
    lake.add_symbols("AAPL")
    with pytest.raises(NotFoundError, match="lake queue list"):
        lake.queue.get("0000")
    with pytest.raises(NotFoundError):
        lake.queue.get("")
    request, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
    assert lake.queue.get(request.id[:6]).id == request.id
    cancelled = lake.queue.cancel(request.id[:8])
    assert cancelled.state == "cancelled"
    with pytest.raises(UsageError, match="already cancelled"):
        lake.queue.cancel(request.id)
    assert served(lake)[1][0] == "idle" or lake.queue.get(request.id).state == "cancelled"
    assert lake.jobs().is_empty()
    with pytest.raises(UsageError, match="unknown request state"):
        lake.queue.list("running")


def test_depth_counts_every_state(lake):
    lake.add_symbols("AAPL,MSFT")
    a, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
    lake.queue.add("MSFT", interval="1day", **JUNE)
    lake.queue.cancel(a.id)
    assert lake.queue.depth() == {
        "queued": 1,
        "claimed": 0,
        "done": 0,
        "failed": 0,
        "cancelled": 1,
    }


# -- claims and leases ------------------------------------------------------------------------


def test_a_claim_is_taken_by_one_worker_only(lake):
    lake.add_symbols("AAPL")
    lake.queue.add("AAPL", interval="1day", **JUNE)
    first = lake.catalog.claim("w1", HOST, os.getpid())
    second = lake.catalog.claim("w2", HOST, os.getpid())
    assert first is not None
    assert second is None


def _claimed_by(lake: Lake, host: str, pid: int, beat_age_s: float) -> str:
    lake.add_symbols("AAPL")
    request, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
    lake.catalog.claim("gone", host, pid)
    with lake.catalog.connect() as con:
        con.execute(
            "UPDATE backfill_requests SET heartbeat_at = now() - to_seconds(?)",
            [beat_age_s],
        )
    return request.id


def test_a_claim_whose_process_died_goes_back_to_the_queue_and_runs_once(lake):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    request_id = _claimed_by(lake, HOST, dead, beat_age_s=0)
    lines = served(lake)
    assert ("requeued", {"request": request_id, "reason": "its worker stopped"}) in lines
    done = lake.queue.get(request_id)
    assert done.state == "done"
    assert done.attempts == 2
    assert len(lake.jobs().to_dicts()) == 1


def test_a_live_claim_on_another_host_is_kept_until_its_lease_runs_out(lake):
    request_id = _claimed_by(lake, "elsewhere", 1, beat_age_s=5)
    assert lake.catalog.requeue_abandoned(timedelta(seconds=60)) == []
    assert lake.queue.get(request_id).state == "claimed"
    assert lake.catalog.requeue_abandoned(timedelta(seconds=2)) == [request_id]
    assert lake.queue.get(request_id).state == "queued"


def test_the_worker_waits_while_another_process_holds_the_fill_lock(lake):
    lake.add_symbols("AAPL")
    request, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
    worker = lake.worker()
    holder_ready, release = threading.Event(), threading.Event()

    def hold():
        with FillLock(lake.root):
            holder_ready.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    holder_ready.wait(5)
    try:
        assert worker.turn().value == "busy"
        assert lake.queue.get(request.id).state == "queued"
    finally:
        release.set()
        t.join()
    assert worker.turn().value == "served"
    assert lake.queue.get(request.id).state == "done"


SPRING = {"start": date(2024, 3, 1), "end": date(2024, 6, 28)}


def slow_lake(lake_root) -> Lake:
    """A lake whose demo provider takes 300 ms a page: a 1min fill of four symbols over
    SPRING is three pages, long enough to stop in the middle."""
    (lake_root / "lake.yaml").write_text(
        yaml.safe_dump({"providers": {"demo": {"options": {"latency_ms": 300}}}})
    )
    lake = Lake.open(lake_root, clock=clock)
    lake.add_symbols("AAPL,MSFT,NVDA,SPY")
    return lake


def wait_for_job(lake: Lake, request_id: str) -> str:
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    while datetime.now(UTC) < deadline:
        job = lake.queue.get(request_id).job_id
        if job is not None:
            return job
        threading.Event().wait(0.02)
    raise AssertionError("the worker never started a job")


def test_cancelling_a_running_request_stops_its_job_and_keeps_what_it_fetched(lake_root):
    lake = slow_lake(lake_root)
    request, _ = lake.queue.add("AAPL,MSFT,NVDA,SPY", interval="1min", **SPRING)
    worker = lake.worker(concurrency=1)
    # Beat often, so the cancel is seen within a fraction of a second.
    worker.config = worker.config.model_copy(update={"lease_s": 0.2})
    t = threading.Thread(target=worker.run, kwargs={"once": True})
    t.start()
    wait_for_job(lake, request.id)
    lake.queue.cancel(request.id)
    t.join(30)
    assert not t.is_alive()
    ended = lake.queue.get(request.id)
    assert ended.state == "cancelled"
    job = lake.status(ended.job_id)
    assert job["status"] == "interrupted"
    assert bar_count(lake, "1min") == job["bars_written"]
    assert lake.gaps("AAPL,MSFT,NVDA,SPY", interval="1min", **SPRING) != []


def test_stop_releases_the_request_in_flight_and_a_restart_finishes_it(lake_root):
    lake = slow_lake(lake_root)
    request, _ = lake.queue.add("AAPL,MSFT,NVDA,SPY", interval="1min", **SPRING)
    worker = lake.worker(concurrency=1)
    t = threading.Thread(target=worker.run)
    t.start()
    first_job = wait_for_job(lake, request.id)
    worker.stop()
    t.join(30)
    assert not t.is_alive()
    released = lake.queue.get(request.id)
    assert released.state == "queued"
    first = lake.status(first_job)
    assert first["status"] == "interrupted"
    assert bar_count(lake, "1min") == first["bars_written"]

    served(lake)
    done = lake.queue.get(request.id)
    assert (done.state, done.attempts) == ("done", 2)
    assert done.job_id != first_job
    assert lake.gaps("AAPL,MSFT,NVDA,SPY", interval="1min", **SPRING) == []
    bars = lake.bars(interval="1min").collect()
    assert bars.height == bars.unique(["symbol", "ts"]).height


def test_a_request_queued_in_this_process_wakes_its_idle_worker_at_once(lake):
    lake.add_symbols("AAPL")
    worker = lake.worker()
    # A poll this long would outlast the wait below: only the doorbell can wake the worker.
    worker.config = worker.config.model_copy(update={"poll_s": 3600})
    lines = []
    worker.log = lambda event, fields: lines.append(event)
    t = threading.Thread(target=worker.run)
    t.start()
    try:
        for _ in range(600):
            if "idle" in lines:
                break
            time.sleep(0.05)
        request, _ = lake.queue.add("AAPL", interval="1day", **JUNE)
        for _ in range(600):
            if lake.queue.get(request.id).state == "done":
                break
            time.sleep(0.05)
        assert lake.queue.get(request.id).state == "done"
    finally:
        worker.stop()  # also wakes it from its wait
        t.join(30)
    assert not t.is_alive()


# -- events become work -------------------------------------------------------------------------


def test_promotions_queue_exactly_what_the_new_retention_adds(lake):
    lake.add_symbols("AAPL,MSFT,NVDA,SPY")
    lake.fill("AAPL,MSFT,NVDA,SPY", policy="scanner_layers")  # layer 0 retention, stored
    expected = lake.plan("AAPL,MSFT,NVDA", policy="scanner_layers")
    assert expected.total_requests == 0
    lake.set_layers("AAPL,MSFT,NVDA", 2)
    plan = lake.plan("AAPL,MSFT,NVDA", policy="scanner_layers")
    assert plan.total_requests > 0
    before = demo_requests(lake)

    lines = served(lake)
    requests = lake.queue.list()
    assert len(requests) == 1  # the promotions of one look are one request, packed as a plan
    assert {r.source for r in requests} == {"event"}
    assert {r.state for r in requests} == {"done"}
    assert demo_requests(lake) - before == plan.total_requests
    assert lake.plan("AAPL,MSFT,NVDA", policy="scanner_layers").total_requests == 0
    events = lake.events().to_dicts()
    assert all(e["processed_at"] is not None for e in events)
    by_request = {r.id: r.job_id for r in requests}
    assert {e["request_id"] for e in events} == set(by_request)
    assert all(by_request[e["request_id"]] == e["job_id"] for e in events)
    # Served once: another look queues nothing.
    assert lake.queue.from_events() == []
    assert "queued" in [e for e, _ in lines]


def test_a_demotion_queues_a_prune_and_a_detected_gap_queues_its_gap(lake):
    lake.add_symbols("AAPL,MSFT")
    lake.set_layers("AAPL", 3)
    served(lake)
    assert bar_count(lake, "1min") > 0
    lake.set_layers("AAPL", 0)
    served(lake)
    kinds = [(r.kind, r.state) for r in lake.queue.list()]
    assert ("prune", "done") in kinds
    assert bar_count(lake, "1min") == 0  # layer 0 keeps no minute bars

    lake.fill("MSFT", interval="1day", **JUNE)
    lake.catalog.add_events(
        EventType.GAP_DETECTED,
        [{"symbol": "MSFT", "interval": "1day", "first": "2024-07-01", "last": "2024-07-03"}],
    )
    served(lake)
    gap = next(r for r in lake.queue.list() if r.selection.get("start") == "2024-07-01")
    assert gap.state == "done"
    assert gap.selection["end"] == "2024-07-03"
    assert lake.status(gap.job_id)["bars_written"] == 3


# -- schedules --------------------------------------------------------------------------------


def schedule_lake(lake_root, entries, now):
    (lake_root / "lake.yaml").write_text(yaml.safe_dump({"schedule": entries}))
    moment = {"now": now}
    lake = Lake.open(lake_root, clock=lambda: moment["now"])
    return lake, moment


def test_the_daily_update_queues_each_new_session_once_after_close_and_grace(lake_root):
    # 2025-01-15 is a Wednesday; NYSE closes at 21:00 UTC in winter.
    lake, moment = schedule_lake(
        lake_root,
        [{"action": "update", "grace_minutes": 30}],
        datetime(2025, 1, 15, 21, 10, tzinfo=UTC),
    )
    lake.add_symbols("AAPL,MSFT")
    lake.worker().upkeep()
    first = lake.queue.list()
    assert len(first) == 1
    assert first[0].idempotency_key == "schedule update:XNYS 2025-01-14"  # 15th not closed+grace
    lake.worker().upkeep()
    assert len(lake.queue.list()) == 1
    moment["now"] = datetime(2025, 1, 15, 21, 31, tzinfo=UTC)
    lake.worker().upkeep()
    keys = sorted(r.idempotency_key for r in lake.queue.list())
    assert keys == ["schedule update:XNYS 2025-01-14", "schedule update:XNYS 2025-01-15"]
    newest = lake.queue.list()[0]
    assert (newest.source, newest.selection["symbols"]) == ("schedule", ["AAPL", "MSFT"])


def test_a_cron_entry_fires_in_its_calendars_time_zone_once_per_time(lake_root):
    start = datetime(2025, 1, 15, 6, 0, tzinfo=UTC)  # 01:00 in New York
    lake, moment = schedule_lake(lake_root, [{"action": "check", "cron": "0 2 * * *"}], start)
    lake.add_symbols("AAPL")
    worker = lake.worker()
    worker.upkeep()  # a new entry counts from now
    assert lake.queue.list() == []
    moment["now"] = datetime(2025, 1, 15, 6, 59, tzinfo=UTC)
    worker.upkeep()
    assert lake.queue.list() == []
    moment["now"] = datetime(2025, 1, 15, 7, 0, 30, tzinfo=UTC)  # 02:00:30 New York
    worker.upkeep()
    worker.upkeep()
    queued = lake.queue.list()
    assert [(r.kind, r.source) for r in queued] == [("check", "schedule")]
    assert queued[0].idempotency_key == "schedule check 2025-01-15T02:00:00-05:00"
    lines = served(lake)
    assert lake.queue.get(queued[0].id).state == "done"
    assert "series_checked" in next(f for e, f in lines if e == "done")


@pytest.mark.parametrize(
    ("entries", "words"),
    [
        ([{"action": "check", "cron": "0 2 * *"}], "not a cron expression"),
        ([{"action": "prune"}], "needs a cron"),
        ([{"action": "check", "cron": "0 2 * * *", "calendar": "XXXX"}], "schedule[0].calendar"),
        (
            [{"action": "check", "cron": "0 2 * * *"}, {"action": "check", "cron": "0 3 * * *"}],
            "share the name",
        ),
        ([{"action": "sweep", "cron": "0 2 * * *"}], "action"),
    ],
)
def test_bad_schedules_are_refused_with_the_key(lake_root, entries, words):
    (lake_root / "lake.yaml").write_text(yaml.safe_dump({"schedule": entries}))
    with pytest.raises(ConfigError) as raised:
        Lake.open(lake_root, clock=clock).worker()
    assert words in str(raised.value)


def test_workers_register_beat_and_end_in_the_catalog(lake) -> None:
    worker = lake.worker(name="w-test")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:

        def registered() -> list[dict]:
            return [w for w in lake.queue.workers() if w["name"] == "w-test"]

        deadline = time.monotonic() + 30
        while not registered() and time.monotonic() < deadline:
            time.sleep(0.01)
        [row] = registered()
        assert (row["host"], row["pid"], row["alive"]) == (HOST, os.getpid(), True)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert [w for w in lake.queue.workers() if w["name"] == "w-test"] == []  # it ended


def test_a_worker_whose_process_died_is_registered_but_not_alive(lake) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    lake.catalog.register_worker("gone", HOST, dead, None)
    lake.catalog.register_worker("elsewhere", "another-host", 1, "demo")
    found = {w["name"]: w["alive"] for w in lake.queue.workers()}
    assert found == {"gone": False, "elsewhere": True}
    with lake.catalog.connect() as con:  # no heartbeat for longer than the lease
        con.execute(
            "UPDATE workers SET heartbeat_at = now() - INTERVAL '1 hour' WHERE name = 'elsewhere'"
        )
    assert {w["name"]: w["alive"] for w in lake.queue.workers()} == {
        "gone": False,
        "elsewhere": False,
    }
