"""The progress bar ``lake fill`` shows on a terminal (the CLI's only use of rich).

It counts requests (provider calls, one per page, as ``lake plan`` and the fill's summary count
them) against those expected, and shows the bars fetched and written, the rate, the time left
and, while the fill waits, what for: the rate limit's window, a ``Retry-After``, or a backoff.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from barlake.fetch.job import Progress, ProgressCallback


def line(p: Progress) -> str:
    """The text beside the bar: bars, rate, time left, and the wait if there is one."""
    parts = [f"{p.bars_fetched:,} bars ({p.bars_written:,} written)", f"{p.rate:.1f} req/s"]
    eta = p.eta_s
    if eta is not None and not p.done:
        parts.append(f"ETA {_clock(eta)}")
    if p.waiting is not None and not p.done:
        parts.append(str(p.waiting))
    return ", ".join(parts)


@contextmanager
def bar(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A callback that draws the fill's progress on stderr, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bars

    with Bars(
        TextColumn("fill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("requests"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("fill", total=None, line="planning")

        def update(p: Progress) -> None:
            progress.update(task, completed=p.requests, total=p.requests_expected, line=line(p))

        yield update


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
