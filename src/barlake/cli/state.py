"""``State``: the global options every command receives, and the lake they point at."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from barlake.lake import Lake


class State:
    """``--lake``, ``--quiet`` and ``--verbose``, as the root command parsed them, and where
    the lake's path came from (``--lake``, ``env LAKE_ROOT`` or ``default``)."""

    def __init__(
        self, root: Path, *, quiet: bool, verbose: bool, root_source: str = "default"
    ) -> None:
        self.root, self.quiet, self.verbose = root, quiet, verbose
        self.root_source = root_source

    def lake(self) -> Lake:
        """The lake at ``--lake``; the library loads with the first command that needs it."""
        from barlake.lake import Lake

        return Lake.open(self.root)

    def say(self, message: str) -> None:
        """A message for people, on stderr, unless ``--quiet``."""
        if not self.quiet:
            click.echo(message, err=True)
