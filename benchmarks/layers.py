"""Layers and policy plans at scale: `lake layers import` of a 10,000-row scanner file and
`lake plan --policy scanner_layers` over 10,000 symbols, each timed as a whole CLI process.

    python benchmarks/layers.py [--symbols 10000] [--runs 5] --json

Each import run alternates between two scanner files, so every run changes layers and writes
events. Prints medians (and min/max) of the runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def lake(root: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "barlake", "--lake", str(root), "--quiet", *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(values), 3),
        "min_s": round(min(values), 3),
        "max_s": round(max(values), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        names = [f"X{i:05d}" for i in range(args.symbols)]
        universe = Path(tmp) / "universe.csv"
        universe.write_text("symbol\n" + "\n".join(names) + "\n")
        scans = []
        for k in range(2):
            path = Path(tmp) / f"scan{k}.csv"
            rows = [
                f"{s},{rng.choice([0, 0, 0, 1, 1, 2, 3])},{rng.uniform(0, 500):.2f}" for s in names
            ]
            path.write_text("symbol,layer,liquidity_score\n" + "\n".join(rows) + "\n")
            scans.append(path)
        lake(root, "init")
        symbols_import = lake(root, "symbols", "import", str(universe))
        imports = [lake(root, "layers", "import", str(scans[i % 2])) for i in range(args.runs)]
        plans = [
            lake(root, "plan", "--policy", "scanner_layers", "--json") for _ in range(args.runs)
        ]
        startup = [lake(root, "symbols", "list", "--json") for _ in range(args.runs)]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "barlake",
                "--lake",
                str(root),
                "plan",
                "--policy",
                "scanner_layers",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        plan = json.loads(out)
    report = {
        "benchmark": "layers and policy plans",
        "symbols": args.symbols,
        "runs": args.runs,
        "symbols_import_s": round(symbols_import, 3),
        "layers_import": summary(imports),
        "plan_policy": summary(plans),
        "cli_startup_symbols_list": summary(startup),
        "plan_requests": plan["total_requests"],
        "plan_missing_sessions": plan["missing_sessions"],
        "plan_skipped": len(plan["skipped"]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
