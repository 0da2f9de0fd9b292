"""CSRF tokens on every state-changing request.

Signed-in staff: the token is bound to the server-side session. Before sign-in (the login form):
a double-submit cookie, so a foreign site cannot log a victim into an attacker's account.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY, STAFF_KEY
from server.security.tokens import new_token

CSRF_COOKIE = "lifeline_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_PENDING_KEY = web.RequestKey("csrf_pending", str)


def csrf_token(request: web.Request) -> str:
    """The token to put in this page's forms."""
    staff = request.get(STAFF_KEY)
    if staff is not None:
        return staff.csrf_token
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(cookie) <= 64:
        return cookie
    if _PENDING_KEY not in request:
        request[_PENDING_KEY] = new_token()
    return request[_PENDING_KEY]


def set_pending_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Send the double-submit cookie if this request minted a token."""
    pending = request.get(_PENDING_KEY)
    if pending:
        response.set_cookie(
            CSRF_COOKIE,
            pending,
            httponly=True,
            samesite="Strict",
            secure=request.app[SERVICES_KEY].settings.cookies_secure,
            path="/",
        )


def check_csrf(request: web.Request, submitted: str | None) -> None:
    """Refuse the request unless ``submitted`` (form field or header) matches."""
    submitted = submitted or request.headers.get(CSRF_HEADER, "")
    staff = request.get(STAFF_KEY)
    expected = staff.csrf_token if staff is not None else request.cookies.get(CSRF_COOKIE, "")
    if not submitted or not expected or not hmac.compare_digest(submitted, expected):
        raise AppError(
            ErrorCode.CSRF_FAILED, "Missing or wrong CSRF token: reload the page and try again"
        )
