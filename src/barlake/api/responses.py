"""The API's JSON: the same rendering as the CLI's ``--json`` (``views.serialize``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from barlake.views.serialize import dumps


class LakeJSON(JSONResponse):
    """A JSON answer rendered as ``lake ... --json`` prints it (compact); a ``JSONResponse``, so
    that the OpenAPI document shows each route's model."""

    def render(self, content: Any) -> bytes:
        return dumps(content, indent=None).encode()
