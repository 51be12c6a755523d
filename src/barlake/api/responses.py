"""The API's JSON: the same rendering as the CLI's ``--json`` (``views.serialize``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from barlake.views.serialize import dumps


class LakeJSON(Response):
    """A JSON answer rendered as ``lake ... --json`` prints it (compact)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content, indent=None).encode()
