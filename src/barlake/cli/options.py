"""Parsers and options that several commands share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from functools import wraps
from typing import Any, TypeVar

import click

from barlake.domain.datasets import parse_datasets
from barlake.domain.intervals import ALIASES, INTERVALS

F = TypeVar("F", bound=Callable[..., Any])


def iso_date(_ctx: Any, param: click.Parameter, value: str | None) -> date | None:
    """Click callback: an ISO date (YYYY-MM-DD), or a usage error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        msg = f"{value!r} is not an ISO date (YYYY-MM-DD)"
        raise click.BadParameter(msg, param=param) from None


def symbol_list(_ctx: Any, _param: click.Parameter, value: str | None) -> list[str] | None:
    """Click callback: names separated by commas or spaces."""
    return None if value is None else [s for s in value.replace(" ", ",").split(",") if s]


#: The selection options, by parameter name, in the order ``--help`` lists them.
SELECTION: dict[str, Callable[[Any], Any]] = {
    "symbols": click.option(
        "--symbols",
        callback=symbol_list,
        help="Comma list, e.g. AAPL,MSFT, or the SYMBOLS arguments (default: all).",
    ),
    "layer": click.option("--layer", type=click.IntRange(0, 3), help="Only symbols of this layer."),
    "intervals": click.option(
        "--interval",
        "intervals",
        help=f"Comma list of: {' '.join(INTERVALS)}, or {' '.join(ALIASES)}, and trades "
        "(default: the policy's, else 1day).",
    ),
    "policy": click.option(
        "--policy",
        help="Retention policy: a name (lake's policies/ folder, then built-in) or a path.",
    ),
    "days": click.option(
        "--days", type=click.IntRange(min=1), help="The N calendar days to today."
    ),
    "start": click.option("--start", callback=iso_date, help="First date, inclusive (YYYY-MM-DD)."),
    "end": click.option("--end", callback=iso_date, help="Last date, inclusive (default: today)."),
}

#: ``--interval`` naming one interval, 1day by default (what ``Lake.bars`` reads).
ONE_INTERVAL = click.option(
    "--interval",
    default="1day",
    show_default=True,
    help=f"One of: {' '.join(INTERVALS)} (or {' '.join(ALIASES)}); or 1week, 1month (made "
    "from the daily bars).",
)


def selection(func: F) -> F:
    """The options plan, fill and gaps share, and their symbols as arguments: ``lake fill AAPL
    MSFT`` is ``lake fill --symbols AAPL,MSFT`` (both together name the symbols of both)."""
    return _with_symbols(func, SELECTION.values())


def bar_selection(func: F) -> F:
    """The options that choose stored bars (``Lake.bars``): the selection's symbols (arguments
    too), layer and dates, and one ``--interval``."""
    chosen = [SELECTION["symbols"], SELECTION["layer"], ONE_INTERVAL]
    return _with_symbols(func, [*chosen, *(SELECTION[k] for k in ("days", "start", "end"))])


def _with_symbols(func: F, options: Iterable[Callable[[Any], Any]]) -> F:
    """``func`` with ``options`` and the SYMBOLS arguments, joined into its ``symbols``."""

    @wraps(func)
    def joined(*args: Any, names: tuple[str, ...], symbols: list[str] | None, **kw: Any) -> Any:
        given = [*names, *(symbols or [])]
        return func(*args, symbols=given if names or symbols is not None else None, **kw)

    wrapped: F = joined  # type: ignore[assignment]
    for option in reversed([click.argument("names", nargs=-1, metavar="[SYMBOLS]..."), *options]):
        wrapped = option(wrapped)
    return wrapped


def selected(intervals: str | None, sel: dict[str, Any]) -> dict[str, Any]:
    """The library's keyword arguments for a selection: ``--interval`` parsed into a list."""
    return {**sel, "interval": None if intervals is None else parse_datasets(intervals)}
