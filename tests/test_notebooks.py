"""The research notebooks run top to bottom against a temporary lake, and are stored clean.

Each notebook runs in a Jupyter kernel of this very interpreter: the test writes its own kernel
spec (``sys.executable -m ipykernel_launcher``) into a temporary ``JUPYTER_PATH``, so a
``python3`` kernel installed elsewhere on the machine can never be picked up by mistake.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from barlake.fetch.job import JobResult
from barlake.lake import Lake

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
KERNEL = "barlake-test"
CELL_TIMEOUT_S = 120


def test_fill_works_inside_a_running_event_loop(lake_root: Path) -> None:
    """Jupyter kernels run cells inside an event loop; ``fill`` must work there too."""
    lake = Lake.open(lake_root, clock=lambda: datetime(2025, 1, 15, 22, tzinfo=UTC))
    lake.add_symbols("AAA,BBB")

    async def cell() -> JobResult:
        return lake.fill(provider="demo", start=date(2024, 6, 3), end=date(2024, 6, 7))

    result = asyncio.run(cell())
    assert result.ok and result.bars_written == 10
    assert lake.gaps(start=date(2024, 6, 3), end=date(2024, 6, 7)) == []


def test_the_four_notebooks_are_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_quickstart",
        "02_gaps_and_coverage",
        "03_layers_and_retention",
        "04_backtest_from_parquet",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs; clear them"
            assert cell.execution_count is None, f"{path.name}: clear execution counts"
        assert not cell.get("attachments"), f"{path.name}: a cell has attachments"


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JUPYTER_PATH holding one kernel spec: this interpreter running ipykernel."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "barlake tests", "language": "python"})
    )
    return root


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, kernel_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    # Jupyter's future default folders (older jupyter_core warns without this), and IPython's
    # profile kept out of the home folder.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    lake = tmp_path / "lake"
    monkeypatch.setenv("BARLAKE_NOTEBOOK_LAKE", str(lake))
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    assert (lake / "catalog.duckdb").exists()  # it used the temporary lake
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert errors == []
