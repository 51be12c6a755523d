"""Pictures of the lake, drawn with matplotlib (an optional extra: ``pip install 'barlake[plot]'``).

matplotlib is imported only when a picture is drawn, and only through its Agg canvas: no pyplot,
so no global backend is chosen and nothing opens a window. A coverage map is a PNG of exactly
``size`` pixels (default ``DEFAULT_SIZE``, 1200 x 600: 12 x 6 inches at ``DPI`` 100), however
many symbols and sessions it shows.

The map is painted pixel by pixel (``layout`` says where every row and column goes) and stays
legible from one symbol to thousands:

- When every symbol can have a row at least ``DETAIL_ROW_PX`` tall (about 60 symbols at the
  default size), each symbol is a row.
- Beyond that, each group of symbols (each layer, for ``Lake.coverage``) is one band whose
  columns stack the share of its symbols in each state, the worst on top: missing, provisional,
  empty, stored, not expected. Below the bands, the symbols with gaps get a row each, those with
  the most gaps first, as many as the height gives rows tall enough to carry their name; the
  caption says how many of them are shown. A band shows how much of a layer a session misses
  and that a single symbol misses it; a single colour per session would say only the second.
- Sessions are merged into columns of several when there are more sessions than the width
  gives columns of ``MIN_CELL_PX``; a merged cell shows its worst state.
- A missing or provisional cell, and a missing or provisional share of a band, is never smaller
  than ``MIN_CELL_PX`` in either direction: a single hole is never a one-pixel dash.
- Labels are spaced by the height of a line of text, so they never overlap: where rows are
  thinner than a line, only some rows are named.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

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
    from datetime import date

    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure

    from barlake.views.coverage import Coverage

#: Width and height in pixels.
Size = tuple[int, int]

DPI: Final = 100
DEFAULT_SIZE: Final[Size] = (1200, 600)
#: The least width and height of a missing or provisional cell, in pixels.
MIN_CELL_PX: Final = 4
#: Every symbol has its own row when all rows can be at least this tall, in pixels.
DETAIL_ROW_PX: Final = 8
#: Font size of the labels, in points.
LABEL_PT: Final = 8
#: Labels longer than this many characters are cut short.
MAX_LABEL_CHARS: Final = 20

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
_WORST_FIRST: Final = _BY_SEVERITY[::-1].copy()  # the stacking order of a band, top down
_PROBLEMS: Final = (MISSING, PROVISIONAL)
_BACKGROUND: Final = (255, 255, 255)
_BAND_GAP_PX: Final = 2  # white between two bands
_SECTION_GAP_PX: Final = 8  # white between the bands and the symbols' rows
_MARGIN_PX: Final = 8
_MEASURED_LABELS: Final = 20  # the longest labels measured for the left margin
_RULED_ROW_PX: Final = 10  # symbols' rows at least this tall are ruled off from each other


@dataclass(frozen=True)
class Band:
    """One horizontal strip of the map: a symbol's row, or a group's band of shares."""

    label: str
    kind: Literal["symbol", "group"]
    #: Indices (into ``Coverage.symbols``) of the symbols it shows.
    rows: tuple[int, ...]
    #: First pixel row and height, in pixels of the map (0 = the map's top edge).
    top: int
    height: int


@dataclass(frozen=True)
class Layout:
    """Where everything of a coverage map goes, in pixels (y counted from the top)."""

    size: Size
    #: The map's box in the figure: left, top, width, height.
    box: tuple[int, int, int, int]
    bands: tuple[Band, ...]
    #: Sessions per column, and the columns' edges in pixels of the map (columns + 1 values).
    block: int
    edges: tuple[int, ...]
    #: Indices of the bands whose label is drawn, and of the columns whose date is.
    labelled: tuple[int, ...]
    dated: tuple[int, ...]
    #: "symbols": a row per symbol; "groups": bands per group, then the symbols with gaps.
    mode: Literal["symbols", "groups", "none"]
    #: Symbols with gaps, and how many of them have a row of their own.
    with_gaps: int
    shown_with_gaps: int
    caption: str

    def band(self, symbol: int) -> Band | None:
        """The row of the symbol at index ``symbol`` (None when only a group band shows it)."""
        return next((b for b in self.bands if b.kind == "symbol" and b.rows == (symbol,)), None)

    def group(self, symbol: int) -> Band | None:
        """The group band that counts the symbol at index ``symbol``, if groups are shown."""
        return next((b for b in self.bands if b.kind == "group" and symbol in b.rows), None)

    def pixel_rows(self, band: Band) -> range:
        """The figure's pixel rows that ``band`` is painted on."""
        top = self.box[1] + band.top
        return range(top, top + band.height)

    def pixel_columns(self, column: int) -> range:
        """The figure's pixel columns of the map's ``column`` (sessions ``column * block`` on)."""
        left = self.box[0]
        return range(left + self.edges[column], left + self.edges[column + 1])


def coverage_figure(
    coverage: Coverage, *, title: str | None = None, size: Size | None = None
) -> Figure:
    """The coverage map as a matplotlib ``Figure`` (rows: symbols or groups, columns:
    sessions), drawn as ``layout`` says."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    width, height = size or DEFAULT_SIZE
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    measure = _Measure(canvas.get_renderer())  # type: ignore[no-untyped-call]
    plan = _layout(coverage, (width, height), measure)
    left, top, w, h = plan.box
    ax = fig.add_axes((left / width, (height - top - h) / height, w / width, h / height))
    ax.set_facecolor("none")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    if plan.mode == "none":
        ax.text(0.5, 0.5, "nothing to show", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        fig.figimage(paint(coverage, plan), xo=left, yo=height - top - h, origin="upper")
        _label_axes(ax, coverage, plan)
    counts = {code: int((coverage.states == code).sum()) for code in STATES}
    entries = [f"{name} ({counts[code]:,})" for code, name in STATES.items()]
    fig.legend(
        handles=[
            Patch(facecolor=COLOURS[code], edgecolor="#666666", label=label)
            for code, label in zip(STATES, entries, strict=True)
        ],
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=_legend_columns(entries, width, measure),
        frameon=False,
        fontsize=LABEL_PT,
    )
    fig.text(
        0.5,
        1 - _MARGIN_PX / height,
        title or _title(coverage),
        ha="center",
        va="top",
        fontsize=LABEL_PT + 2,
    )
    if plan.caption:
        fig.text(
            0.5,
            1 - (_MARGIN_PX + measure.line(LABEL_PT + 2) + 2) / height,
            plan.caption,
            ha="center",
            va="top",
            fontsize=LABEL_PT,
            color="#555555",
        )
    return fig


def layout(coverage: Coverage, size: Size | None = None) -> Layout:
    """Where ``coverage``'s map of ``size`` pixels puts its bands, columns and labels."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import RendererAgg

    width, height = size or DEFAULT_SIZE
    renderer = RendererAgg(1, 1, DPI)  # type: ignore[no-untyped-call]
    return _layout(coverage, (width, height), _Measure(renderer))


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
        block = _block(length, limit)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (0, block * -(-length // block) - length)
        out = np.pad(out, pad, constant_values=0)
        shape = list(out.shape)
        shape[axis : axis + 1] = [shape[axis] // block, block]
        out = out.reshape(shape).max(axis=axis + 1)
    return _BY_SEVERITY[out]


def shares(states: States, height: int) -> States:
    """A group band of ``height`` pixels from its symbols' ``states`` (symbols x columns): per
    column, the share of symbols in each state stacked worst first, as one state per pixel.

    A missing or provisional share is at least ``MIN_CELL_PX`` tall, any other present state at
    least one pixel; the rest of the height goes to the states in proportion to what they hold
    beyond that (largest remainders first).

    >>> import numpy as np
    >>> band = shares(np.array([[0], [1], [1], [1]], dtype=np.int8), 8)
    >>> band[:, 0].tolist()  # a quarter missing on top: 2 pixels, raised to 4
    [0, 0, 0, 0, 1, 1, 1, 1]
    """
    columns = states.shape[1]
    counts = np.stack([(states == code).sum(axis=0) for code in _WORST_FIRST])  # (5, columns)
    least = np.array([MIN_CELL_PX if code in _PROBLEMS else 1 for code in _WORST_FIRST])
    out: States = np.empty((height, columns), dtype=np.int8)
    for j in range(columns):
        stripes = np.repeat(_WORST_FIRST, _stack(counts[:, j], least, height))
        out[:, j] = stripes
    return out


def _stack(counts: npt.NDArray[np.intp], least: npt.NDArray[np.intp], height: int) -> list[int]:
    """Pixels per state (summing to ``height``) for symbols ``counts`` in each state."""
    floor = np.where(counts > 0, least, 0)
    if floor.sum() > height:  # a band too thin for the minimums: plain shares
        floor = np.zeros_like(floor)
    exact = counts / max(int(counts.sum()), 1) * height
    beyond = np.maximum(exact - floor, 0)
    room = height - int(floor.sum())
    wanted = beyond / beyond.sum() * room if beyond.sum() else beyond
    pixels = floor + np.floor(wanted).astype(int)
    short = height - int(pixels.sum())
    order = np.argsort(-(wanted - np.floor(wanted)), kind="stable")
    pixels[order[:short]] += 1
    return [int(p) for p in pixels]


def paint(coverage: Coverage, plan: Layout) -> npt.NDArray[np.uint8]:
    """The map's pixels (height x width x RGB) as ``plan`` lays them out."""
    _, _, width, height = plan.box
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = _BACKGROUND
    columns = len(plan.edges) - 1
    shown = condense(coverage.states, max(len(coverage.symbols), 1), columns)
    palette = np.array([_rgb(COLOURS[code]) for code in STATES], dtype=np.uint8)
    spread = np.repeat(np.arange(columns), np.diff(np.array(plan.edges)))  # pixel -> column
    for band in plan.bands:
        rows = shown[list(band.rows)]
        if band.kind == "group":
            cells = shares(rows, band.height)
        else:
            cells = np.broadcast_to(rows[0], (band.height, columns))
        image[band.top : band.top + band.height] = palette[cells[:, spread]]
        if band.kind == "symbol" and band.height >= _RULED_ROW_PX:
            image[band.top + band.height - 1] = _BACKGROUND  # a hairline between rows
    return image


# -- layout ------------------------------------------------------------------------------------


class _Measure:
    """Text sizes in pixels, from the renderer that will draw them."""

    def __init__(self, renderer: RendererBase) -> None:
        self.renderer = renderer

    def _size(self, text: str, points: float, *, bold: bool = False) -> tuple[float, float]:
        from matplotlib.font_manager import FontProperties

        font = FontProperties(size=points, weight="bold" if bold else "normal")
        w, h, _ = self.renderer.get_text_width_height_descent(text, font, ismath=False)
        return w, h

    def width(self, text: str, points: float = LABEL_PT, *, bold: bool = False) -> int:
        return math.ceil(self._size(text, points, bold=bold)[0])

    def line(self, points: float = LABEL_PT) -> int:
        """The height of a line of text, descenders and a little air included."""
        return math.ceil(self._size("Ag|", points)[1]) + 3


def _layout(coverage: Coverage, size: Size, measure: _Measure) -> Layout:
    width, height = size
    n, m = coverage.states.shape
    line = measure.line()
    gaps = np.isin(coverage.states, _PROBLEMS).sum(axis=1)
    groups = _groups(coverage)
    detail = n * DETAIL_ROW_PX <= _map_height(height, line, measure, caption=False)
    names = [coverage.symbols[i] for i in (range(n) if detail else np.flatnonzero(gaps))]
    longest = sorted({_short(s) for s in names}, key=len)[-_MEASURED_LABELS:]
    widest = max(
        [measure.width(s) for s in longest]
        + [measure.width(_group_label(g, len(r)), bold=True) for g, r in groups if not detail],
        default=0,
    )
    left = min(_MARGIN_PX + 8 + widest, width // 3)
    date_w = measure.width("2024-06-03") + 16
    right = _MARGIN_PX + date_w // 2
    top = _MARGIN_PX + measure.line(LABEL_PT + 2) + (0 if detail else line + 2) + 4
    map_h = max(_map_height(height, line, measure, caption=not detail), 1)
    map_w = max(width - left - right, 1)
    box = (left, top, map_w, map_h)
    if not n or not m:
        return Layout(size, box, (), 1, (0, map_w), (), (), "none", 0, 0, "")
    block = _block(m, max(map_w // MIN_CELL_PX, 1))
    columns = -(-m // block)
    edges = tuple(np.linspace(0, map_w, columns + 1).round().astype(int).tolist())
    with_gaps = int((gaps > 0).sum())
    if detail:
        cuts = np.linspace(0, map_h, n + 1).round().astype(int)
        bands = tuple(
            Band(_short(names[i]), "symbol", (i,), int(cuts[i]), int(cuts[i + 1] - cuts[i]))
            for i in range(n)
        )
        shown, caption = with_gaps, ""
    else:
        bands, shown = _group_bands(coverage, groups, gaps, map_h, line)
        caption = _caption(groups, with_gaps, shown, width - 2 * _MARGIN_PX, measure)
    labelled = _spaced([b.top + b.height / 2 for b in bands], line)
    dated = _spaced([(edges[j] + edges[j + 1]) / 2 for j in range(columns)], date_w)
    mode: Literal["symbols", "groups"] = "symbols" if detail else "groups"
    return Layout(size, box, bands, block, edges, labelled, dated, mode, with_gaps, shown, caption)


def _map_height(height: int, line: int, measure: _Measure, *, caption: bool) -> int:
    title = _MARGIN_PX + measure.line(LABEL_PT + 2) + (line + 2 if caption else 0) + 4
    # Below the map: tick marks, the dates, the axis name and a line or two of legend.
    below = 4 + line + line + 2 * (line + 4) + 12 + _MARGIN_PX
    return height - title - below


def _groups(coverage: Coverage) -> list[tuple[str, tuple[int, ...]]]:
    """The groups as (name, symbol indices), in descending order of name (layer 3 first)."""
    names = coverage.groups or ("all symbols",) * len(coverage.symbols)
    found: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        found.setdefault(name, []).append(i)
    return [(name, tuple(found[name])) for name in sorted(found, reverse=True)]


def _group_bands(
    coverage: Coverage,
    groups: list[tuple[str, tuple[int, ...]]],
    gaps: npt.NDArray[np.intp],
    map_h: int,
    line: int,
) -> tuple[tuple[Band, ...], int]:
    """The bands of the groups, then a row for each symbol with gaps that fits (most gaps
    first, each tall enough for its name); returns them and how many symbols got a row."""
    least = max(line + 4, 3 * MIN_CELL_PX)
    if len(groups) * (least + _BAND_GAP_PX) > map_h // 2:
        # Too many groups for bands of their own: one band of all the symbols.
        groups = [("all symbols", tuple(range(len(coverage.symbols))))]
    count = len(groups)
    worst = sorted(np.flatnonzero(gaps).tolist(), key=lambda i: (-int(gaps[i]), i))
    row_h = max(line, MIN_CELL_PX)
    # The symbols' rows take what they need, up to 70% of the height; the bands the rest.
    rows_h = min(len(worst) * row_h, int(0.7 * map_h)) + (_SECTION_GAP_PX if worst else 0)
    room = map_h - rows_h - _BAND_GAP_PX * (count - 1)
    each = int(np.clip(room / count, least, 96))
    bands: list[Band] = []
    y = 0
    for name, rows in groups:
        bands.append(Band(_group_label(name, len(rows)), "group", rows, y, each))
        y += each + _BAND_GAP_PX
    y += _SECTION_GAP_PX - _BAND_GAP_PX
    room = map_h - y
    fits = min(len(worst), max(room // row_h, 0))
    if fits:
        row_h = min(room // fits, 2 * line)
    for i in worst[:fits]:
        bands.append(Band(_short(coverage.symbols[i]), "symbol", (i,), y, row_h))
        y += row_h
    # A picture too small for even the bands keeps what fits of them.
    kept = tuple(replace(b, height=min(b.height, map_h - b.top)) for b in bands if b.top < map_h)
    return kept, fits


def _caption(
    groups: list[tuple[str, tuple[int, ...]]], with_gaps: int, shown: int, room: int, m: _Measure
) -> str:
    """What the bands and rows are, in the longest wording that fits ``room`` pixels."""
    what = "each layer" if all(n.startswith("layer ") for n, _ in groups) else "each group"
    if not with_gaps:
        rows, short_rows = "no symbol has gaps", "no gaps"
    elif shown == with_gaps:
        rows = f"below, the {with_gaps:,} symbol(s) with gaps, most first"
        short_rows = f"{with_gaps:,} with gaps below"
    else:
        rows = f"below, {shown:,} of the {with_gaps:,} symbols with gaps, most first"
        short_rows = f"{shown:,} of {with_gaps:,} with gaps below"
    wordings = [
        f"bands: the share of {what}'s symbols in each state per session, worst on top; {rows}",
        f"bands: shares of states, worst on top; {short_rows}",
    ]
    return next((w for w in wordings if m.width(w) <= room), wordings[-1])


def _spaced(centres: Sequence[float], gap: float) -> tuple[int, ...]:
    """Indices of ``centres`` (ascending) to label: the first, then each at least ``gap``
    from the last one taken, so that labels ``gap`` long never overlap."""
    taken: list[int] = []
    for i, c in enumerate(centres):
        if not taken or c - centres[taken[-1]] >= gap:
            taken.append(i)
    return tuple(taken)


def _block(length: int, limit: int) -> int:
    """How many cells merge into one so that ``length`` cells fit in ``limit``."""
    return 1 if length <= limit else -(-length // limit)


def _group_label(name: str, count: int) -> str:
    return f"{_short(name)} ({count:,})"


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def _legend_columns(entries: Sequence[str], width: int, measure: _Measure) -> int:
    """As many legend entries per line as the width holds (patch, gap and text each)."""
    each = max(measure.width(e) for e in entries) + 4 * LABEL_PT * DPI // 72
    return int(np.clip((width - 2 * _MARGIN_PX) // max(each, 1), 1, len(entries)))


def _rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def _title(coverage: Coverage) -> str:
    if not len(coverage.sessions):
        return f"{coverage.interval} coverage: no sessions"
    first, last = coverage.sessions[0], coverage.sessions[-1]
    return (
        f"{coverage.interval} coverage of {len(coverage.symbols):,} symbol(s), {first} to {last}: "
        f"{coverage.gap_sessions:,} session(s) to fetch"
    )


def _label_axes(ax: Axes, coverage: Coverage, plan: Layout) -> None:
    bands = [plan.bands[i] for i in plan.labelled]
    ax.set_yticks(
        [b.top + b.height / 2 for b in bands],
        [b.label for b in bands],
        fontsize=LABEL_PT,
    )
    for tick, band in zip(ax.get_yticklabels(), bands, strict=True):
        if band.kind == "group":
            tick.set_fontweight("bold")
    firsts: list[date] = [coverage.sessions[j * plan.block] for j in plan.dated]
    ax.set_xticks(
        [(plan.edges[j] + plan.edges[j + 1]) / 2 for j in plan.dated],
        [str(d) for d in firsts],
        fontsize=LABEL_PT,
    )
    per = f" ({plan.block} per column)" if plan.block > 1 else ""
    ax.set_xlabel(f"session{per}", fontsize=LABEL_PT)
    ax.tick_params(length=3)


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        msg = "plots need matplotlib: pip install 'barlake[plot]'"
        raise UsageError(msg) from None
