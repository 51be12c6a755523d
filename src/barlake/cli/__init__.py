"""The `lake` command line: a thin layer over the library."""

from barlake.cli.commands import main

__all__ = ["main"]
