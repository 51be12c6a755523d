"""The rate limiter's window shared through a file: by separate limiter objects on a fake clock,
by real processes on the wall clock, and by two `lake fill` runs against one emulator."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from barlake.fetch import ratewindow
from barlake.fetch.ratelimit import RateLimiter
from barlake.fetch.ratewindow import LocalWindow, SharedWindow, window_path
from barlake.lake import Lake
from barlake.providers.emulators.alpaca import AlpacaEmulator
from providers.support import (
    CREDENTIAL_ENV,
    KEY,
    SECRET,
    clock,
    expected,
    provider_entry,
    same_values,
    stored,
)
from test_ratelimit import START, FakeTime, busiest_window

KEY_A = "alpaca http://127.0.0.1:8001"


def shared(fake: FakeTime, per_minute: float, directory: Path, key: str = KEY_A) -> RateLimiter:
    return RateLimiter(
        per_minute,
        margin_s=0.25,
        share=key,
        directory=directory,
        clock=fake.clock,
        sleep=fake.sleep,
    )


def run_tasks(fake: FakeTime, plan: list[tuple[RateLimiter, int, int]]) -> list[list[float]]:
    """For each ``(limiter, tasks, each)``, the times its concurrent tasks acquired at; every
    limiter's tasks run together on one event loop."""
    times: list[list[float]] = [[] for _ in plan]

    async def worker(limit: RateLimiter, each: int, out: list[float]) -> None:
        for _ in range(each):
            await limit.acquire()
            out.append(fake.now)

    async def main() -> None:
        await asyncio.gather(
            *(
                worker(limit, each, out)
                for (limit, tasks, each), out in zip(plan, times, strict=True)
                for _ in range(tasks)
            )
        )

    asyncio.run(main())
    return times


def test_two_limiters_on_one_file_never_exceed_the_limit_together(tmp_path: Path) -> None:
    fake = FakeTime()
    one, two = shared(fake, 30, tmp_path), shared(fake, 30, tmp_path)
    first, second = run_tasks(fake, [(one, 25, 4), (two, 25, 4)])
    union = first + second
    assert len(union) == 200
    assert busiest_window(union, 60.25) == 30
    # The first limiter's tasks ran first and filled the window: the second, whose own count
    # was still zero, waited for it.
    assert first.count(START) == 30 and min(second) > START
    assert fake.now - START == pytest.approx(6 * 60.25)  # 200 = 6 full windows + 20


def test_different_keys_keep_separate_windows(tmp_path: Path) -> None:
    fake = FakeTime()
    one = shared(fake, 30, tmp_path, KEY_A)
    two = shared(fake, 30, tmp_path, "alpaca http://127.0.0.1:8002")
    first, second = run_tasks(fake, [(one, 30, 1), (two, 30, 1)])
    assert first + second == [START] * 60
    assert len(list(tmp_path.glob("alpaca-*.bin"))) == 2


def test_a_pause_holds_every_limiter_of_the_window(tmp_path: Path) -> None:
    fake = FakeTime()
    one, two = shared(fake, 100, tmp_path), shared(fake, 100, tmp_path)
    unlimited = shared(fake, 0, tmp_path)
    one.pause(30)
    times = run_tasks(fake, [(two, 5, 1), (unlimited, 5, 1)])
    assert min(times[0] + times[1]) == START + 30
    two.pause(1)  # a shorter pause never cuts a longer one short
    one.pause(20)
    assert run_tasks(fake, [(unlimited, 1, 1)]) == [[START + 50]]


def test_a_larger_limit_grows_the_ring_and_keeps_its_history(tmp_path: Path) -> None:
    fake = FakeTime()
    small = shared(fake, 3, tmp_path)
    assert run_tasks(fake, [(small, 3, 1)]) == [[START] * 3]
    large = shared(fake, 10, tmp_path)
    assert run_tasks(fake, [(large, 7, 1)]) == [[START] * 7]
    # The large limiter sees all 10 (the small one's 3 survived the growth), the small one
    # the 3 latest: both wait for the window.
    later = pytest.approx(START + 60.25)
    assert run_tasks(fake, [(large, 1, 1), (small, 1, 1)]) == [[later], [later]]


def test_a_clock_set_back_costs_at_most_one_window(tmp_path: Path) -> None:
    fake = FakeTime()
    fake.now = START + 3600
    limit = shared(fake, 2, tmp_path)
    run_tasks(fake, [(limit, 2, 1)])
    limit.pause(5)
    fake.now = START  # the clock was set back an hour
    times = run_tasks(fake, [(limit, 1, 1)])
    # The pause lasts its 5 s and the window 60.25 s counted from now, not an hour more.
    assert fake.sleeps == [pytest.approx(5), pytest.approx(55.25)]
    assert times == [[pytest.approx(START + 60.25)]]


def test_a_damaged_file_is_started_afresh(tmp_path: Path) -> None:
    path = window_path(KEY_A, tmp_path)
    path.write_bytes(b"not a window")
    fake = FakeTime()
    limit = shared(fake, 4, tmp_path)
    assert isinstance(limit.window, SharedWindow)
    assert run_tasks(fake, [(limit, 5, 1)]) == [[START] * 4 + [pytest.approx(START + 60.25)]]
    assert path.stat().st_size == 48 + 4 * 8


def test_an_unusable_cache_dir_falls_back_to_this_process(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(ratewindow, "_warned", False)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    fake = FakeTime()
    limits = [shared(fake, 2, blocked / "ratelimits") for _ in range(2)]
    assert all(isinstance(limit.window, LocalWindow) for limit in limits)
    times = run_tasks(fake, [(limits[0], 3, 1)])
    assert times == [[START, START, pytest.approx(START + 60.25)]]
    err = capsys.readouterr().err
    assert err.count("barlake: cannot share rate limits") == 1  # one warning, however many


def test_the_window_file_lives_in_the_cache_dir_and_hides_the_url(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BARLAKE_CACHE_DIR", str(tmp_path))
    key = "polygon https://user:s3cret@example.com"
    RateLimiter(5, share=key)
    (path,) = (tmp_path / "ratelimits").iterdir()
    assert path == window_path(key) and path.name.startswith("polygon-")
    assert "s3cret" not in path.name and "example" not in path.name
    assert window_path(key) != window_path("polygon https://api.polygon.io")


def test_lake_fills_share_the_window_unless_configured_not_to(lake_root: Path) -> None:
    path = window_path("demo default")  # the demo provider has no base URL
    lake = Lake.open(lake_root, clock=clock)
    lake.add_symbols("AAA,BBB")
    lake.fill("AAA", interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 7))
    assert path.exists()
    path.unlink()
    (lake_root / "lake.yaml").write_text("backfill:\n  shared_rate_limit: false\n")
    lake = Lake.open(lake_root, clock=clock)
    result = lake.fill("BBB", interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 7))
    assert result.requests > 0 and not path.exists()


# -- real processes ----------------------------------------------------------------------------

ACQUIRE = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from barlake.fetch.ratelimit import RateLimiter

    tried, last = [], [0.0]

    def clock():
        # After an acquisition, the time the limiter wrote for it.
        last[0] = time.time()
        tried.append(last[0])
        return last[0]

    directory = Path(sys.argv[1])
    limit = RateLimiter(
        20, window_s=1.0, margin_s=0.25, share="test", directory=directory, clock=clock
    )

    async def main():
        times = []
        async def worker():
            for _ in range(6):
                await limit.acquire()
                times.append(last[0])
        await asyncio.gather(*(worker() for _ in range(5)))
        return times

    print("ready", flush=True)
    sys.stdin.readline()
    times = asyncio.run(main())
    print(json.dumps({"tried": tried[0], "times": times}))
    """
)


PAUSE_S = 1.5


def json_outputs(procs: list[subprocess.Popen[str]], timeout: float) -> list[Any]:
    """What each process printed as JSON, once all have exited 0."""
    outputs = [proc.communicate(timeout=timeout) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return [json.loads(out) for out, _ in outputs]


def reap(procs: list[subprocess.Popen[str]]) -> None:
    """Kill whichever of ``procs`` still runs (a failed test must not leave them behind)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_processes_never_exceed_the_limit_together(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ACQUIRE, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        # Both processes wait on this pause, written to the file they share; then they race.
        paused_at = time.time()
        RateLimiter(20, window_s=1.0, share="test", directory=tmp_path).pause(PAUSE_S)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        first, second = json_outputs(procs, timeout=30)
    finally:
        reap(procs)
    # Both asked during the pause, so both raced for the window the moment it ended; each on
    # its own would then have taken 30 at once.
    assert max(first["tried"], second["tried"]) < paused_at + PAUSE_S
    union = first["times"] + second["times"]
    assert len(union) == 60
    assert min(union) >= paused_at + PAUSE_S
    # At most 20 in any window_s + margin_s (1.25 s), so three windows for 60.
    assert busiest_window(union, 1.25) == 20
    assert max(union) - min(union) >= 2 * 1.25


# -- two `lake fill` runs against one emulator -------------------------------------------------


class TimedAlpaca(AlpacaEmulator):
    """Alpaca's emulator, noting when it served which symbols."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.served: list[tuple[float, str]] = []

    def route(self, path: str, query: Any, faults: frozenset[str]) -> Any:
        self.served.append((time.time(), query.get("symbols", "")))
        return super().route(path, query, faults)


FIRST, LAST = date(2024, 6, 3), date(2024, 6, 14)  # 10 sessions: 20 bars, 21 pages of one bar
# The emulator counts arrivals, the limiters acquisitions. The first request of a process also
# opens its client and connection: on this small machine, loaded, it reached the emulator up to
# a second after its acquisition. So the lakes count 30 requests per 2.5 s (plus their default
# 1-s margin) and the emulator per 1.5 s; the test is about the two processes' sharing.
LAKE_WINDOW_S, EMULATOR_WINDOW_S = 2.5, 1.5


def fill_lake(root: Path, template: Path, em: TimedAlpaca, symbols: list[str]) -> Path:
    shutil.copytree(template, root)
    entry = provider_entry("alpaca", em, credentials=False, page_limit=1)
    entry.update(rate_limit_per_min=30, rate_limit_window_s=LAKE_WINDOW_S)
    config = {
        # Bars only: the test counts the emulator's bar pages against the fills' requests.
        "backfill": {"backoff_base_s": 0.01, "max_attempts": 2, "fetch_actions": False},
        "providers": {"alpaca": entry},
    }
    (root / "lake.yaml").write_text(yaml.safe_dump(config))
    Lake.open(root, clock=clock).add_symbols(symbols)
    return root


def test_two_fills_share_one_vendor_window(tmp_path: Path, lake_template: Path) -> None:
    em = TimedAlpaca(
        api_key=KEY, api_secret=SECRET, rate_limit=30, window_s=EMULATOR_WINDOW_S
    ).start()
    procs: list[subprocess.Popen[str]] = []
    try:
        lakes = {
            "AAA,AAB": fill_lake(tmp_path / "a", lake_template, em, ["AAA", "AAB"]),
            "BBA,BBB": fill_lake(tmp_path / "b", lake_template, em, ["BBA", "BBB"]),
        }
        env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_ENV}
        env.update(APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET)
        window = ("--start", FIRST.isoformat(), "--end", LAST.isoformat(), "--interval", "1day")
        command = ("fill", "--provider", "alpaca", *window, "--json")
        # The window of every process filling from this emulator (see Lake._start_job), here
        # paused while both processes start, so that they begin fetching together.
        paused_at = time.time()
        RateLimiter(30, share=f"alpaca {em.url}").pause(2.5)
        for root in lakes.values():
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "barlake", "--lake", str(root), *command],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )
        results = json_outputs(procs, timeout=60)
    finally:
        reap(procs)
        em.stop()
    assert {status for status, _ in em.log} == {200}
    assert [(r["status"], r["retries"]) for r in results] == [("done", 0), ("done", 0)]
    # More requests than the emulator allows in a window: somebody had to wait.
    assert len(em.log) == sum(r["requests"] for r in results) == 42
    for symbols, root in lakes.items():
        want = expected(symbols.split(","), "1day", FIRST, LAST)
        assert same_values(stored(root, "1day"), want)
    # Both fills waited for the pause. Then one of them stopped for over a second between two
    # of its own 21 pages, fewer than the limit: it waited for the other's to leave the window.
    served = {symbols: [t for t, s in em.served if s == symbols] for symbols in lakes}
    assert min(min(times) for times in served.values()) >= paused_at + 2.5
    assert all(len(times) == 21 for times in served.values())
    stops = [max(b - a for a, b in itertools.pairwise(times)) for times in served.values()]
    assert max(stops) > 1.0
