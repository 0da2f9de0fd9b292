"""The middleware that renders every refusal (``AppError``) and every HTTP exception.

The API gets ``{"error": {"code", "message"}}``; a browser gets a page. Nobody gets a traceback.
"""

from __future__ import annotations

import logging

from aiohttp import web

from server.core.errors import CODE_BY_STATUS, AppError, ErrorCode
from server.http.keys import ERROR_PAGE_KEY, Handler

log = logging.getLogger("lifeline.http")


def wants_json(request: web.Request) -> bool:
    """API paths and clients that ask for JSON get JSON; browsers get a page."""
    if request.path.startswith(("/api/", "/open311/", "/healthz", "/readyz")):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_response(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if wants_json(request):
        return web.json_response({"error": {"code": code, "message": message}}, status=status)
    render = request.app.get(ERROR_PAGE_KEY)
    if render is not None:
        return render(request, status, code, message)
    return web.Response(status=status, text=f"{status} {message}", content_type="text/plain")


def logged_path(request: web.Request) -> str:
    """A matched route's template (``/api/calls/{call_id}/...``), else the path: a call's id in
    the log could be an internal-security call's."""
    info = request.match_info
    if info.http_exception is None and info:
        return info.route.resource.canonical if info.route.resource else request.path
    return request.path


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AppError as exc:
        log.info(
            "refused",
            extra={
                "status": exc.status,
                "code": exc.code.value,
                "path": logged_path(request),
                "reason": exc.message,
            },
        )
        response = error_response(request, exc.status, exc.code.value, exc.message)
        if exc.data.get("headers"):
            response.headers.update(exc.data["headers"])
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = CODE_BY_STATUS.get(exc.status, ErrorCode.HTTP_ERROR).value
        message = exc.reason
        if exc.status == 413:
            message = "The request body is larger than this server accepts"
        log.info(
            "refused",
            extra={
                "status": exc.status,
                "code": code,
                "path": logged_path(request),
                "reason": message,
            },
        )
        return error_response(request, exc.status, code, message)
    except Exception:
        log.exception("unhandled error", extra={"path": logged_path(request)})
        return error_response(
            request, 500, ErrorCode.INTERNAL.value, "Something went wrong on our side"
        )
