"""One log line per HTTP request, and the request id that ties a request's lines together.

The line goes through our own logging (``lifeline.access``, JSON or text as ``LOG_FORMAT``
says), with the route's template rather than the path: a path may hold a call's id, and an
internal-security call's id is never logged. Nor is the client's address (an
internal-security caller's is never written in the clear). aiohttp writes the line after the
response is sent, in the request's own task, so it also carries the call the request was about
(server/core/logs.py).

The request id is the ``X-Request-Id`` a trusted proxy (``TRUSTED_PROXIES``) sent, so the
proxy's log and ours share it, else one made here; every line logged while the request is
served carries it, and the response returns it in ``X-Request-Id``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Middleware
from aiohttp.web_request import BaseRequest

from server.core.logs import REQUEST_ID
from server.http.keys import Handler
from server.http.peer import networks, peer_within

HEADER = "X-Request-Id"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
# What a proxy's id may look like (nginx's $request_id is 32 hex digits); anything else is
# replaced, so a header cannot put arbitrary text in the logs.
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ACCESS_LOGGER = "lifeline.access"


def route_of(request: BaseRequest) -> str:
    """The matched route's template (``/api/calls/{call_id}/photos``); ``unmatched`` when no
    route matched (the path could hold anything, an internal-security call's id included)."""
    if not isinstance(request, web.Request):
        return "unmatched"
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def request_id_middleware(trusted_proxies: Sequence[str]) -> Middleware:
    """Outermost: every line logged while the request is served carries its id."""
    trusted = networks(trusted_proxies)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        offered = request.headers.get(HEADER, "")
        if offered and _ACCEPTED.fullmatch(offered) and peer_within(request, trusted):
            request_id = offered
        else:
            request_id = uuid.uuid4().hex
        request[REQUEST_ID_KEY] = request_id
        # aiohttp serves each request in a task of its own: this ends with it.
        REQUEST_ID.set(request_id)
        return await handler(request)

    return middleware


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every response (errors, redirects, the websocket's 101)."""
    request_id = request.get(REQUEST_ID_KEY)
    if request_id is not None:
        response.headers[HEADER] = request_id


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access logger, writing our fields instead of its format string."""

    def log(self, request: BaseRequest, response: web.StreamResponse, time: float) -> None:
        request_id = request.get(REQUEST_ID_KEY)
        self.logger.info(
            "request",
            extra={
                "method": request.method,
                "route": route_of(request),
                "status": response.status,
                "duration_ms": round(time * 1000, 1),
                "bytes": response.body_length,
                "request_id": request_id,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def runner_options() -> dict[str, Any]:
    """What ``web.AppRunner`` takes to write our access log (server/cli.py, the tests)."""
    return {"access_log_class": AccessLogger, "access_log": logging.getLogger(ACCESS_LOGGER)}
