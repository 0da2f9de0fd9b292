"""The client's address behind the centre's own reverse proxies (``TRUSTED_PROXIES``).

Behind nginx every request comes from the proxy: without this, every rate limit, the audit
chain and the logs would see one address for the whole city. Only a peer inside
``TRUSTED_PROXIES`` is believed when it says ``X-Forwarded-For``: the address taken is the
right-most one that is not a trusted proxy (aiohttp-remotes' ``XForwardedFiltered``), and
``X-Forwarded-Proto`` gives the scheme. A header from any other peer means nothing (a client
can write it), and is ignored rather than refused.

An emergency caller is never refused for a header their carrier or office proxy mangled: where
aiohttp-remotes would answer 400 (a forwarded-for entry that is not an address, the header
twice), the request goes on with the proxy's address, and the log says so once per node.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_remotes import XForwardedFiltered
from aiohttp_remotes.exceptions import RemoteError

from server.http.keys import Handler

log = logging.getLogger("lifeline.http")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def forwarded_middleware(trusted_proxies: Sequence[str]) -> Middleware | None:
    """None without trusted proxies: the TCP peer is the client."""
    if not trusted_proxies:
        return None
    networks: list[Network] = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]
    filtered = XForwardedFiltered(set(networks))
    said: list[bool] = []

    def trusted(peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in networks)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not trusted(request.remote):
            return await handler(request)
        try:
            filtered.get_forwarded_for(request.headers)
            filtered.get_forwarded_proto(request.headers)
        except (web.HTTPBadRequest, RemoteError) as exc:
            if not said:
                said.append(True)
                log.warning(
                    "a forwarded-for header that is not a list of addresses: the proxy's "
                    "address is used (said once)",
                    extra={"reason": str(exc)[:200]},
                )
            return await handler(request)
        return await filtered.middleware(request, handler)

    return middleware
