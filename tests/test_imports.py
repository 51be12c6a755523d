"""The core library stays free of the front end, and of pandas, whose import alone costs most of
a second: a notebook that imports barlake and fills a lake loads neither click nor rich. The
front end starts at once: ``lake --help`` loads click and none of the heavy libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import barlake
import barlake.cli

#: What ``import barlake`` and ``lake --help`` must not load (each costs tens of milliseconds).
HEAVY = ("polars", "duckdb", "pyarrow", "numpy", "pydantic", "rich", "exchange_calendars", "httpx")

SCRIPT = """
import sys
from datetime import date
from barlake import Lake
lake = Lake.init(sys.argv[1])
lake.add_symbols("AAA,BBB")
lake.fill(interval=["1day", "1min"], start=date(2024, 6, 3), end=date(2024, 6, 7))
lake.gaps(interval="1day", start=date(2024, 6, 3), end=date(2024, 6, 7))
print(sorted(m for m in ("click", "rich", "pandas") if m in sys.modules))
"""


def test_core_loads_no_cli_libraries_and_no_pandas(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "lake")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.strip() == "[]"


def test_public_api_is_curated() -> None:
    # The names load lazily (PEP 562): each must still resolve.
    assert "Lake" in barlake.__all__
    for name in barlake.__all__:
        assert hasattr(barlake, name), name
    assert sorted(barlake.__all__) == sorted(set(barlake.__all__))


def loaded_after(code: str) -> tuple[str, list[str]]:
    """Run ``code`` in a fresh interpreter: its stdout and the heavy modules it left loaded."""
    script = f"""
import sys
{code}
print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}), file=sys.stderr)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return proc.stdout, eval(proc.stderr.strip().splitlines()[-1])


def test_lake_help_loads_nothing_heavy() -> None:
    out, heavy = loaded_after("from barlake.cli import main\nmain(['--help'])")
    assert heavy == []
    assert "Commands:" in out
    assert re.search(r"\n  symbols +Manage the symbols the lake tracks\.", out), out


def test_every_command_help_loads_nothing_heavy() -> None:
    code = """
from barlake.cli import COMMANDS, main
for name in COMMANDS:
    main([name, "--help"])
for group in ("symbols", "layers"):
    for sub in ("add", "list") if group == "symbols" else ("set", "compute"):
        main([group, sub, "--help"])
"""
    out, heavy = loaded_after(code)
    assert heavy == []
    assert out.count("Usage: lake ") == len(barlake.cli.COMMANDS) + 4


def test_importing_barlake_loads_its_names_on_first_use() -> None:
    code = """
import barlake
before = sorted(m for m in sys.modules if m.startswith("barlake."))
from barlake.lake import Lake
from barlake.errors import LockError
assert barlake.Lake is Lake and barlake.LockError is LockError
assert set(barlake.__all__) <= set(dir(barlake))
print(before)
"""
    out, heavy = loaded_after(code)
    assert out.strip() == "[]"
    # The names resolve to the real modules; the facade loads no data library until a lake
    # is opened (which catalog backend it needs is known only then).
    assert "polars" not in heavy
