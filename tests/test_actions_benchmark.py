"""benchmarks/actions.py runs and reports what it measured (its speed target is its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_actions_benchmark_prints_its_figures(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "actions.py"),
            "--quick",
            "--runs",
            "1",
            "--dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    figures = json.loads(out.stdout)
    assert figures["bars"] == figures["symbols"] * 502 and figures["bars_checked"] > 0
    assert figures["actions"] > figures["symbols"] and figures["target_ratio_total"] == 1.5
    assert figures["raw_s"] > 0 and figures["total_s"] > 0
