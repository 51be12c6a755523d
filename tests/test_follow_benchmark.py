"""benchmarks/follow.py runs and reports what it measured: the session it followed ends exactly
the emulator's record (its latency target is its own, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_follow_benchmark_prints_its_figures(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = str(ROOT / "benchmarks" / "follow.py")
    args = ["--quick", "--runs", "1", "--dir", str(tmp_path), "--json"]
    out = subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    figures = json.loads(out.stdout)
    assert (figures["missing"], figures["duplicates"], figures["mismatched"]) == (0, 0, 0)
    assert figures["live_files_left"] == 0 and figures["drops"] >= 1
    assert figures["messages"] > 0 and figures["p50_s"] <= figures["p99_s"]
    assert figures["corrections"] > 0 and figures["bars_received"] >= figures["messages"] / 2
    assert figures["compaction_bytes_written"] > 0 and figures["cpu_s_per_1000_bars"] > 0
    assert set(figures["targets"]) == {"p99_under_2s", "missing_0", "duplicates_0"}
