"""One error type for everything a client did wrong, and the middleware that renders it.

The API gets ``{"error": {"code", "message"}}``; a browser gets a page. Nobody gets a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("lifeline.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorPage = Callable[[web.Request, int, str, str], web.Response]


class AppError(Exception):
    """A refusal with a machine-readable code, an HTTP status and optional data."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.data = data or {}


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class TooMany(AppError):
    status, code = 429, "rate_limited"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def wants_json(request: web.Request) -> bool:
    """API paths and clients that ask for JSON get JSON; browsers get a page."""
    if request.path.startswith(("/api/", "/open311/", "/healthz", "/readyz")):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": {"code": code, "message": message}}, status=status)
    from server.keys import ERROR_PAGE_KEY  # keys imports this module

    render = request.app.get(ERROR_PAGE_KEY)
    if render is not None:
        return render(request, status, code, message)
    return web.Response(status=status, text=f"{status} {message}", content_type="text/plain")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        log.info(
            "refused",
            extra={
                "status": exc.status,
                "code": exc.code,
                "path": request.path,
                "reason": exc.message,
            },
        )
        response = error_response(request, exc.status, exc.code, exc.message)
        if exc.data.get("headers"):
            response.headers.update(exc.data["headers"])
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason
        if exc.status == 413:
            message = "The request body is larger than this server accepts"
        log.info(
            "refused",
            extra={"status": exc.status, "code": code, "path": request.path, "reason": message},
        )
        return error_response(request, exc.status, code, message)
    except Exception:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(request, 500, "internal", "Something went wrong on our side")
