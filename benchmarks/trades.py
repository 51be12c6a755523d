"""Trades throughput: a demo fill of 20 symbols x 5 sessions x 1,000,000 trades per session into
Parquet (fetch, check, write, record: end to end), then those trades resampled to 1-second bars.
Each run is a fresh lake in a fresh process, so peak RSS is the fill's own.

    python benchmarks/trades.py [--runs 3] [--quick] --json

Prints {"trades": ..., "fill": {"trades_per_s": median, "wall_s": median, "peak_rss_mib": max},
"resample_1s": {"trades_per_s": median, "bars": ...}}. Targets: at least 2,000,000 trades/s
into Parquet end to end, peak RSS under 1.5 GiB, at least 10,000,000 trades/s resampled.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

SESSIONS = (date(2025, 3, 3), date(2025, 3, 7))  # Monday to Friday: five sessions
NOW = datetime(2025, 3, 10, 22, tzinfo=UTC)
MINUTES = 390  # a regular XNYS session


def one_run(symbols: int, per_session: int) -> dict[str, float]:
    from barlake import Lake

    names = [f"T{i:03d}" for i in range(symbols)]
    per_minute = math.ceil(per_session / MINUTES)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "lake.yaml").write_text(
            "providers:\n  demo:\n    options:\n"
            f"      trades_per_minute: {per_minute}\n      trades_per_page: 100000\n"
        )
        lake = Lake.init(tmp, clock=lambda: NOW)
        lake.add_symbols(names)
        started = time.perf_counter()
        result = lake.fill(names, interval="trades", start=SESSIONS[0], end=SESSIONS[1])
        wall = time.perf_counter() - started
        assert result.status == "done", result.symbol_errors
        fill_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        bars = lake.trade_bars(names, every="1s", start=SESSIONS[0], end=SESSIONS[1])
        resample = time.perf_counter() - started
    return {
        "trades": result.trades_written,
        "requests": result.trade_requests,
        "wall_s": wall,
        "trades_per_s": result.trades_written / wall,
        "peak_rss_mib": fill_rss,
        "resample_s": resample,
        "resample_per_s": result.trades_written / resample,
        "bars_1s": bars.height,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="A small fill for smoke runs.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    symbols, per_session = (2, 200_000) if args.quick else (20, 1_000_000)
    if args.one:
        print(json.dumps(one_run(symbols, per_session)))
        return
    runs = []
    for _ in range(args.runs):
        cmd = [sys.executable, __file__, "--one", *(["--quick"] if args.quick else [])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out))
    report = {
        "benchmark": "demo trades fill and 1s resample",
        "shape": f"{symbols} symbols x 5 sessions x {per_session:,} trades per session",
        "runs": args.runs,
        "trades": runs[0]["trades"],
        "requests": runs[0]["requests"],
        "fill": {
            "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
            "trades_per_s": round(statistics.median(r["trades_per_s"] for r in runs)),
            "trades_per_s_max": round(max(r["trades_per_s"] for r in runs)),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
        },
        "resample_1s": {
            "wall_s": round(statistics.median(r["resample_s"] for r in runs), 3),
            "trades_per_s": round(statistics.median(r["resample_per_s"] for r in runs)),
            "trades_per_s_max": round(max(r["resample_per_s"] for r in runs)),
            "bars": runs[0]["bars_1s"],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
