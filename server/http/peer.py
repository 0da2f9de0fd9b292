"""The address at the other end of a request's TCP connection, whatever its headers say.

What is decided by who really connected (a scrape of ``/metrics``, a request id a proxy passes
on) reads this, not ``request.remote``, which a trusted proxy's forwarded-for header replaces
(server/http/forwarded.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Sequence[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def peer_address(request: web.Request) -> Address | None:
    """The connection's peer; an IPv4 client of a dual-stack socket as its IPv4 address. None
    for a connection without one (a Unix socket, a transport already closed)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_within(request: web.Request, allowed: Sequence[Network]) -> bool:
    address = peer_address(request)
    return address is not None and any(address in network for network in allowed)
