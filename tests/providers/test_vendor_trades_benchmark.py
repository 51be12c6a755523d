"""benchmarks/vendor_trades.py fills trades from both vendors' emulators and reports them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_vendor_trades_benchmark_prints_its_figures() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = str(ROOT / "benchmarks" / "vendor_trades.py")
    args = ["--quick", "--runs", "1", "--symbols", "1", "--sessions", "1", "--json"]
    out = subprocess.check_output([sys.executable, script, *args], env=env, timeout=600)
    figures = json.loads(out)
    for vendor, pages in (("alpaca", 5), ("polygon", 1)):
        got = figures[vendor]
        assert got["prints"] == 390 * 128, vendor  # one session of the demo's prints
        assert got["requests"] == pages, vendor  # 10,000 and 50,000 prints a page
        assert got["prints_per_s"] > 0 and got["emulator_cpu_s"] > 0
    assert figures["peak_rss_mib"] > 0 and figures["per_minute"] == 128
