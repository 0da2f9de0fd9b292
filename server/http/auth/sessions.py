"""Staff sessions over HTTP: the cookie that carries the token, and the middleware that reads
the signed-in staff member on every request (``server.actions.staff_sessions`` holds the rules).
"""

from __future__ import annotations

from aiohttp import web

from server.actions.staff_sessions import (
    SESSION_COOKIE,
    StaffContext,
    do_open_session,
    resolve_session,
)
from server.db.models import User
from server.http.auth.csrf import set_pending_cookie
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY, STAFF_KEY, Handler

SESSION_EXPIRED_KEY = web.RequestKey("session_expired", bool)

__all__ = ["SESSION_COOKIE", "SESSION_EXPIRED_KEY", "StaffContext", "session_middleware"]


async def create_session(
    request: web.Request, response: web.StreamResponse, user: User, stage: str | None = None
) -> str:
    """Open a session for ``user`` and set its cookie; the stage they still have to pass."""
    services = request.app[SERVICES_KEY]
    opened = await do_open_session(services, user, remote=client_address(request), stage=stage)
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="Strict",
        secure=services.settings.cookies_secure,
        path="/",
    )
    return opened.stage


async def _load(request: web.Request) -> StaffContext | None:
    staff, expired = await resolve_session(
        request.app[SERVICES_KEY], request.cookies.get(SESSION_COOKIE, "")
    )
    if expired:
        request[SESSION_EXPIRED_KEY] = True
    return staff


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Static files and health probes never need a staff member.
    if request.path.startswith(("/static/", "/healthz", "/readyz", "/metrics", "/i18n/")):
        request[STAFF_KEY] = None
        return await handler(request)
    request[STAFF_KEY] = await _load(request)
    response = await handler(request)
    set_pending_cookie(request, response)
    if request.get(SESSION_EXPIRED_KEY) and request.cookies.get(SESSION_COOKIE):
        response.del_cookie(SESSION_COOKIE, path="/")
    return response
