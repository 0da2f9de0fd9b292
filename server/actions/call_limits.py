"""How many calls one caller may start, and what going over costs: a mark, never a refusal.

An emergency line must not answer a caller with 429: a person calling a fourth time in a minute
may be in the worst minute of their life. A caller over the limit still gets a call; it is marked
``suspected_abuse``, shown as such and queued after unmarked calls, and a person decides.

Who "one caller" is: their device (a cookie of ours, signed so that it cannot be invented), else
their network: the address, or its /64 for IPv6, where one subscriber holds the whole prefix. A
mobile carrier's NAT puts thousands of phones behind one address: the cookie keeps them apart.
A device cookie is handed out with a call's answer, at most ``DEVICE_RATE_LIMIT`` per network,
so minting cookies does not buy a flooder fresh allowances.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass

from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.state.ratelimit import parse_rules

log = logging.getLogger("lifeline.calls")

DEVICE_ID_BYTES = 16
DEVICE_SIGNATURE_CHARS = 32


@dataclass(frozen=True)
class Caller:
    network: str
    device: str | None = None  # the verified device id, when the cookie is one of ours


def network_of(address: str) -> str:
    """The address, or the /64 an IPv6 address lies in; "unknown" when it is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


def _signature(services: Services, device: str) -> str:
    return services.pseudonyms.of("device", device)[:DEVICE_SIGNATURE_CHARS]


def device_of(services: Services, cookie: str) -> str | None:
    """The device id a cookie carries, if we signed it."""
    device, _, signature = cookie.partition(".")
    if not device or len(device) > 64 or len(signature) != DEVICE_SIGNATURE_CHARS:
        return None
    if not hmac.compare_digest(signature, _signature(services, device)):
        return None
    return device


async def mint_device(services: Services, network: str) -> str | None:
    """A new signed device cookie, unless this network had its share of them already."""
    rules = parse_rules(services.settings.DEVICE_RATE_LIMIT)
    try:
        await services.limits.hit(rules, "devices", network)
    except AppError:
        return None
    device = secrets.token_urlsafe(DEVICE_ID_BYTES)
    return f"{device}.{_signature(services, device)}"


async def over_call_limit(services: Services, caller: Caller) -> bool:
    """Count one new call of ``caller``; True when it went over (the call is marked, not
    refused)."""
    key = f"device:{caller.device}" if caller.device else f"network:{caller.network}"
    try:
        await services.limits.hit(parse_rules(services.settings.CALL_RATE_LIMIT), "calls", key)
    except AppError as exc:
        if exc.code is not ErrorCode.RATE_LIMITED:
            raise
        log.warning("call over the rate limit: marked", extra={"by": key.split(":")[0]})
        return True
    return False
