"""``LazyGroup``: a click group whose commands are imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from gettext import gettext as _
from typing import Any

import click
from click.utils import make_default_short_help


class LazyGroup(click.Group):
    """A group whose subcommands are named by import path and loaded when one runs.

    ``lazy`` maps each command name to ``("package.module:object", "short help")``. The short
    help is kept in the table so that listing the commands (``lake --help``) imports none of
    them; a test checks it against each command's own docstring.
    """

    def __init__(
        self,
        *args: Any,
        lazy: Mapping[str, tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self._load(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as exc:
            # Click suggests close names from the loaded commands only: offer every name.
            raise click.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=exc.ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their short help, as ``click.Group`` prints them, none imported."""
        names = [n for n in self.list_commands(ctx) if n in self.lazy or self._shown(ctx, n)]
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = [(name, self._short_help(ctx, name, limit)) for name in names]
        # Click's own section title, translated the same way.
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def _shown(self, ctx: click.Context, name: str) -> bool:
        command = super().get_command(ctx, name)
        return command is not None and not command.hidden

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str:
        if name in self.lazy:
            return make_default_short_help(self.lazy[name][1], limit).strip()
        command = super().get_command(ctx, name)
        return "" if command is None else command.get_short_help_str(limit)

    def _load(self, name: str) -> click.Command:
        module, _, attribute = self.lazy[name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            msg = f"{self.lazy[name][0]} is not a click command"
            raise TypeError(msg)
        return command
