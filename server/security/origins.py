"""Which browser origins are ours: the one rule behind every Origin check (sockets, forms).

``PUBLIC_URL`` (and any ``ALLOWED_ORIGINS``) when set. Without them, the address the
connection really reached (the socket's own, which a client cannot choose), never the request's
``Host`` header: a page anywhere can send any Host (a DNS-rebinding page does), so comparing
Origin with Host proves nothing.
"""

from __future__ import annotations

import ipaddress

from config import Settings


def own_origins(settings: Settings, local: tuple[str, int] | None) -> set[str]:
    """Our origins; ``local`` is the (address, port) the connection was accepted on."""
    named = {o.rstrip("/") for o in (settings.PUBLIC_URL, *settings.ALLOWED_ORIGINS) if o}
    if named:
        return named
    if local is None:
        return set()
    address, port = local[0], int(local[1])
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return set()
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    hosts = {f"[{ip}]" if ip.version == 6 else str(ip)}
    if ip.is_loopback:  # a page on this machine may name it either way
        hosts |= {"localhost", "127.0.0.1", "[::1]"}
    origins = {f"{scheme}://{host}:{port}" for scheme in ("http", "https") for host in hosts}
    if port in (80, 443):  # the default port is not written in an Origin
        origins |= {f"{'http' if port == 80 else 'https'}://{host}" for host in hosts}
    return origins


def is_own_origin(settings: Settings, origin: str, local: tuple[str, int] | None) -> bool:
    return origin.rstrip("/") in own_origins(settings, local)
