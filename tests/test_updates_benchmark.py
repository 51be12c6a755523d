"""benchmarks/updates.py runs and reports what it measured (its speed target is its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_updates_benchmark_prints_its_figures() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "updates.py"), "--quick", "--runs", "2"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    report = json.loads(out.stdout)
    cases = {(c["symbols"], c["years"]): c for c in report["cases"]}
    assert set(cases) == {(100, 1), (100, 3), (1000, 1), (1000, 3)}
    # 2024's XNYS sessions through 2024-11-29: 231; 2022 and 2023: 251 and 250.
    assert cases[(1000, 1)]["stored_rows"] == 1000 * 231
    assert cases[(1000, 3)]["stored_rows"] == 1000 * (251 + 250 + 231)
    for case in cases.values():
        assert len(case["append_runs_s"]) == 2 and case["append_s"] > 0
        # The year file holds the year so far and the two sessions appended.
        assert case["rewritten_rows"] == case["symbols"] * (231 + 2)
    assert set(report["years_ratio"]) == {"100", "1000"}
