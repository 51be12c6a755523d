"""Credentials never show, in any spelling: a vendor's error that echoes the request URL (the
Polygon key rides in its query) reaches stderr, the progress rows, ``lake errors`` and the
report with the key masked and the query gone; masking never eats into other words."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import pytest
import yaml

from barlake.lake import Lake
from barlake.providers.emulators.polygon import PolygonEmulator
from barlake.providers.http import Credentials
from barlake.providers.redaction import redact, spellings

from .support import clock, provider_entry, run_lake

#: A key whose spellings differ: raw, ``quote`` keeps the slash, ``quote_plus`` and httpx
#: write the space as ``+``, and ``quote(safe="")`` writes it as ``%20``.
KEY = "pk/Te+st=k&y z9"
WEEK = ("--start", "2024-06-03", "--end", "2024-06-07")


def test_the_spellings_are_the_raw_key_and_its_url_encodings():
    assert {KEY, quote(KEY), quote(KEY, safe=""), quote_plus(KEY)} <= spellings(KEY)
    assert "pk%2fTe%2bst%3dk%26y+z9" in spellings(KEY)  # lower-case hex, as some servers echo


@pytest.mark.parametrize(
    "text",
    [
        f"GET /v2/aggs?apiKey={quote_plus(KEY)} failed",
        f"key {quote(KEY)} refused",
        f"key {quote(KEY, safe='')} refused",
        f"'apiKey': '{KEY}'",
        f"Authorization: Bearer {KEY}",
        f"url=http%3A%2F%2Fh%2Fx%3FapiKey%3D{quote(KEY, safe='')}",
    ],
)
def test_every_spelling_is_masked_where_it_stands(text):
    cleaned = Credentials(KEY).redact(text)
    assert "***" in cleaned or "?..." in cleaned
    assert not any(s in cleaned for s in spellings(KEY)), cleaned


def test_a_url_loses_its_query_string_whatever_it_holds():
    text = "upstream error for GET http://127.0.0.1:9/v2/x?apiKey=abc&limit=5 (retry)"
    assert redact(text, []) == "upstream error for GET http://127.0.0.1:9/v2/x?... (retry)"


def test_a_short_secret_never_eats_into_other_words():
    said = "gave up after 3 attempts: s is not a valid key for this plan's sessions"
    assert Credentials("s").redact(said) == (
        "gave up after 3 attempts: *** is not a valid key for this plan's sessions"
    )
    assert Credentials("key", "plan").redact(said) == (
        "gave up after 3 attempts: s is not a valid *** for this ***'s sessions"
    )


def test_an_error_echoing_the_url_leaks_the_key_nowhere(tmp_path):
    root = tmp_path / "lake"
    with PolygonEmulator(api_key=KEY, faults="echo=1") as em:
        Lake.init(root, clock=clock).add_symbols(["AAPL", "MSFT"])
        config = {
            "default_provider": "polygon",
            "backfill": {"backoff_base_s": 0.01, "backoff_cap_s": 0.02, "max_attempts": 2},
            "providers": {
                "polygon": provider_entry("polygon", em, credentials=False, auth="query")
            },
        }
        (root / "lake.yaml").write_text(yaml.safe_dump(config))
        env = {"POLYGON_API_KEY": KEY}
        fill = run_lake(root, "fill", "--interval", "1hour", *WEEK, env=env)
        assert em.faults.injected["echo"] >= 2  # the vendor did echo the URL
    errors = run_lake(root, "errors", "--json")
    report = run_lake(root, "report", str(tmp_path / "report.html"), *WEEK)
    assert fill.returncode == 1, fill.stderr
    assert (errors.returncode, report.returncode) == (0, 0), errors.stderr + report.stderr
    listed = json.loads(errors.stdout)
    assert set(listed) == {"AAPL", "MSFT"}
    with duckdb.connect(str(root / "catalog.duckdb"), read_only=True) as con:
        rows = con.execute("select error_message from backfill_progress").fetchall()
    progress = [m for (m,) in rows]
    html = (tmp_path / "report.html").read_text()
    # The vendor's words are kept, the query string and the key are not.
    for text in [fill.stderr, errors.stdout, *progress]:
        assert "upstream error for GET http://127.0.0.1:" in text
        assert "/v2/aggs/ticker/" in text and "?..." in text
        assert "'apiKey': '***'" in text
    assert "upstream error for GET" in html
    for text in [fill.stdout, fill.stderr, errors.stdout, report.stderr, html, *progress]:
        leaked = [s for s in spellings(KEY) if s in text]
        assert not leaked, text
        assert "apiKey=" not in text
    assert not any(
        s.encode() in p.read_bytes()
        for p in Path(root).rglob("*")
        if p.is_file()
        for s in spellings(KEY)
    )
