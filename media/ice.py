"""ICE policy for the media node: explicit servers, announced addresses only, remote filter.

aiortc builds one aioice ``Connection`` per transport and lets it gather on every interface
except 127.0.0.1 (``aioice.ice.get_host_addresses``). A media node must instead gather and
announce exactly ``MEDIA_ADDRESSES`` (its public address, or loopback in tests), so
:func:`restrict_gathering` narrows each connection of one peer before it gathers. It relies on
two things of aioice 0.13, both checked by ``tests/test_media.py::test_aioice_guard``:
``RTCIceGatherer._connection`` and ``Connection.get_component_candidates(component,
addresses, timeout)`` being the one place where host addresses turn into sockets.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aioice import Candidate
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.sdp import SessionDescription, candidate_from_sdp

from server.core.errors import AppError, ErrorCode

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def rtc_configuration(ice_servers: Sequence[dict[str, Any]]) -> RTCConfiguration:
    """Always an explicit list: given ``None``, aiortc adds Google's public STUN server."""
    return RTCConfiguration(iceServers=[RTCIceServer(**server) for server in ice_servers])


def restrict_gathering(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Make every ICE transport of ``pc`` gather host candidates on ``addresses`` only.

    Call it after the transceivers exist (``addTrack``/``setRemoteDescription``) and before
    ``setLocalDescription``, which is where aiortc gathers. An empty ``addresses`` keeps
    aioice's own choice (every interface but loopback).
    """
    if not addresses:
        return
    wanted = [str(ipaddress.ip_address(address)) for address in addresses]
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        connection = gatherer._connection
        if "get_component_candidates" in vars(connection):
            continue  # already narrowed (an instance attribute shadows the method)
        original = connection.get_component_candidates

        async def only_announced(
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 - aioice's own signature
            _original: Any = original,
        ) -> list[Candidate]:
            # ``addresses`` is what aioice found on the interfaces; ours replace it.
            del addresses
            result: list[Candidate] = await _original(
                component=component, addresses=list(wanted), timeout=timeout
            )
            return result

        connection.get_component_candidates = only_announced  # type: ignore[method-assign]


def parse_networks(networks: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(network, strict=False) for network in networks]


def address_allowed(address: str, networks: Sequence[Network]) -> bool:
    """An empty network list admits public addresses only; a hostname (mDNS) is never admitted.

    Every remote candidate is an address the node will send STUN checks to: a caller naming
    10.0.0.5 or 127.0.0.1 would make it probe the centre's own network. Loopback and private
    ranges are admitted only where a deployment (or a test) names them.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if not networks:
        return ip.is_global and not ip.is_multicast
    return any(ip in network for network in networks)


def count_candidates(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("a=candidate:"))


def parse_candidate(candidate: str) -> tuple[str, str]:
    """Split a browser's ``candidate:...`` string into (sdp attribute value, address).

    Raises:
        ValueError: the string is not an ICE candidate.
    """
    value = candidate.removeprefix("a=").removeprefix("candidate:")
    try:
        parsed = candidate_from_sdp(value)
    except (AssertionError, ValueError, IndexError) as exc:
        raise ValueError(f"not an ICE candidate: {candidate[:80]!r}") from exc
    return value, parsed.ip


def check_offer(sdp: str) -> None:
    """Refuse an offer aiortc could not apply, before it is applied: one that does not parse,
    has no audio or video, or lacks what ``setRemoteDescription`` insists on (ICE credentials
    and RTCP mux on every m-line). What it raises while applying one that passes is a bug.

    Raises:
        AppError: ``INVALID_SDP``.
    """
    try:
        description = SessionDescription.parse(sdp)
    except (AssertionError, ValueError, IndexError, KeyError, TypeError) as exc:
        # aiortc's parser on the browser's text: its errors are the text's fault.
        reason = str(exc) or type(exc).__name__
        raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {reason}") from None
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not media:
        raise AppError(ErrorCode.INVALID_SDP, "Unusable offer: no audio or video")
    for section in description.media:
        credentials = section.ice
        if credentials is None or not credentials.usernameFragment or not credentials.password:
            raise AppError(ErrorCode.INVALID_SDP, "Unusable offer: no ICE credentials")
        if section.kind in ("audio", "video") and not section.rtcp_mux:
            raise AppError(ErrorCode.INVALID_SDP, "Unusable offer: no RTCP mux")


def filter_sdp_candidates(sdp: str, networks: Sequence[Network]) -> str:
    """Drop the ``a=candidate`` lines of an SDP whose address lies outside ``networks``."""
    kept: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            try:
                _, address = parse_candidate(line)
            except ValueError:
                logger.info("dropped malformed candidate line in SDP")
                continue
            if not address_allowed(address, networks):
                # Not the address: it is the caller's, and logs are read by many.
                logger.info("dropped an SDP candidate outside the peer networks")
                continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
