"""HTML pages rendered from Jinja2 templates shipped in a package's ``templates`` folder (the
report's here, the admin page's in ``barlake.api``): autoescaped, with the filters that format
the lake's numbers the same way on every page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def environment(package: str) -> Environment:
    """The templates of ``package`` (its ``templates`` folder), escaping every value put into
    an ``.html`` template unless it is marked safe."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(count=count, size=size, percent=percent, moment=moment)
    return env


def count(value: Any) -> str:
    """A whole number with thousands separators (``12,345``); empty for None."""
    return "" if value is None else f"{int(value):,}"


def size(value: Any) -> str:
    """Bytes in binary units (``1.5 MiB``); empty for None.

    >>> size(1536), size(12)
    ('1.5 KiB', '12 B')
    """
    if value is None:
        return ""
    amount, unit = float(value), 0
    while amount >= 1024 and unit < len(_UNITS) - 1:
        amount, unit = amount / 1024, unit + 1
    return f"{amount:.0f} B" if unit == 0 else f"{amount:.1f} {_UNITS[unit]}"


def percent(value: Any) -> str:
    """A share 0..1 as a percentage with one decimal (``99.5%``)."""
    return "" if value is None else f"{float(value):.1%}"


def moment(value: datetime | None, interval: str = "1min") -> str:
    """A bar's ``ts`` in UTC, ISO 8601: the date alone for daily bars (their ``ts`` is the
    session date at midnight), else to the minute (``2024-06-03T13:30Z``)."""
    if value is None:
        return ""
    return value.date().isoformat() if interval == "1day" else value.strftime("%Y-%m-%dT%H:%MZ")
