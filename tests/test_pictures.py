"""Pictures that scale: the coverage map of 300 symbols (a real lake, four layers) and of 3,000
(a synthetic matrix over six years), and ``lake report`` rendered in headless Chromium. Each
screenshot is checked for its pixel size, for the gap colour on the planted holes' rows and
columns, cells never thinner than ``MIN_CELL_PX``, its absence on a fully covered layer, and
labels that do not overlap."""

from __future__ import annotations

import io
import itertools
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from barlake.calendars.calendar import get_calendar
from barlake.coverage.matrix import MISSING, NOT_EXPECTED, PROVISIONAL, STORED
from barlake.domain.ranges import DateRange
from barlake.lake import Lake
from barlake.providers.demo import demo_listing_date
from barlake.views import plot
from barlake.views.coverage import Coverage, assemble

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytest.importorskip("matplotlib")

NOW = datetime(2025, 1, 15, 22, tzinfo=UTC)
JUNE = {"start": date(2024, 6, 3), "end": date(2024, 6, 28)}
#: 300 symbols the demo lists all of 2024; symbol i is at layer i // 75.
NAMES = [s for s in (f"S{i:03d}" for i in range(600)) if demo_listing_date(s) is None][:300]
#: Symbols filled around one session each (layers 1 and 3); layer 0 is filled completely.
HOLES = {NAMES[80]: date(2024, 6, 6), NAMES[81]: date(2024, 6, 20), NAMES[290]: date(2024, 6, 11)}


def is_red(pixels: np.ndarray) -> np.ndarray:
    """Where ``pixels`` (0..1 floats) have the gap colour."""
    from matplotlib.colors import to_rgb

    red = np.array(to_rgb(plot.COLOURS[MISSING]))
    return np.all(np.abs(pixels[..., :3] - red) < 0.02, axis=-1)


def read_png(path: Path | io.BytesIO) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)


@pytest.fixture(scope="module")
def layered_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """June 2024 of 300 symbols in four layers, filled by the demo, with the sessions of
    ``HOLES`` never fetched; and a week of 15-minute bars of three layer-0 symbols."""
    root = tmp_path_factory.mktemp("layered") / "lake"
    lake = Lake.init(root, clock=lambda: NOW)
    lake.add_symbols(NAMES)
    for layer in (1, 2, 3):
        lake.set_layers(NAMES[75 * layer : 75 * (layer + 1)], layer)
    whole = [s for s in NAMES if s not in HOLES]
    assert lake.fill(whole, provider="demo", interval="1day", **JUNE).ok
    for symbol, hole in HOLES.items():
        day = timedelta(days=1)
        for start, end in ((JUNE["start"], hole - day), (hole + day, JUNE["end"])):
            assert lake.fill(symbol, provider="demo", interval="1day", start=start, end=end).ok
    week = {"start": date(2024, 6, 24), "end": date(2024, 6, 28)}
    assert lake.fill(NAMES[:3], provider="demo", interval="15min", **week).ok
    return root


@pytest.fixture
def layered(layered_template: Path, tmp_path: Path) -> Lake:
    root = tmp_path / "lake"
    shutil.copytree(layered_template, root)
    return Lake.open(root, clock=lambda: NOW)


def column_of(cov: Coverage, plan: plot.Layout, day: date) -> int:
    j = int(np.searchsorted(cov.sessions, np.datetime64(day, "D")))
    assert cov.sessions[j] == np.datetime64(day, "D")
    return j // plan.block


def check_holes(
    cov: Coverage,
    plan: plot.Layout,
    pixels: np.ndarray,
    holes: dict[str, list[date]],
    full_group: str,
) -> None:
    """Each planted hole is a red cell at least MIN_CELL_PX each way, in its symbol's row and
    its layer's band, and nowhere else in the row; the fully covered layer has no red at all."""
    red = is_red(pixels)
    left, top, width, height = plan.box
    assert red.shape == (plan.size[1], plan.size[0])
    for symbol, days in holes.items():
        i = cov.symbols.index(symbol)
        band = plan.band(i)
        assert band is not None, f"{symbol} has no row of its own"
        assert plan.bands.index(band) in plan.labelled, f"{symbol}'s row has no label"
        row = red[plan.pixel_rows(band)]
        hole_columns = {column_of(cov, plan, d) for d in days}
        for col in hole_columns:
            cell = row[:, plan.pixel_columns(col)]
            assert cell.any(axis=1).sum() >= plot.MIN_CELL_PX, f"{symbol}: a dash, not a cell"
            assert cell.any(axis=0).sum() >= plot.MIN_CELL_PX, f"{symbol}: a dash, not a cell"
        elsewhere = np.ones(row.shape[1], dtype=bool)
        for col in hole_columns:
            elsewhere[plan.pixel_columns(col)] = False
        assert not row[:, elsewhere].any(), f"{symbol}'s row is red outside its holes"
        group = plan.group(i)
        assert group is not None
        shares = red[plan.pixel_rows(group)]
        for col in hole_columns:
            assert shares[:, plan.pixel_columns(col)].any(axis=1).sum() >= plot.MIN_CELL_PX
    [full] = [b for b in plan.bands if b.kind == "group" and b.label.startswith(full_group)]
    assert not red[plan.pixel_rows(full)][:, left : left + width].any()
    # And nothing red outside the map but the legend's patch, below it.
    outside = red.copy()
    outside[top : top + height, left : left + width] = False
    assert not outside[: top + height].any()


def check_labels_apart(cov: Coverage, size: plot.Size) -> int:
    """Every tick label lies inside the picture and overlaps no other; returns how many."""
    fig = plot.coverage_figure(cov, size=size)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    [ax] = fig.axes
    total = 0
    for labels, lo, hi in ((ax.get_yticklabels(), "y0", "y1"), (ax.get_xticklabels(), "x0", "x1")):
        boxes = sorted(
            (t.get_window_extent(renderer) for t in labels if t.get_text()),
            key=lambda b: getattr(b, lo),
        )
        for a, b in itertools.pairwise(boxes):
            assert getattr(a, hi) <= getattr(b, lo) + 0.5, f"labels overlap: {a} {b}"
        for b in boxes:
            assert b.x0 >= 0 and b.x1 <= size[0] and b.y0 >= 0 and b.y1 <= size[1]
        total += len(boxes)
    return total


# -- 300 symbols, a real lake -----------------------------------------------------------------


def test_map_of_300_symbols_shows_layer_bands_and_the_holes(layered: Lake, tmp_path: Path) -> None:
    cov = layered.coverage(**JUNE)
    assert len(cov.symbols) == 300
    assert sorted(set(cov.groups)) == ["layer 0", "layer 1", "layer 2", "layer 3"]
    out = cov.plot(tmp_path / "map-300.png")
    pixels = read_png(out)
    assert pixels.shape[:2] == (600, 1200)
    plan = plot.layout(cov)
    assert plan.mode == "groups"
    assert [b.label for b in plan.bands[:4]] == [f"layer {n} (75)" for n in (3, 2, 1, 0)]
    assert plan.with_gaps == plan.shown_with_gaps == len(HOLES)
    assert len(plan.bands) == 4 + len(HOLES)  # the fully covered symbols have no row
    check_holes(cov, plan, pixels, {s: [d] for s, d in HOLES.items()}, "layer 0")
    assert check_labels_apart(cov, plot.DEFAULT_SIZE) >= 4 + len(HOLES)


def test_the_api_serves_the_same_map(layered: Lake) -> None:
    import asyncio

    import httpx

    from barlake.api import create_app

    async def get() -> httpx.Response:
        app = create_app(layered, token=None, workers=0)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://lake") as client:
            query = {"format": "png", "start": "2024-06-03", "end": "2024-06-28"}
            return await client.get("/coverage", params=query)

    answer = asyncio.run(get())
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    pixels = read_png(io.BytesIO(answer.content))
    cov = layered.coverage(**JUNE)
    check_holes(cov, plot.layout(cov), pixels, {s: [d] for s, d in HOLES.items()}, "layer 0")


def test_up_to_about_60_symbols_get_a_row_each(layered: Lake, tmp_path: Path) -> None:
    names = [*NAMES[:57], *HOLES]
    cov = layered.coverage(names, **JUNE)
    plan = plot.layout(cov)
    assert plan.mode == "symbols"
    assert [b.rows for b in plan.bands] == [(i,) for i in range(len(names))]
    assert min(b.height for b in plan.bands) >= plot.DETAIL_ROW_PX
    pixels = read_png(cov.plot(tmp_path / "map-60.png"))
    red = is_red(pixels)
    for symbol, day in HOLES.items():
        band = plan.band(cov.symbols.index(symbol))
        assert band is not None
        cell = red[plan.pixel_rows(band)][:, plan.pixel_columns(column_of(cov, plan, day))]
        assert cell.mean() > 0.5
    full = plan.band(cov.symbols.index(NAMES[0]))
    assert full is not None
    assert not red[plan.pixel_rows(full)].any()
    # Rows thinner than a line of text: only some are named, and no two names overlap.
    labels = check_labels_apart(cov, plot.DEFAULT_SIZE)
    assert len(names) // 3 < len(plan.labelled) < len(names)
    assert labels == len(plan.labelled) + len(plan.dated)


# -- 3,000 symbols, a synthetic matrix ----------------------------------------------------------


def synthetic(
    n: int = 3000,
) -> tuple[Coverage, dict[str, list[date]], dict[str, date]]:
    """3,000 symbols (layer i // 750) over the XNYS sessions of 2019-2024, all stored but:
    five planted symbols with three holes each (layers 1-3), one of them also provisional on
    the last session; 80 more layer-3 symbols with one hole each; 40 listed in 2022 (layer 0)."""
    days = get_calendar("XNYS").sessions_in(
        DateRange.inclusive(date(2019, 1, 2), date(2024, 12, 31))
    )
    symbols = [f"X{i:04d}" for i in range(n)]
    grid = np.full((n, len(days)), STORED, dtype=np.int8)
    planted: dict[str, list[date]] = {}
    for k, i in enumerate((800, 1234, 1700, 2300, 2999)):
        cols = [100 + 97 * k, 700 + 31 * k, 1400 - 11 * k]
        grid[i, cols] = MISSING
        planted[symbols[i]] = [date.fromisoformat(str(days[c])) for c in cols]
    grid[1234, -1] = PROVISIONAL
    others: dict[str, date] = {}
    for k, i in enumerate(range(2250, 2330)):
        if symbols[i] in planted:
            continue
        grid[i, 13 * k + 5] = MISSING
        others[symbols[i]] = date.fromisoformat(str(days[13 * k + 5]))
    listed = int(np.searchsorted(days, np.datetime64("2022-03-01")))
    grid[:40, :listed] = NOT_EXPECTED
    rows = {s: (days, grid[i]) for i, s in enumerate(symbols)}
    groups = [f"layer {i // 750}" for i in range(n)]
    return assemble("1day", symbols, days, rows, groups), planted, others


@pytest.mark.parametrize("size", [plot.DEFAULT_SIZE, (1600, 1000)])
def test_map_of_3000_symbols_over_six_years(size: plot.Size, tmp_path: Path) -> None:
    cov, planted, others = synthetic()
    out = cov.plot(tmp_path / f"map-3000-{size[0]}.png", size=size)
    pixels = read_png(out)
    assert pixels.shape[:2] == (size[1], size[0])
    plan = plot.layout(cov, size)
    assert plan.mode == "groups"
    assert plan.block > 1  # 1,510 sessions: several to a column, each column >= MIN_CELL_PX
    assert min(np.diff(plan.edges)) >= plot.MIN_CELL_PX
    assert plan.with_gaps == len(planted) + len(others)
    # Those with the most gaps come first; not all 85 fit, and the caption says so.
    assert len(planted) < plan.shown_with_gaps < plan.with_gaps
    assert f"{plan.shown_with_gaps} of the {plan.with_gaps} symbols with gaps" in plan.caption
    check_holes(cov, plan, pixels, planted, "layer 0")
    # A symbol without a row of its own still shows its hole in its layer's band.
    red = is_red(pixels)
    hidden = [s for s in others if plan.band(cov.symbols.index(s)) is None]
    assert hidden
    for symbol in hidden[:10]:
        band = plan.group(cov.symbols.index(symbol))
        assert band is not None and band.label == "layer 3 (750)"
        cell = red[plan.pixel_rows(band)][
            :, plan.pixel_columns(column_of(cov, plan, others[symbol]))
        ]
        assert cell.any(axis=1).sum() >= plot.MIN_CELL_PX
    labels = check_labels_apart(cov, size)
    assert labels >= 4 + plan.shown_with_gaps  # every band and row is named


@pytest.mark.parametrize("size", [(320, 180), (640, 360), (2400, 300), (400, 1600)])
def test_any_size_draws_a_picture_of_that_size(size: plot.Size, tmp_path: Path) -> None:
    cov, _, _ = synthetic()
    assert read_png(cov.plot(tmp_path / "map.png", size=size)).shape[:2] == (size[1], size[0])
    plan = plot.layout(cov, size)
    assert all(b.top >= 0 and b.top + b.height <= plan.box[3] for b in plan.bands)


def test_a_bigger_picture_shows_more_rows() -> None:
    cov, _, _ = synthetic()
    small, big = plot.layout(cov, (1200, 600)), plot.layout(cov, (1200, 1200))
    assert big.shown_with_gaps > small.shown_with_gaps


# -- the report in Chromium -------------------------------------------------------------------


def test_report_in_chromium_holds_every_interval_and_shows_the_holes(
    layered: Lake, chromium: Browser, tmp_path: Path
) -> None:
    out = layered.report(tmp_path / "report.html", **JUNE)
    problems: list[str] = []
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(out.as_uri())
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    whole = read_png(shot)
    assert whole.shape[1] == 1400 and whole.shape[0] > 2000  # both intervals' maps and tables

    held = {
        r["interval"]: r
        for r in page.eval_on_selector_all(
            "#holdings tbody tr",
            "rows => rows.map(r => ({interval: r.dataset.interval,"
            " cells: [...r.cells].map(c => c.innerText)}))",
        )
    }
    assert list(held) == ["15min", "1day"]
    daily = layered.bars(interval="1day").collect()
    bars, symbols, first, last, files, _ = held["1day"]["cells"][1:]
    assert (bars, symbols) == (f"{daily.height:,}", "300")
    assert (first, last) == ("2024-06-03", "2024-06-28")
    assert files == "1"
    assert held["15min"]["cells"][1:3] == [f"{3 * 5 * 26:,}", "3"]
    assert held["15min"]["cells"][3:5] == ["2024-06-24T13:30Z", "2024-06-28T19:45Z"]

    image = page.locator('img[alt="1day coverage map"]')
    natural = image.evaluate("i => [i.naturalWidth, i.naturalHeight, i.width, i.height]")
    assert natural == [1200, 600, 1200, 600]  # drawn at its own size: one pixel is one pixel
    map_shot = tmp_path / "report-1day.png"
    image.screenshot(path=str(map_shot))
    shown = read_png(map_shot)[..., :3]
    assert 600 < shown.shape[0] <= 603 and 1200 < shown.shape[1] <= 1203  # the map and its border
    cov = layered.coverage(**JUNE)
    drawn = read_png(cov.plot(tmp_path / "map.png"))[..., :3]
    # Find the map inside its border (the element's box may start between two pixels): the
    # browser shows it pixel for pixel.
    offsets = [
        (dy, dx) for dy in range(shown.shape[0] - 599) for dx in range(shown.shape[1] - 1199)
    ]
    diffs = {
        o: np.abs(shown[o[0] : o[0] + 600, o[1] : o[1] + 1200] - drawn).mean() for o in offsets
    }
    dy, dx = min(diffs, key=diffs.__getitem__)
    assert diffs[dy, dx] < 0.01
    pixels = shown[dy : dy + 600, dx : dx + 1200]
    check_holes(cov, plot.layout(cov), pixels, {s: [d] for s, d in HOLES.items()}, "layer 0")
    assert page.locator('img[alt="15min coverage map"]').count() == 1
    assert problems == []
