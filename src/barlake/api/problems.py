"""Errors as HTTP answers: ``{"detail": "<one line>"}`` with the status of the error's class.

The line is the one the CLI prints for the same error; no answer carries a traceback. The
table below is to the API what ``cli.exits.EXIT_CODES`` is to the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from barlake.api.responses import LakeJSON
from barlake.errors import (
    AuthError,
    Interrupted,
    LakeError,
    NotFoundError,
    ProviderError,
    StorageError,
    UsageError,
    ValidationError,
)

log = logging.getLogger("barlake.api")

#: Each error class and its status, most specific first (an error takes its first match).
STATUS: tuple[tuple[type[LakeError], int], ...] = (
    (NotFoundError, 404),
    (UsageError, 400),
    (AuthError, 401),
    (ProviderError, 502),
    (ValidationError, 502),
    (StorageError, 503),
    (Interrupted, 503),
    (LakeError, 500),
)

#: The statuses every route may answer with, for the OpenAPI document.
PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": "Problem", "description": text}
    for code, text in (
        (400, "Bad input: the message the CLI would print"),
        (401, "Missing or wrong bearer token"),
        (404, "No such job, request or endpoint"),
        (413, "Body too large"),
        (415, "Body is not JSON"),
        (422, "Body or parameters do not match the schema"),
    )
}


def status_of(error: LakeError) -> int:
    return next(code for kind, code in STATUS if isinstance(error, kind))


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    return LakeJSON({"detail": detail}, status_code=status, headers=dict(headers or {}))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(errors: list[Any]) -> str:
    """Pydantic's validation errors as one line naming the first bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid input"}
    loc = [str(p) for p in first.get("loc", ())]
    where = {"body": "body", "query": "query parameter", "path": "path parameter"}.get(
        loc[0] if loc else "", ""
    )
    field = ".".join(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else ""
    if first.get("type") == "json_invalid":
        line = "the body is not valid JSON; send a JSON object"
    elif field:
        line = f"{where} {field!r}: {first['msg']}"
    else:
        line = f"{where or 'input'}: {first['msg']}"
    more = len(errors) - 1
    return _one_line(line + (f" (and {more} more problem(s))" if more > 0 else ""))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem body."""

    @app.exception_handler(LakeError)
    async def lake_error(_request: Request, exc: LakeError) -> Response:
        status = status_of(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status >= 500:
            log.error("%s: %s", type(exc).__name__, _one_line(str(exc)))
        return problem(status, _one_line(str(exc)), headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        return problem(422, describe(list(exc.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no endpoint {request.url.path}; the API is listed at /openapi.json"
        elif exc.status_code == 405:
            detail = f"{request.url.path} does not take {request.method}; see /openapi.json"
        return problem(exc.status_code, _one_line(detail), exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, f"internal error ({type(exc).__name__}); the server log has details")
