"""Pictures of the lake, drawn with matplotlib (an optional extra: ``pip install 'barlake[plot]'``).

matplotlib is imported only when a picture is drawn, and only through its Agg canvas: no pyplot,
so no global backend is chosen and nothing opens a window. A coverage map is a PNG of exactly
``size`` pixels (default ``DEFAULT_SIZE``, 1200 x 600: 12 x 6 inches at ``DPI`` 100), however
many symbols and sessions it shows. When there are more rows or columns than pixels, cells are
merged into blocks that show their worst state, so a single hole never disappears.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from barlake.coverage.matrix import (
    EMPTY,
    MISSING,
    NOT_EXPECTED,
    PROVISIONAL,
    STATES,
    STORED,
    States,
)
from barlake.errors import UsageError
from barlake.views.files import write_output

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from barlake.views.coverage import Coverage

#: Width and height in pixels.
Size = tuple[int, int]

DPI: Final = 100
DEFAULT_SIZE: Final[Size] = (1200, 600)

#: Colour of each state code.
COLOURS: Final[dict[int, str]] = {
    MISSING: "#d62728",  # red: a hole
    STORED: "#2ca02c",  # green
    PROVISIONAL: "#ff7f0e",  # orange: fetched before the close, fetched again
    EMPTY: "#9ecae1",  # pale blue: asked for, came back empty (halted)
    NOT_EXPECTED: "#f2f2f2",  # near white
}
# When cells merge into one pixel, the worst state wins: holes first, absences last.
_SEVERITY: Final = np.array([4, 1, 3, 2, 0], dtype=np.int8)  # indexed by state code
_BY_SEVERITY: Final = np.argsort(_SEVERITY).astype(np.int8)  # severity -> state code
_MAX_SYMBOL_LABELS = 40
_MAX_DATE_LABELS = 8


def coverage_figure(
    coverage: Coverage, *, title: str | None = None, size: Size | None = None
) -> Figure:
    """The coverage map as a matplotlib ``Figure`` (rows: symbols, columns: sessions)."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    width, height = size or DEFAULT_SIZE
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    n, m = coverage.states.shape
    shown = condense(coverage.states, max(height, 1), max(width, 1))
    if n and m:
        colours = ListedColormap([COLOURS[code] for code in STATES])
        norm = BoundaryNorm(np.arange(len(STATES) + 1) - 0.5, len(STATES))
        ax.imshow(
            shown,
            cmap=colours,
            norm=norm,
            aspect="auto",
            interpolation="nearest",
            extent=(-0.5, m - 0.5, n - 0.5, -0.5),
        )
        _label_axes(ax, coverage)
    else:
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    counts = {code: int((coverage.states == code).sum()) for code in STATES}
    ax.legend(
        handles=[
            Patch(facecolor=COLOURS[code], edgecolor="#666666", label=f"{name} ({counts[code]:,})")
            for code, name in STATES.items()
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=len(STATES),
        frameon=False,
        fontsize="small",
    )
    ax.set_title(title or _title(coverage), fontsize="medium")
    return fig


def coverage_map(
    coverage: Coverage, path: str | Path, *, title: str | None = None, size: Size | None = None
) -> Path:
    """Write the coverage map to ``path`` as a PNG of ``size`` pixels; returns the path."""
    return write_output(path, coverage_png(coverage, title=title, size=size), "coverage map")


def coverage_png(
    coverage: Coverage, *, title: str | None = None, size: Size | None = None
) -> bytes:
    """The coverage map as PNG bytes (for embedding in a page)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # A symbol whose letters the font lacks is drawn as boxes, not refused.
        warnings.filterwarnings("ignore", r"Glyph \d+ .* missing from font", UserWarning)
        fig = coverage_figure(coverage, title=title, size=size)
        # No ``bbox_inches="tight"``: it would change the pixel size.
        fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def condense(states: States, max_rows: int, max_cols: int) -> States:
    """``states`` shrunk to at most ``max_rows`` x ``max_cols`` cells, each block of cells
    showing its worst state (missing, provisional, empty, stored, not expected)."""
    out = _SEVERITY[states]
    for axis, limit in ((0, max_rows), (1, max_cols)):
        length = out.shape[axis]
        if length <= limit:
            continue
        block = -(-length // limit)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, block * -(-length // block) - length)
        out = np.pad(out, pad, constant_values=0)
        shape = list(out.shape)
        shape[axis : axis + 1] = [shape[axis] // block, block]
        out = out.reshape(shape).max(axis=axis + 1)
    return _BY_SEVERITY[out]


def _title(coverage: Coverage) -> str:
    if not len(coverage.sessions):
        return f"{coverage.interval} coverage: no sessions"
    first, last = coverage.sessions[0], coverage.sessions[-1]
    return (
        f"{coverage.interval} coverage of {len(coverage.symbols):,} symbol(s), {first} to {last}: "
        f"{coverage.gap_sessions:,} session(s) to fetch"
    )


def _label_axes(ax: Axes, coverage: Coverage) -> None:
    n, m = coverage.states.shape
    if n <= _MAX_SYMBOL_LABELS:
        ax.set_yticks(range(n), list(coverage.symbols), fontsize="small")
    else:
        rows = np.linspace(0, n - 1, _MAX_SYMBOL_LABELS // 2).round().astype(int)
        ax.set_yticks(rows.tolist(), [coverage.symbols[i] for i in rows], fontsize="x-small")
    cols = np.unique(np.linspace(0, m - 1, min(m, _MAX_DATE_LABELS)).round().astype(int))
    ax.set_xticks(cols.tolist(), [str(coverage.sessions[j]) for j in cols], fontsize="small")
    ax.set_xlabel("session")


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        msg = "plots need matplotlib: pip install 'barlake[plot]'"
        raise UsageError(msg) from None
