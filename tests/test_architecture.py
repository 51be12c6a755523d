"""The import contracts in pyproject.toml hold, and a contract broken on purpose is caught."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter is not installed")


def lint(config: Path) -> subprocess.CompletedProcess[str]:
    assert LINT is not None
    return subprocess.run(
        [LINT, "--no-cache", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT / "src",
        timeout=300,
        check=False,
    )


def contracts_file(tmp_path: Path, extra: list[dict[str, object]]) -> Path:
    """The project's import-linter settings in INI form, plus ``extra`` contracts."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", f"root_package = {settings['root_package']}"]
    lines.append(f"include_external_packages = {settings['include_external_packages']}")
    for i, contract in enumerate([*settings["contracts"], *extra]):
        lines.append(f"[importlinter:contract:{i}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines.append(f"{key} =")
                lines += [f"    {v}" for v in value]
            else:
                lines.append(f"{key} = {value}")
    path = tmp_path / "contracts.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_contracts_hold(tmp_path: Path) -> None:
    proc = lint(contracts_file(tmp_path, []))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_a_contract_broken_on_purpose_fails(tmp_path: Path) -> None:
    # The store really reads the calendars: a contract that forbids it must fail the run.
    wrong = {
        "name": "storage may not know calendars",
        "type": "forbidden",
        "source_modules": ["barlake.storage"],
        "forbidden_modules": ["barlake.calendars"],
    }
    proc = lint(contracts_file(tmp_path, [wrong]))
    assert proc.returncode != 0
    assert "storage may not know calendars BROKEN" in proc.stdout


def test_no_module_below_the_facade_knows_lake() -> None:
    package = ROOT / "src" / "barlake"
    front_ends = {"cli", "api"}
    below = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] not in front_ends]
    offenders = [
        str(p.relative_to(ROOT))
        for p in below
        if p.name != "lake.py"
        and p.name != "__init__.py"
        and ("from barlake.lake import" in p.read_text() or "import barlake.lake" in p.read_text())
    ]
    assert offenders == []
