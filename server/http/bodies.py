"""Request bodies: a JSON body parsed into its model, or a 4xx that names the problem."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY


async def read_json(request: web.Request, model: type[BaseModel]) -> Any:
    """Parse and validate a JSON body; anything else is a 4xx that names the problem."""
    if request.content_type != "application/json":
        raise AppError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send JSON (Content-Type: application/json)"
        )
    body = await request.read()
    if (
        len(body) > request.app[SERVICES_KEY].settings.MAX_BODY_BYTES
    ):  # a chunked body has no length
        raise web.HTTPRequestEntityTooLarge(
            max_size=request.app[SERVICES_KEY].settings.MAX_BODY_BYTES, actual_size=len(body)
        )
    try:
        raw = json.loads(body)
    except ValueError:
        raise AppError(ErrorCode.MALFORMED_JSON, "The body is not valid JSON") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise AppError(ErrorCode.INVALID, f"{where}: {first['msg']}") from None


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """aiohttp's ``post()``, with what it raises on a body that is not the form it claims to be
    (a field that is not text of its charset, a broken multipart body or part header) a 4xx,
    not a 500."""
    try:
        return await request.post()
    except (ValueError, HttpProcessingError) as exc:  # UnicodeDecodeError among them
        reason = "a field is not text" if isinstance(exc, UnicodeDecodeError) else "malformed"
        raise AppError(ErrorCode.BAD_FORM, f"The form does not parse: {reason}") from None
