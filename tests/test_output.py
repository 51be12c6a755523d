"""What commands print: tables for people (numbers right-aligned with separators, short ids,
local times with their zone), one sentence for an empty result, and JSON all the way down."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.conftest import JUNE

from barlake.cli import cli
from barlake.cli.output import cell, decimals, local_time
from barlake.lake import Lake

DATES = ["--start", "2024-06-03", "--end", "2024-06-28"]


def invoke(root: Path, *args: str):
    return CliRunner().invoke(cli, ["--lake", str(root), *args], catch_exceptions=False)


@pytest.fixture
def new_york(monkeypatch) -> Iterator[None]:
    """The machine's local time zone is New York's while the test runs."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def column_edges(header: str, name: str) -> tuple[int, int]:
    start = re.search(rf"(?<!\S){name}(?!\S)", header)
    assert start is not None, header
    return start.start(), start.end()


def test_numbers_are_right_aligned_with_thousands_separators(planted: Lake) -> None:
    assert planted.fill("FULL", provider="demo", interval="1min", **JUNE).ok
    result = invoke(planted.root, "info", "--interval", "1min", "--symbols", "FULL,HOLE", *DATES)
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    minutes = planted.bars("FULL", interval="1min", **JUNE).collect().height
    assert minutes > 1_000
    for name in ("bars", "expected", "bytes"):
        _, end = column_edges(header, name)
        cells = [row[:end].split()[-1] for row in rows]
        # Every cell ends where the header does: right-aligned, and nothing runs past it.
        assert all(row[end : end + 1] in ("", " ") for row in rows), name
        assert all(re.fullmatch(r"\d{1,3}(,\d{3})*", c) for c in cells), (name, cells)
    full = next(r for r in rows if r.startswith("FULL"))
    assert f" {minutes:,} " in full  # 7,410: the separator is there
    hole = next(r for r in rows if r.startswith("HOLE"))
    _, end = column_edges(header, "bars")
    assert hole[:end].endswith(" 0")


def test_cells_show_numbers_ids_and_times_for_people(new_york: None) -> None:
    assert cell(1234567) == "1,234,567"
    assert cell(0.25) == "0.25" and cell(1234.5, 2) == "1,234.50"
    assert decimals([1.0, 2.25, None, "x"]) == 2
    assert cell("0b7c9f1e-3d2a-4c5b-9e8f-7a6b5c4d3e2f") == "0b7c9f1e"
    winter = datetime.fromisoformat("2025-01-15T22:00:00+00:00")
    assert local_time(winter) == "2025-01-15 17:00:00 EST"
    assert cell("2024-06-28T15:00:00+00:00") == "2024-06-28 11:00:00 EDT"
    assert cell(winter.replace(tzinfo=None)) == "2025-01-15 17:00:00 EST"  # naive: UTC
    assert cell("2024-06-28") == "2024-06-28" and cell(None) == ""


def test_job_tables_show_short_ids_and_local_times(planted: Lake, new_york: None) -> None:
    result = invoke(planted.root, "jobs")
    assert result.exit_code == 0, result.stderr
    _, *rows = result.stdout.splitlines()
    assert len(rows) == 2  # the fills that planted the lake
    full_ids = {str(j) for j in planted.jobs(5)["job_id"]}
    for row in rows:
        short_id = row.split()[0]
        assert len(short_id) == 8 and any(j.startswith(short_id) for j in full_ids)
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} E[SD]T", row), row
    shown = invoke(planted.root, "status", rows[0].split()[0])
    assert shown.exit_code == 0, shown.stderr
    assert re.search(r"^created_at +\S+ \S+ E[SD]T$", shown.stdout, re.M), shown.stdout
    as_json = json.loads(invoke(planted.root, "jobs", "--json").stdout)
    assert all(j["created_at"].endswith("+00:00") and "T" in j["created_at"] for j in as_json)


EMPTY = {
    "gaps": (["gaps", "--symbols", "FULL", *DATES], "up to date: nothing missing", 0),
    "plan": (["plan", "--symbols", "FULL", *DATES], "up to date: nothing missing", None),
    "errors": (["errors"], "no errors", 0),
    "events": (["events", "--pending"], "no pending events", 0),
    "queue": (["queue", "list"], "the queue is empty", 0),
    "show": (["show", "LATE"], "no 1day bars of LATE stored", 0),
}


@pytest.mark.parametrize("name", list(EMPTY))
def test_an_empty_result_is_one_sentence_not_a_header(planted: Lake, name: str) -> None:
    args, sentence, code = EMPTY[name]
    result = invoke(planted.root, *args)
    assert result.exit_code == (code or 0), result.stderr
    assert result.stdout == ""
    assert sentence in result.stderr.splitlines()[0]
    quiet = invoke(planted.root, "--quiet", *args)
    assert (quiet.stdout, quiet.stderr) == ("", "")


def test_a_fresh_lake_says_it_has_no_jobs_and_no_symbols(lake: Lake) -> None:
    for args, sentence in (
        (["jobs"], "no jobs yet"),
        (["symbols", "list"], "no symbols yet"),
        (["info"], "no symbols selected"),
    ):
        result = invoke(lake.root, *args)
        assert (result.exit_code, result.stdout) == (0, ""), args
        assert sentence in result.stderr, args


# -- JSON all the way down ---------------------------------------------------------------------

#: A time of day in a string: it must carry the ISO ``T``.
_TIME_WITHOUT_T = re.compile(r"\d{4}-\d{2}-\d{2}[ _]\d{2}:\d{2}")


def strings(value: Any, where: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value (keys included), with where it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{where}.{k} (key)", k
            yield from strings(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def flaws(document: Any) -> list[str]:
    """JSON text inside a string, and times without the ``T``."""
    out = []
    for where, text in strings(document):
        try:
            inner = json.loads(text)
        except ValueError:
            inner = None
        if isinstance(inner, dict | list):
            out.append(f"{where}: JSON inside a string: {text[:60]}")
        if _TIME_WITHOUT_T.search(text):
            out.append(f"{where}: a time without T: {text[:60]}")
    return out


def test_flaws_finds_what_it_looks_for() -> None:
    assert flaws({"a": '{"b": 1}', "c": ["2024-06-03 10:00:00+00:00"], "ok": "2024-06-03"}) == [
        '$.a: JSON inside a string: {"b": 1}',
        "$.c[0]: a time without T: 2024-06-03 10:00:00+00:00",
    ]
    assert flaws({"t": "2024-06-03T10:00:00+00:00", "n": 1, "s": "[not json"}) == []


@pytest.fixture
def busy(planted: Lake) -> Path:
    """The planted lake after a fill with a symbol the provider refuses, a layer change, a check
    and a queued request: every data command has something to print."""
    root = planted.root
    config = "providers:\n  demo:\n    options:\n      unknown_symbols: [NOPE]\n"
    (root / "lake.yaml").write_text(config)
    assert invoke(root, "symbols", "add", "NOPE").exit_code == 0
    assert invoke(root, "fill", "--provider", "demo", *DATES).exit_code == 1  # NOPE fails
    assert invoke(root, "layers", "set", "FULL", "--layer", "2").exit_code == 0
    invoke(root, "check", *DATES)
    assert invoke(root, "queue", "add", "--symbols", "FULL", "--days", "5").exit_code == 0
    return root


DATA_COMMANDS = [
    ["gaps", *DATES],
    ["plan", "--explain", *DATES],
    ["jobs"],
    ["status"],
    ["errors"],
    ["events"],
    ["symbols", "list"],
    ["info", *DATES],
    ["info", "--interval", "1day,1hour"],
    ["queue", "list"],
    ["config", "show"],
    ["check", *DATES],
    ["prune", "--dry-run", "--policy", "scanner_layers"],
    ["show", "FULL", *DATES],
    ["providers"],
    ["fill", "--dry-run", "--provider", "demo", "LATE", *DATES],
    ["fill", "--provider", "demo", "--symbols", "HOLE", *DATES],
]


def test_every_data_command_prints_json_all_the_way_down(busy: Path) -> None:
    seen = []
    for args in DATA_COMMANDS:
        result = invoke(busy, *args, "--json")
        assert result.exit_code in (0, 1), (args, result.stderr)
        document = json.loads(result.stdout)
        assert document not in ([], {}), args  # the lake gives each something to print
        assert flaws(document) == [], args
        seen.append(document)
    (request,) = seen[DATA_COMMANDS.index(["queue", "list"])]
    for more in (["queue", "show", request["id"][:8]], ["queue", "add", "--symbols", "HOLE"]):
        shown = invoke(busy, *more, "--json")
        assert shown.exit_code == 0, (more, shown.stderr)
        assert flaws(json.loads(shown.stdout)) == [], more
    job = seen[DATA_COMMANDS.index(["jobs"])][0]
    assert flaws(json.loads(invoke(busy, "status", job["job_id"], "--json").stdout)) == []
    events = seen[DATA_COMMANDS.index(["events"])]
    assert all(isinstance(e["payload"], dict) for e in events)
    # The job records the command's parameters as an object, not as text.
    assert any(isinstance(j.get("parameters"), dict) for j in seen[DATA_COMMANDS.index(["jobs"])])
