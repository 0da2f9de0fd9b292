"""Staff sessions over HTTP: the cookie that carries the token, and the middleware that reads
the signed-in staff member on every request (``server.actions.staff_sessions`` holds the rules).
"""

from __future__ import annotations

from aiohttp import web

from server.actions.staff_sessions import (
    SESSION_COOKIE,
    StaffContext,
    do_end_session,
    do_end_user_sessions,
    do_open_session,
    do_set_stage,
    resolve_session,
)
from server.db.models import User
from server.http.auth.csrf import set_pending_cookie
from server.http.keys import SERVICES_KEY, STAFF_KEY, Handler

SESSION_EXPIRED_KEY = web.RequestKey("session_expired", bool)

__all__ = ["SESSION_COOKIE", "SESSION_EXPIRED_KEY", "StaffContext", "session_middleware"]


async def create_session(request: web.Request, response: web.StreamResponse, user: User) -> str:
    """Open a session for ``user`` and set its cookie; the stage they still have to pass."""
    services = request.app[SERVICES_KEY]
    opened = await do_open_session(services, user, remote=request.remote or "")
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        httponly=True,
        samesite="Strict",
        secure=services.settings.cookies_secure,
        path="/",
    )
    return opened.stage


async def set_stage(request: web.Request, session_id: int, stage: str) -> None:
    await do_set_stage(request.app[SERVICES_KEY], session_id, stage)


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await do_end_session(request.app[SERVICES_KEY], token)
    response.del_cookie(SESSION_COOKIE, path="/")


async def end_user_sessions(request: web.Request, user_id: int, keep: int | None = None) -> None:
    await do_end_user_sessions(request.app[SERVICES_KEY], user_id, keep)


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
