"""Same-origin checks for the public forms that carry no CSRF token (a citizen has no session).

A browser always sends ``Origin`` on a cross-site POST: a page elsewhere that posts threat
reports or "me too"s in its visitors' names is refused. A request without ``Origin`` (a script,
an Open311 client) is not a browser acting for someone, and goes on to the rate limits.
"""

from __future__ import annotations

from aiohttp import web

from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY


def check_same_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is None:
        return
    public = request.app[SERVICES_KEY].settings.PUBLIC_URL.rstrip("/")
    # Without PUBLIC_URL, the host the browser asked for, by either scheme: behind a TLS proxy
    # the request reaches us as http while the page's origin is https.
    own = {public} if public else {f"http://{request.host}", f"https://{request.host}"}
    if origin not in own:
        raise AppError(ErrorCode.FOREIGN_ORIGIN, "Send this from the Lifeline pages")
