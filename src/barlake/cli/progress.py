"""The progress bar ``lake fill`` shows on a terminal (the CLI's only use of rich)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from barlake.fetch.job import ProgressCallback


@contextmanager
def bar(*, enabled: bool) -> Iterator[ProgressCallback | None]:
    """A callback that draws requests done out of planned on stderr, or None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("fill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[bars]:,} bars"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("fill", total=None, bars=0)

        def update(done: int, total: int, bars: int) -> None:
            progress.update(task, completed=done, total=total, bars=bars)

        callback: Callable[[int, int, int], None] = update
        yield callback
