"""The REST API and the admin page of ``lake serve``: an ASGI app over one ``Lake``.

``create_app(lake, token=..., workers=N)`` builds it; routes live in ``api.routes`` by concept.
The JSON it answers is what the CLI's ``--json`` prints (``views.serialize``); errors are
``{"detail": "<the one line the CLI would print>"}`` with a 4xx status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from barlake.api.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # The web framework loads with the app, not with ``api.security`` (``lake serve`` checks
    # its binding before paying for it).
    if name == "create_app":
        from barlake.api.app import create_app

        return create_app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
