"""Our own origin: the base of the links we hand out, and same-origin checks for the public
forms that carry no CSRF token (a citizen has no session).

A browser always sends ``Origin`` on a cross-site POST: a page elsewhere that posts threat
reports or "me too"s in its visitors' names is refused. A request without ``Origin`` (a script,
an Open311 client) is not a browser acting for someone, and goes on to the rate limits.
"""

from __future__ import annotations

from aiohttp import web

from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY
from server.security.origins import is_own_origin


def check_same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if not is_own_origin(request.app[SERVICES_KEY].settings, origin, local):
        raise AppError(ErrorCode.FOREIGN_ORIGIN, "Send this from the Lifeline pages")


def site_base(request: web.Request) -> str:
    """The base of the absolute links we hand out: ``PUBLIC_URL``, else the address reached."""
    return request.app[SERVICES_KEY].settings.PUBLIC_URL or f"{request.scheme}://{request.host}"
