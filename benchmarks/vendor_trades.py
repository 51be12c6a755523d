"""Trades from the vendors: a ``lake fill --interval trades`` through the Alpaca and the
Polygon/Massive providers, each against its emulator in a process of its own.

    python benchmarks/vendor_trades.py [--quick] [--vendors alpaca,polygon] [--runs 3] --json

Each vendor's emulator (``_emulator_process.py``) serves the demo's prints, ``--per-minute``
of them a minute (default 1,282: 500,000 a session; ``--quick`` 128: 50,000), with no rate
limit; a fresh lake fills ``--symbols`` symbols (default 2) x ``--sessions`` sessions (default
2) of them, ``--runs`` times (median). What is measured is the provider's side end to end: the
HTTP pages, their parsing into the trades schema, validation and the Parquet files, while the
emulator encodes on its own cores. Prints one JSON object per vendor list:
``{"alpaca": {"prints", "requests", "fill_s", "prints_per_s", "emulator_cpu_s"}, ...,
"peak_rss_mib"}``. No target: the figures say what a vendor's own network time leaves to
barlake (Alpaca pages 10,000 prints, Massive 50,000).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

import barlake
from barlake import Lake
from barlake.calendars.calendar import get_calendar
from barlake.domain.ranges import DateRange

RUNNER = Path(__file__).with_name("_emulator_process.py")
KEY, SECRET = "bench-key", "bench-secret"
CLOCK = datetime(2025, 1, 15, 22, tzinfo=UTC)
FIRST = date(2024, 6, 3)


class Vendor:
    """One emulator in a process of its own: its URL is its first line; ``count`` lines are
    answered with its requests and CPU seconds so far."""

    def __init__(self, name: str, per_minute: int) -> None:
        settings = {"api_key": KEY, "api_secret": SECRET, "trades_per_minute": per_minute}
        settings |= {"rate_limit": 1_000_000, "now": CLOCK.isoformat()}
        src = str(Path(barlake.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, str(RUNNER), name, json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            msg = f"the {name} emulator did not start (exit code {self.proc.poll()})"
            raise RuntimeError(msg)

    def counts(self) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return dict(json.loads(self.proc.stdout.readline()))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def fill(vendor: str, url: str, root: Path, symbols: list[str], window: DateRange) -> Any:
    """One fill of the trades of ``symbols`` in ``window`` into a fresh lake at ``root``."""
    if root.exists():
        shutil.rmtree(root)
    Lake.init(root)
    options: dict[str, Any] = {"api_key": KEY}
    if vendor == "alpaca":
        options["api_secret"] = SECRET
    entry = {"base_url": url, "rate_limit_per_min": 1_000_000, "options": options}
    config = {"default_provider": vendor, "backfill": {"fetch_actions": False}}
    config["providers"] = {vendor: entry}
    (root / "lake.yaml").write_text(yaml.safe_dump(config))
    lake = Lake.open(root, clock=lambda: CLOCK)
    lake.add_symbols(symbols)
    result = lake.fill(",".join(symbols), interval="trades", start=window.start, end=window.last)
    if result.status != "done":
        msg = f"{vendor} fill ended {result.status}: {result.symbol_errors}"
        raise RuntimeError(msg)
    return result


def measure(vendor: str, args: argparse.Namespace, base: Path) -> dict[str, Any]:
    sessions = get_calendar("XNYS").sessions_in(DateRange(FIRST, date(2024, 7, 1)))
    last = date.fromisoformat(str(sessions[args.sessions - 1]))
    window = DateRange.inclusive(FIRST, last)
    symbols = [f"T{i:03d}" for i in range(args.symbols)]
    emulator = Vendor(vendor, args.per_minute)
    try:
        times, cpu, result = [], [], None
        for _ in range(args.runs):
            before = emulator.counts()
            started = time.perf_counter()
            result = fill(vendor, emulator.url, base / vendor, symbols, window)
            times.append(time.perf_counter() - started)
            cpu.append(emulator.counts()["cpu_s"] - before["cpu_s"])
    finally:
        emulator.stop()
    assert result is not None
    seconds = statistics.median(times)
    return {
        "prints": result.trades_written,
        "requests": result.trade_requests,
        "fill_s": round(seconds, 3),
        "prints_per_s": round(result.trades_written / seconds),
        "emulator_cpu_s": round(statistics.median(cpu), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 prints a session.")
    parser.add_argument("--vendors", default="alpaca,polygon", help="Comma-separated.")
    parser.add_argument("--symbols", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--per-minute", type=int, help="Prints a minute (default 1282).")
    parser.add_argument("--runs", type=int, default=3, help="Fills per vendor (median).")
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args()
    args.per_minute = args.per_minute or (128 if args.quick else 1282)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="barlake-bench-vendor-trades-") as tmp:
        for vendor in args.vendors.split(","):
            figures[vendor] = measure(vendor, args, Path(tmp))
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    figures |= {"symbols": args.symbols, "sessions": args.sessions}
    figures |= {"per_minute": args.per_minute, "runs": args.runs}
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:16} {value}")


if __name__ == "__main__":
    main()
