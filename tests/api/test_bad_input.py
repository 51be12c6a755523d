"""Bad input through the API: a 4xx with one clear line, nothing queued or written, and the
token in no answer and no log line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from barlake.api.limits import MAX_BODY

from .support import TOKEN, demo_lake, serving

AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"symbols": ["AAA"], "interval": ["1day"], "days": 5}

#: (method, path, keyword arguments of the request, status, a fragment of the message)
CASES: list[tuple[str, str, dict[str, Any], int, str]] = [
    (
        "POST",
        "/backfills",
        {"json": GOOD, "headers": {"Authorization": ""}},
        401,
        "send `Authorization: Bearer <token>`",
    ),
    (
        "POST",
        "/backfills",
        {"json": GOOD, "headers": {"Authorization": "Bearer nope"}},
        401,
        "token is wrong",
    ),
    (
        "POST",
        "/backfills",
        {"json": GOOD, "headers": {"Authorization": f"Basic {TOKEN}"}},
        401,
        "must be `Bearer <token>`",
    ),
    (
        "POST",
        "/backfills",
        {"json": {**GOOD, "interval": ["1dya"]}},
        400,
        "unknown interval '1dya'; use one of: 1min",
    ),
    (
        "POST",
        "/backfills",
        {"json": {**GOOD, "days": None, "start": "2025-01-10", "end": "2025-01-02"}},
        400,
        "is before start date",
    ),
    (
        "POST",
        "/backfills",
        {"json": {**GOOD, "start": "2025-01-02"}},
        400,
        "either --days or --start/--end",
    ),
    (
        "POST",
        "/backfills",
        {"json": {**GOOD, "days": None, "start": "2025-13-01"}},
        422,
        "body 'start'",
    ),
    ("POST", "/backfills", {"json": {**GOOD, "days": 0}}, 422, "body 'days'"),
    ("POST", "/backfills", {"json": {**GOOD, "symbols": ["ZZZ"]}}, 400, "ZZZ"),
    (
        "POST",
        "/backfills",
        {"json": {**GOOD, "symbols": [".."]}},
        400,
        "could escape the lake directory",
    ),
    ("POST", "/backfills", {"json": {**GOOD, "policy": "nosuchpolicy"}}, 400, "nosuchpolicy"),
    ("POST", "/backfills", {"json": {**GOOD, "policy": "../../etc/passwd"}}, 422, "body 'policy'"),
    ("POST", "/backfills", {"json": {**GOOD, "provider": "nosuchvendor"}}, 400, "nosuchvendor"),
    ("POST", "/backfills", {"json": {**GOOD, "layer": 7}}, 422, "body 'layer'"),
    ("POST", "/backfills", {"json": {**GOOD, "symbol": "AAA"}}, 422, "body 'symbol'"),
    ("POST", "/backfills", {"json": ["AAA"]}, 422, "body"),
    (
        "POST",
        "/backfills",
        {
            "content": b"symbols=AAA",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        415,
        "Content-Type: application/json",
    ),
    (
        "POST",
        "/backfills",
        {"content": b'{"symbols": [', "headers": {"Content-Type": "application/json"}},
        422,
        "not valid JSON",
    ),
    (
        "POST",
        "/backfills",
        {
            "content": b"[" + b"1," * MAX_BODY + b"1]",
            "headers": {"Content-Type": "application/json"},
        },
        413,
        "larger than",
    ),
    ("GET", "/backfills/0123456789abcdef", {}, 404, "0123456789abcdef"),
    ("DELETE", "/backfills/0123456789abcdef", {}, 404, "0123456789abcdef"),
    ("GET", "/backfills?state=running", {}, 422, "query parameter 'state'"),
    ("GET", "/jobs/0badc0de", {}, 404, "no single job matches '0badc0de'"),
    ("GET", "/jobs/0badc0de/errors", {}, 404, "no single job matches '0badc0de'"),
    ("GET", "/jobs?limit=0", {}, 422, "query parameter 'limit'"),
    ("PUT", "/symbols/ZZZ/layer", {"json": {"layer": 2}}, 400, "unknown symbol(s) ZZZ"),
    ("PUT", "/symbols/AAA/layer", {"json": {"layer": 5}}, 422, "body 'layer'"),
    (
        "POST",
        "/layers",
        {"json": {"layers": [{"symbol": "AAA", "layer": 1, "layer2_qualified": True}]}},
        400,
        "either a 'layer' column or layerN_qualified columns",
    ),
    (
        "POST",
        "/layers",
        {"json": {"layers": [{"symbol": "AAA", "layer": 1}, {"symbol": "AAA", "layer": 2}]}},
        400,
        "symbols repeat",
    ),
    ("POST", "/symbols", {"json": {"symbols": []}}, 422, "body 'symbols'"),
    ("POST", "/symbols", {"json": {"symbols": ["A\tB\x07"]}}, 400, "control character"),
    ("POST", "/symbols", {"json": {"symbols": ["NEW"], "calendar": "XMARS"}}, 400, "XMARS"),
    ("GET", "/gaps?interval=2min", {}, 400, "unknown interval '2min'"),
    ("GET", "/gaps?start=2025-02-30", {}, 422, "query parameter 'start'"),
    ("GET", "/gaps?end=2025-01-02", {}, 400, "--end needs --start"),
    ("GET", "/coverage?interval=1day,1min", {}, 400, "one interval"),
    ("GET", "/coverage?format=svg", {}, 422, "query parameter 'format'"),
    (
        "POST",
        "/checks",
        {"json": {"start": "2025-01-10", "end": "2025-01-01"}},
        400,
        "is before start date",
    ),
    ("GET", "/no/such/endpoint", {}, 404, "no endpoint /no/such/endpoint"),
    ("DELETE", "/jobs", {}, 405, "/jobs does not take DELETE"),
]


@pytest.fixture
def client(tmp_path: Path):
    lake, _ = demo_lake(tmp_path / "lake", ["AAA", "BBB"])
    with serving(lake, workers=0) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.lake = lake  # type: ignore[attr-defined]
        yield client


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "bars").rglob("*") if p.is_file())


def test_bad_input_is_a_4xx_line_and_changes_nothing(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    lake = client.lake  # type: ignore[attr-defined]
    symbols_before = lake.symbol_rows()
    caplog.set_level(logging.DEBUG)
    assert len(CASES) >= 20
    for method, path, kwargs, status, fragment in CASES:
        headers = {**AUTH, **kwargs.get("headers", {})}
        sent = {k: v for k, v in kwargs.items() if k != "headers"}
        answer = client.request(method, path, headers=headers, **sent)
        what = f"{method} {path} -> {answer.status_code} {answer.text[:200]}"
        assert answer.status_code == status, what
        assert answer.headers["content-type"] == "application/json", what
        detail = answer.json()["detail"]
        assert isinstance(detail, str), what
        assert fragment in detail, what
        assert "\n" not in detail and "Traceback" not in detail, what
        assert TOKEN not in answer.text and TOKEN not in str(answer.headers), what
    assert lake.queue.list() == []
    assert lake.jobs().is_empty()
    assert lake.events().is_empty()
    assert lake.symbol_rows() == symbols_before
    assert _files(lake.root) == []
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_changes_need_the_token_and_reads_do_not(client: httpx.Client) -> None:
    assert client.get("/backfills").status_code == 200
    refused = client.post("/symbols", json={"symbols": ["NEW"]})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    accepted = client.post("/symbols", json={"symbols": ["NEW"]}, headers=AUTH)
    assert (accepted.status_code, accepted.json()) == (201, {"symbols": 1})


def test_without_a_token_the_api_is_read_only(tmp_path: Path) -> None:
    lake, _ = demo_lake(tmp_path / "lake", ["AAA"])
    with serving(lake, workers=0, token=None) as url, httpx.Client(base_url=url) as client:
        answer = client.post("/backfills", json=GOOD, headers={"Authorization": "Bearer x"})
        assert answer.status_code == 401
        assert "LAKE_API_TOKEN" in answer.json()["detail"]
        assert client.get("/symbols").json()[0]["symbol"] == "AAA"
    assert lake.queue.list() == []


def test_reads_need_the_token_off_loopback(tmp_path: Path) -> None:
    lake, _ = demo_lake(tmp_path / "lake", ["AAA"])
    with (
        serving(lake, workers=0, public_reads=False) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert client.get("/jobs").status_code == 401
        assert client.get("/jobs", headers=AUTH).status_code == 200
        assert client.get("/health").status_code == 200  # for the load balancer
        page = client.get("/")
        assert page.status_code == 200 and 'id="token"' in page.text
        assert "AAA" not in page.text  # no data before the token is given
