"""`lake` start-up cost: CPU seconds of short commands next to a bare ``import click``.

    python benchmarks/cli_startup.py [--runs 10] --json

A small demo lake is built first in a temporary folder (``lake init``, ``lake symbols add
AAPL,MSFT``, ``lake fill --provider demo --days 10``). Then each command runs ``--runs`` times,
alternating with the baseline ``python -c "import click"`` (A B A B ...) so that both see the same
machine load. The cost of a run is the child's CPU time (user + sys, from ``os.wait4``): wall time
on a shared machine says more about the neighbours than about the command.

Prints one JSON object: per command the median CPU seconds, the baseline's median and the median
of the per-pair ratios; then the targets and whether each is met. Targets: ``lake --help`` at
most 3x the baseline; ``lake status`` and ``lake symbols list`` at most 0.25 s of CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BASELINE = [sys.executable, "-c", "import click"]
COMMANDS: dict[str, list[str]] = {
    "lake --help": ["--help"],
    "lake status": ["status"],
    "lake symbols list": ["symbols", "list"],
    "lake gaps": ["gaps"],
}
#: Exit codes a healthy run may end with: ``lake gaps`` says 1 when the demo left a gap.
ACCEPTED = {"lake gaps": {0, 1}}
HELP_RATIO, LEAN_CPU_S = 3.0, 0.25


def lake_command() -> list[str]:
    """The ``lake`` console script next to this interpreter, else ``python -m barlake``."""
    script = Path(sys.executable).with_name("lake")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "barlake"]


def cpu_seconds(argv: list[str], accepted: set[int] | None = None) -> float:
    """Run ``argv`` to its end, output discarded: the child's user + sys CPU seconds."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: no pipe to fill and block
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors)
        # wait4 gives this child's own resource usage; Popen.wait would only give its status.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if proc.returncode not in (accepted or {0}):
        msg = f"{' '.join(argv)} exited {proc.returncode}: {stderr.strip()}"
        raise RuntimeError(msg)
    return usage.ru_utime + usage.ru_stime


def build_lake(lake: list[str], root: Path) -> None:
    """The demo lake the commands read: two symbols, ten days of daily bars."""
    for args in (
        ["init"],
        ["symbols", "add", "AAPL,MSFT"],
        ["fill", "--provider", "demo", "--days", "10"],
    ):
        subprocess.run([*lake, "--lake", str(root), "--quiet", *args], check=True)


def measure(lake: list[str], root: Path, runs: int) -> dict[str, dict[str, float]]:
    """Per command: median CPU, the baseline's median CPU, median of the per-pair ratios."""
    figures = {}
    for name, args in COMMANDS.items():
        argv = [*lake, "--lake", str(root), *args]
        accepted = ACCEPTED.get(name, {0})
        cpu_seconds(argv, accepted)  # warm-up: file cache, calendar cache, bytecode
        cpu_seconds(BASELINE)
        command, baseline = [], []
        for _ in range(runs):
            command.append(cpu_seconds(argv, accepted))
            baseline.append(cpu_seconds(BASELINE))
        figures[name] = {
            "cpu_s": round(statistics.median(command), 4),
            "baseline_cpu_s": round(statistics.median(baseline), 4),
            "ratio": round(
                statistics.median(c / b for c, b in zip(command, baseline, strict=True)), 2
            ),
        }
    return figures


def targets(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Each target, the measured value and whether it is met."""
    found = {
        f"lake --help ratio <= {HELP_RATIO}": (figures["lake --help"]["ratio"], HELP_RATIO),
        **{
            f"{name} cpu_s <= {LEAN_CPU_S}": (figures[name]["cpu_s"], LEAN_CPU_S)
            for name in ("lake status", "lake symbols list")
        },
    }
    return {
        label: {"value": value, "limit": limit, "met": value <= limit}
        for label, (value, limit) in found.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="Pairs of runs per command.")
    parser.add_argument("--json", action="store_true", help="Print JSON (the default).")
    args = parser.parse_args()
    lake = lake_command()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        build_lake(lake, root)
        figures = measure(lake, root, args.runs)
    met = targets(figures)
    report = {
        "benchmark": "lake start-up, CPU seconds per run",
        "runs": args.runs,
        "baseline": 'python -c "import click"',
        "commands": figures,
        "targets": met,
        "targets_met": all(t["met"] for t in met.values()),
    }
    print(json.dumps(report, indent=2))
    for label, target in met.items():
        verdict = "met" if target["met"] else "NOT met"
        print(f"{label}: {target['value']} ({verdict})", file=sys.stderr)


if __name__ == "__main__":
    main()
