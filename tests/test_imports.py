"""The core library stays free of the front end, and of pandas, whose import alone costs most of
a second: a notebook that imports barlake and fills a lake loads neither click nor rich."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import barlake

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
    assert "Lake" in barlake.__all__
    for name in barlake.__all__:
        assert hasattr(barlake, name), name
    assert sorted(barlake.__all__) == sorted(set(barlake.__all__))
