"""``lake serve`` end to end on the demo provider: backfills queued over HTTP, served by the
app's worker, reported by ``/jobs``; promotions fetch what their new retention adds."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx

from .support import SYMBOLS, TOKEN, Served, demo_lake, eventually, serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_backfill_of_50_symbols_runs_once_and_a_repeat_asks_nothing(served: Served) -> None:
    body = {"symbols": SYMBOLS, "interval": ["1day"], "days": 30}
    answer = served.client.post("/backfills", json=body, headers=served.auth)
    assert answer.status_code == 202
    queued = answer.json()
    assert (queued["created"], queued["source"], queued["kind"]) == (True, "api", "fill")
    assert queued["plan"]["total_requests"] >= 1
    assert queued["plan"]["estimated_bars"] > 0
    done = served.wait(queued["id"])
    job = served.client.get(f"/jobs/{done['job_id']}").json()
    stored = served.lake.bars(SYMBOLS, interval="1day").collect()
    assert set(stored["symbol"]) == set(SYMBOLS)
    assert job["status"] == "done"
    assert job["bars_written"] == job["records_loaded"] == stored.height
    assert job["progress"] == {"done": len(SYMBOLS)}
    assert served.client.get(f"/jobs/{done['job_id']}/errors").json() == {}
    assert (
        served.client.get("/gaps", params={"symbols": ",".join(SYMBOLS), "days": 30}).json() == []
    )
    asked = len(served.provider.asked)
    assert asked == queued["plan"]["total_requests"]
    held = served.client.get("/info", params={"symbols": ",".join(SYMBOLS), "days": 30}).json()
    assert held == json.loads(json.dumps(served.lake.info(SYMBOLS, days=30).to_dict()))
    assert held["totals"]["bars"] == stored.height and held["totals"]["missing"] == 0

    again = served.client.post("/backfills", json=body, headers=served.auth).json()
    assert again["id"] != queued["id"]
    assert again["plan"]["total_requests"] == 0
    served.wait(again["id"])
    assert len(served.provider.asked) == asked
    assert served.lake.bars(SYMBOLS, interval="1day").collect().equals(stored)

    health = served.client.get("/health").json()
    assert health == {
        "status": "ok",
        "catalog": True,
        "workers": {"configured": 1, "alive": 1, "registered": 1, "registered_alive": 1},
        "queue": {"queued": 0, "claimed": 0, "done": 2, "failed": 0, "cancelled": 0},
        "followers": {"running": 0, "stale": 0, "dead": 0, "finished": 0},
    }
    metrics = served.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = set(metrics.text.splitlines())
    assert 'barlake_queue_requests{state="done"} 2' in lines
    assert f'barlake_provider_requests_total{{provider="demo"}} {asked}' in lines
    assert f'barlake_bars_written_total{{provider="demo"}} {stored.height}' in lines
    assert "# TYPE barlake_rate_limit_waits_total counter" in lines
    assert "barlake_workers_alive 1" in lines
    assert 'barlake_workers_registered{alive="true"} 1' in lines
    assert 'barlake_workers_registered{alive="false"} 0' in lines


def test_the_same_selection_queued_twice_is_one_request(tmp_path: Path) -> None:
    lake, _ = demo_lake(tmp_path / "lake", SYMBOLS[:3])
    body = {"symbols": SYMBOLS[:3], "interval": ["1day"], "days": 10}
    with serving(lake, workers=0) as url, httpx.Client(base_url=url) as client:
        first = client.post("/backfills", json=body, headers=AUTH).json()
        second = client.post("/backfills", json=body, headers=AUTH).json()
        assert (first["created"], second["created"]) == (True, False)
        assert second["id"] == first["id"]
        assert [r["id"] for r in client.get("/backfills").json()] == [first["id"]]
        cancelled = client.delete(f"/backfills/{first['id'][:8]}", headers=AUTH).json()
        assert cancelled["state"] == "cancelled"
        assert client.get(f"/backfills/{first['id']}").json()["state"] == "cancelled"


def _sessions(asks: list[tuple[tuple[str, ...], str, object]]) -> list[tuple[str, str, object]]:
    """Every (symbol, interval, day) the requests covered, once per time it was asked."""
    out = []
    for symbols, interval, span in asks:
        start, end = span.start, span.end  # type: ignore[attr-defined]
        days = [start + timedelta(days=i) for i in range((end - start).days)]
        out += [(s, interval, d) for s in symbols for d in days]
    return out


def test_promoting_three_symbols_fetches_exactly_what_their_new_retention_adds(
    tmp_path: Path,
) -> None:
    symbols = SYMBOLS[:12]
    lake, provider = demo_lake(tmp_path / "lake", symbols, "default_policy: scanner_layers\n")
    assert lake.fill(policy="scanner_layers").status == "done"  # layer 0: 30 days of daily bars
    provider.asked.clear()
    promoted = symbols[:3]
    with serving(lake, workers=0) as url, httpx.Client(base_url=url) as client:
        for symbol in promoted:
            counts = client.put(f"/symbols/{symbol}/layer", json={"layer": 3}, headers=AUTH)
            assert counts.json() == {"symbols": 1, "promoted": 1, "demoted": 0, "qualified": 1}
        events = client.get("/events").json()
        assert {e["payload"]["symbol"] for e in events} == set(promoted)
    plan = lake.plan(policy="scanner_layers")  # what the new retention adds, seen from outside
    assert plan.total_requests > 0
    expected = _sessions(
        [(tuple(p.request.symbols), p.request.interval, p.request.range) for p in plan.requests]
    )
    assert {s for s, _, _ in expected} == set(promoted)

    with serving(lake, workers=1) as url, httpx.Client(base_url=url) as client:
        served = Served(lake, provider, url, client)
        eventually(lambda: _all_served(client), "serving the promotions' events")
        requests = client.get("/backfills").json()
        assert requests and {r["source"] for r in requests} == {"event"}
        for r in requests:
            served.wait(r["id"])
        assert all(e["processed_at"] for e in client.get("/events").json())
    got = _sessions(provider.asked)
    assert sorted(got) == sorted(expected)  # the same sessions, each asked once
    assert lake.plan(policy="scanner_layers").total_requests == 0


def _all_served(client: httpx.Client) -> bool:
    events = client.get("/events").json()
    requests = client.get("/backfills").json()
    return all(e["processed_at"] for e in events) and all(
        r["state"] in ("done", "failed", "cancelled") for r in requests
    )


def test_health_and_metrics_report_the_followers(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from barlake.jobs.followers import FollowerFiles
    from barlake.storage.filesystem import LocalFileSystem

    lake, _ = demo_lake(tmp_path / "lake", SYMBOLS[:2])
    files = FollowerFiles(lake.root, LocalFileSystem())
    wall = datetime.now(UTC)
    common = {"provider": "alpaca", "pid": None, "host": None, "beat_s": 1.0, "reconnects": 2}
    last_bar = lake.clock() - timedelta(seconds=90)
    files.save({"id": "live1", "symbols": ["AAA"], "heartbeat_at": wall, "last_bar": last_bar,
                **common})  # fmt: skip
    files.save({"id": "gone2", "symbols": ["BBB"], "heartbeat_at": wall - timedelta(minutes=9),
                **common})  # fmt: skip
    with serving(lake, workers=0) as url, httpx.Client(base_url=url) as client:
        health = client.get("/health")
        metrics = client.get("/metrics").text.splitlines()
    assert health.status_code == 200  # the service can work: a dead follower degrades it only
    assert health.json()["status"] == "degraded"
    assert health.json()["followers"] == {"running": 1, "stale": 0, "dead": 1, "finished": 0}
    lines = set(metrics)
    assert 'barlake_followers{state="running"} 1' in lines
    assert 'barlake_followers{state="dead"} 1' in lines
    assert 'barlake_follower_lag_seconds{follower="live1",provider="alpaca"} 90' in lines
    assert not any(m.startswith('barlake_follower_lag_seconds{follower="gone2"') for m in lines)
    assert 'barlake_follower_reconnects_total{follower="gone2",provider="alpaca"} 2' in lines
    assert 'barlake_follower_stale{follower="gone2",provider="alpaca"} 1' in lines
    assert 'barlake_follower_stale{follower="live1",provider="alpaca"} 0' in lines
