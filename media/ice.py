"""ICE policy for the media node: explicit servers, announced addresses only, ports in a range,
remote filter.

aiortc builds one aioice ``Connection`` per transport and lets it gather on every interface
except 127.0.0.1 (``aioice.ice.get_host_addresses``), each socket on a port the kernel picks. A
media node must instead gather and announce exactly ``MEDIA_ADDRESSES`` (its public address, or
loopback in tests), on ports of ``MEDIA_PORT_RANGE`` only (so that a firewall opens that range,
not the whole ephemeral one; aioice 0.13 has no option for it, aiortc/aioice#47). So
:func:`restrict_gathering` narrows each connection of one peer before it gathers. It relies on
things of aioice 0.13 checked by ``tests/test_media.py::test_aioice_guard`` and
``tests/test_media_ports.py::test_aioice_port_guard``: ``RTCIceGatherer._connection``, and
``Connection.get_component_candidates(component, addresses, timeout)`` being the one place
where host addresses turn into sockets (bound with ``local_addr=(address, 0)``, each a
``StunProtocol`` in ``Connection._protocols``, asked for a server-reflexive address when there
is a STUN server, TURN asked apart from them).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aioice import Candidate, Connection, turn
from aioice.candidate import candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, get_host_addresses, server_reflexive_candidate
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.sdp import SessionDescription, candidate_from_sdp

from config import Settings
from server.core.errors import AppError, ErrorCode

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def rtc_configuration(ice_servers: Sequence[dict[str, Any]]) -> RTCConfiguration:
    """Always an explicit list: given ``None``, aiortc adds Google's public STUN server.

    Every m-line on the first one's transport (max-bundle), as every browser offers them: under
    aiortc's default (balanced) a second audio line after a video line stays on a transport of
    its own that never connects, so a console's or a monitor's second voice never flowed."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(**server) for server in ice_servers],
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )


class PortsExhausted(Exception):
    """Every port of the range is taken on that address."""


class PortRange:
    """The UDP ports a media node's ICE sockets bind (``MEDIA_PORT_RANGE``), one node's own.

    Ports are tried in turn from just after the last one handed out, so a port a call has just
    let go is the last to be reused. Other processes (a node's other media workers) take ports
    of the same range: the kernel's refusal to bind a taken port is what keeps them apart.
    """

    def __init__(self, low: int, high: int) -> None:
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"not a port range: {low}-{high}")
        self.low = low
        self.high = high
        self._next = low

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket on ``address`` and the next free port of the range.

        Raises:
            PortsExhausted: every port of the range is taken on ``address``.
            OSError: ``address`` cannot be bound at all (not an address of this machine).
        """
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
        size = self.high - self.low + 1
        for step in range(size):
            port = self.low + (self._next - self.low + step) % size
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            sock.setblocking(False)
            self._next = port + 1 if port < self.high else self.low
            return sock
        raise PortsExhausted(f"no free UDP port in {self} on {address}")


GetCandidates = Callable[..., Awaitable[list[Candidate]]]


def node_ice_servers(servers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What of ``ICE_SERVERS`` the media node's own peer connections use: every STUN entry, and
    a TURN entry only with a ``username`` of its own. A TURN entry without one is the pages'
    (``TURN_SECRET`` mints their credentials): the node would ask it for an allocation without
    credentials, be refused, and hold its answer until then (aioice waits up to 5 s), from a
    socket outside ``MEDIA_PORT_RANGE``. A node with a public address needs no relay."""
    kept = []
    for server in servers:
        urls = server["urls"] if isinstance(server["urls"], list) else [server["urls"]]
        is_turn = any(str(url).startswith(("turn:", "turns:")) for url in urls)
        if not is_turn or server.get("username"):
            kept.append(server)
    return kept


def restrict_gathering(
    pc: RTCPeerConnection, addresses: Sequence[str], ports: PortRange | None = None
) -> None:
    """Make every ICE transport of ``pc`` gather host candidates on ``addresses`` only, each
    socket on a port of ``ports``.

    Call it after the transceivers exist (``addTrack``/``setRemoteDescription``) and before
    ``setLocalDescription``, which is where aiortc gathers. An empty ``addresses`` keeps
    aioice's own choice (every interface but loopback); no ``ports``, the kernel's. When no
    address gets a port because the range is full, gathering (``setLocalDescription``) raises
    ``AppError(MEDIA_BUSY)``.
    """
    if not addresses and ports is None:
        return
    wanted = [str(ipaddress.ip_address(address)) for address in addresses]
    for transceiver in pc.getTransceivers():
        gatherer = transceiver.receiver.transport.transport.iceGatherer
        connection = gatherer._connection
        if "get_component_candidates" in vars(connection):
            continue  # already narrowed (an instance attribute shadows the method)
        original = connection.get_component_candidates

        async def narrowed(
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 - aioice's own signature
            _original: GetCandidates = original,
            _connection: Connection = connection,
        ) -> list[Candidate]:
            # ``addresses`` is what aioice found on the interfaces; ours, if any, replace it.
            chosen = list(wanted) or list(addresses)
            if ports is None:
                result: list[Candidate] = await _original(
                    component=component, addresses=chosen, timeout=timeout
                )
                return result
            return await _gather_in_range(_connection, _original, component, chosen, ports, timeout)

        connection.get_component_candidates = narrowed  # type: ignore[method-assign]


async def _gather_in_range(
    connection: Connection,
    original: GetCandidates,
    component: int,
    addresses: list[str],
    ports: PortRange,
    timeout_secs: float,
) -> list[Candidate]:
    """aioice's host gathering, with each socket bound in ``ports``; STUN asked for each as
    aioice would, TURN left to aioice (given no host address, it binds none itself).

    Raises:
        AppError: ``MEDIA_BUSY``, no address got a port because the range is full.
    """
    loop = asyncio.get_running_loop()
    hosts: list[StunProtocol] = []
    full: list[str] = []
    for address in addresses:
        try:
            sock = ports.bind(address)
        except PortsExhausted:
            full.append(address)
            continue
        except OSError as exc:
            logger.info("could not bind %s in %s: %s", address, ports, exc)
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, turn.UDP_SOCKET_BUFFER_SIZE)
            _, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(connection), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        host, port = protocol.transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        hosts.append(protocol)
    if full and not hosts:
        logger.warning(
            "MEDIA_PORT_RANGE %s is full on %s: a peer connection's media refused",
            ports,
            ", ".join(full),
        )
        raise AppError(ErrorCode.MEDIA_BUSY, "This media node has no free media port now")
    connection._protocols += hosts
    candidates = [protocol.local_candidate for protocol in hosts]
    deadline = loop.time() + timeout_secs
    reflexive = [
        asyncio.create_task(server_reflexive_candidate(protocol, connection.stun_server))
        for protocol in hosts
        if connection.stun_server
        and ipaddress.ip_address(protocol.local_candidate.host).version == 4
    ]
    try:
        relayed: list[Candidate] = await original(
            component=component, addresses=[], timeout=timeout_secs
        )
    except BaseException:
        for task in reflexive:
            task.cancel()
        raise
    candidates += relayed
    if reflexive:
        done, pending = await asyncio.wait(reflexive, timeout=max(0.0, deadline - loop.time()))
        for task in done:
            if task.exception() is None:
                candidates.append(task.result()[0])
        for task in pending:
            task.cancel()
    return candidates


def _beyond_loopback(settings: Settings) -> bool:
    """Whether pages reach this node from other machines: it listens, or is published (a
    reverse proxy in front), on an address other than loopback."""
    hosts = [settings.HOST]
    if settings.PUBLIC_URL:
        hosts.append(urlsplit(settings.PUBLIC_URL).hostname or "")
    for host in hosts:
        if host == "localhost":
            continue
        try:
            if ipaddress.ip_address(host).is_loopback:
                continue
        except ValueError:
            pass  # a name (or "" for every interface): reached from elsewhere
        return True
    return False


def warn_about_reachability(
    settings: Settings, host_addresses: Sequence[str] | None = None
) -> None:
    """Say at start-up, one warning line each, what leaves callers without media although
    everything else works: no STUN/TURN server for the pages, and a media node behind NAT
    that announces only private addresses. Nothing for a node that serves loopback only.
    ``host_addresses``: where aioice would gather (None: this machine's interfaces).
    """
    if not _beyond_loopback(settings):
        return
    if not settings.ICE_SERVERS:
        logger.warning(
            "LIFELINE_ICE_SERVERS is empty: callers behind a symmetric NAT, or on a network "
            "that blocks UDP, get no video or voice; run a TURN server (deploy/coturn) and set "
            "LIFELINE_ICE_SERVERS and LIFELINE_TURN_SECRET (docs/operations.md)"
        )
    if settings.MEDIA_ADDRESSES:
        return
    if host_addresses is None:
        host_addresses = get_host_addresses(use_ipv4=True, use_ipv6=True)
    if host_addresses and not any(ipaddress.ip_address(a).is_global for a in host_addresses):
        logger.warning(
            "LIFELINE_MEDIA_ADDRESSES is unset and this machine's addresses (%s) are all "
            "private: callers outside this network reach the media only through NAT; set "
            "LIFELINE_MEDIA_ADDRESSES to the address the NAT forwards LIFELINE_MEDIA_PORT_RANGE "
            "to, with a STUN server in LIFELINE_ICE_SERVERS, or relay callers through TURN "
            "(docs/operations.md)",
            ", ".join(host_addresses),
        )


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
    except Exception as exc:  # noqa: BLE001 - a pure parser of the browser's text
        # aiortc's parser on the browser's text: whatever it raises is the text's fault (an
        # attribute line without its value, ``a=extmap``, raised AttributeError: the fuzzer).
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
