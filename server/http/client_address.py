"""The address a request comes from, as this node sees it: the one place that reads it for
sign-in.

It is ``request.remote``: the peer of the TCP connection, or, behind one of the centre's own
proxies (``TRUSTED_PROXIES``), the client they forward for (server/http/forwarded.py rewrites
the request before any handler sees it).
"""

from __future__ import annotations

from aiohttp import web


def client_address(request: web.Request) -> str:
    return request.remote or ""
