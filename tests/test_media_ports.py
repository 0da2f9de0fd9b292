"""MEDIA_PORT_RANGE: a media node's ICE sockets bind only ports of the range, on loopback here;
a full range refuses a call's media (``media_busy``) while the call queues and chats; the
start-up warnings about media a caller could not reach."""

from __future__ import annotations

import inspect
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aioice import Connection

from config import Settings, SettingsError, load_settings
from media import ice
from server.app import create_app
from server.core.clock import FrozenClock
from server.node import MEDIA_HUB_KEY
from tests import stores
from tests.conftest import ClientFactory
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

# Below the kernel's ephemeral range (32768-60999 on Linux), so no socket of the test's own
# peers, which take ephemeral ports, can fall in it. The other storage pass, running at the
# same time, has a range of its own.
RANGE = (21000 + stores.PORT_OFFSET, 21019 + stores.PORT_OFFSET)
MEDIA_TIMEOUT_SECS = 20.0


def udp_sockets() -> list[tuple[str, int]]:
    """(address, port) of every UDP socket this test process holds, as ``ss -uanp`` lists them."""
    out = subprocess.run(
        ["ss", "-uanp"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    mine = f"pid={os.getpid()},"
    sockets = []
    for line in out.splitlines():
        if mine not in line:
            continue
        local = line.split()[3]  # State Recv-Q Send-Q Local Peer Process
        address, port = local.rsplit(":", 1)
        sockets.append((address.strip("[]"), int(port)))
    return sockets


def announced(sdp: str) -> list[tuple[str, int]]:
    """(address, port) of an SDP's candidates."""
    found = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append((fields[4], int(fields[5])))
    return found


def keeping(answers: list[str], answer: Callable[[str], Awaitable[str]]) -> Any:
    """``answer``, keeping each answer SDP it returns."""

    async def kept(sdp: str) -> str:
        result = await answer(sdp)
        answers.append(result)
        return result

    return kept


async def ranged_client(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, port_range: str
) -> Client:
    configured = settings.model_copy(update={"MEDIA_PORT_RANGE": port_range})
    client: Client = await aiohttp_client(create_app(configured, clock))
    return client


async def test_a_calls_media_binds_inside_the_range_on_loopback(
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FrozenClock,
) -> None:
    client = await ranged_client(aiohttp_client, settings, clock, f"{RANGE[0]}-{RANGE[1]}")
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    operator = await another_browser(client)
    await sign_in(operator, await add_account(client, "oskar", "operator"), clock)
    started = await start_call(client)
    call_id = started["call_id"]
    answers: list[str] = []
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, started["token"]) as phone, console(operator) as desk:
            peers.append(await citizen_peer(keeping(answers, answer_via(phone))))
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            clock.advance(1.0)  # let the console's keyframe request out (a frozen clock)
            peers.append(
                await subscriber_peer(
                    keeping(answers, answer_via(desk, call_id=call_id)), talk=True
                )
            )
            await wait_until(
                lambda: peers[1].received.video_frames > 10 and peers[0].received.audio_frames > 10,
                MEDIA_TIMEOUT_SECS,
                "video at the operator and the operator's voice at the phone",
            )
            # What the media node announced: loopback, ports of the range, one per peer.
            node_ports = set()
            for answer in answers:
                candidates = announced(answer)
                assert candidates, answer
                for address, port in candidates:
                    assert address == "127.0.0.1"
                    assert RANGE[0] <= port <= RANGE[1], candidates
                    node_ports.add(port)
            assert len(node_ports) == 2
            # What the process holds: the node's sockets are those ports, the test peers' are
            # ephemeral ones, and every UDP socket is on loopback (no media leaves it).
            held = udp_sockets()
            in_range = {port for _, port in held if RANGE[0] <= port <= RANGE[1]}
            assert in_range == node_ports, held
            assert held and {address for address, _ in held} == {"127.0.0.1"}, held
            assert hub.stats(call_id)["citizen"]["connected"]
    finally:
        for peer in peers:
            await peer.close()
        await operator.close()


async def test_a_full_range_refuses_media_but_the_call_goes_on(
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One port: the first call takes it; the second call's media is refused (media_busy),
    the call still queues and chats, and gets its media once the port is free again."""
    port = RANGE[0] + 5
    client = await ranged_client(aiohttp_client, settings, clock, f"{port}-{port}")
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    first, second = await start_call(client), await start_call(client)
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, first["token"]) as one, citizen(client, second["token"]) as two:
            answers: list[str] = []
            peers.append(await citizen_peer(keeping(answers, answer_via(one))))
            assert set(announced(answers[0])) == {("127.0.0.1", port)}

            with caplog.at_level(logging.WARNING, logger="media.ice"):
                sdp = peers[0].pc.localDescription.sdp
                reply = await two.call("media_offer", {"type": "offer", "sdp": sdp})
            assert reply["ok"] is False, reply
            assert reply["error"]["code"] == "media_busy"
            assert (await two.next_error())["code"] == "media_busy"
            assert [r.getMessage() for r in caplog.records if r.name == "media.ice"] == [
                f"MEDIA_PORT_RANGE {port}-{port} is full on 127.0.0.1: "
                "a peer connection's media refused"
            ]
            assert not hub.has_session(second["call_id"])
            said = await two.call("chat", {"client_id": "c-ports001", "body": "no video?"})
            assert said["ok"]
            assert (await two.call("resume", {}))["call"]["state"] == "queued"

            # The first call ends: its port is free, and the second call's next offer has it.
            assert (await one.call("end_call", {}))["ok"]
            peers.append(await citizen_peer(keeping(answers, answer_via(two))))
            assert set(announced(answers[-1])) == {("127.0.0.1", port)}
            await wait_until(
                lambda: hub.stats(second["call_id"])["citizen"]["video_received"] > 10,
                MEDIA_TIMEOUT_SECS,
                "the second caller's video at the media node",
            )
    finally:
        for peer in peers:
            await peer.close()


async def test_the_pages_turn_server_is_not_the_nodes(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """ICE_SERVERS' TURN entry (credentials minted for the pages by TURN_SECRET) is left out of
    the node's own peers: asking it without credentials would hold every answer for aioice's
    5 s, from a socket outside the range. Here the "TURN server" never answers."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    turn_url = f"turn:127.0.0.1:{silent.getsockname()[1]}?transport=udp"
    configured = settings.model_copy(
        update={
            "MEDIA_PORT_RANGE": f"{RANGE[0]}-{RANGE[1]}",
            "ICE_SERVERS": [{"urls": [turn_url]}],
            "TURN_SECRET": "s3cret",
        }
    )
    client: Client = await aiohttp_client(create_app(configured, clock))
    started = await start_call(client)
    assert started["ice_servers"][0]["username"]  # the page's entry has its credentials
    answers: list[str] = []
    peer: MediaPeer | None = None
    try:
        async with citizen(client, started["token"]) as phone:
            began = time.monotonic()
            peer = await citizen_peer(keeping(answers, answer_via(phone)))
            # Before: 5 s and more (aioice's wait for the allocation that never comes).
            assert time.monotonic() - began < 4.0
        candidates = announced(answers[0])
        assert candidates
        assert all(RANGE[0] <= port <= RANGE[1] for _, port in candidates), candidates
    finally:
        if peer is not None:
            await peer.close()
        silent.close()


def test_the_port_range_setting() -> None:
    assert load_settings(MEDIA_PORT_RANGE="40000-40199").media_port_range == (40000, 40199)
    assert load_settings(MEDIA_PORT_RANGE=" 40000 - 40000 ").media_port_range == (40000, 40000)
    assert load_settings().media_port_range is None
    for bad in ("40199-40000", "80-90", "40000", "40000-70000", "a-b", "40000:40199"):
        with pytest.raises(SettingsError, match="LIFELINE_MEDIA_PORT_RANGE"):
            load_settings(MEDIA_PORT_RANGE=bad)


def test_aioice_port_guard() -> None:
    """What ``ice._gather_in_range`` does in aioice's place, as aioice 0.13 does it."""
    source = inspect.getsource(Connection.get_component_candidates)
    for part in (
        "lambda: StunProtocol(self), local_addr=(address, 0)",
        "turn.UDP_SOCKET_BUFFER_SIZE",
        'foundation=candidate_foundation("host", "udp", candidate_address[0])',
        'priority=candidate_priority(component, "host")',
        "self._protocols += host_protocols",
        "server_reflexive_candidate(protocol, self.stun_server)",
        "if self.turn_server:",
    ):
        assert part in source, part
    assert re.search(r"for protocol in host_protocols:\s+if ipaddress", source)


# -- start-up warnings ----------------------------------------------------------------------


STUN = [{"urls": "stun:stun.example.org:3478"}]


def warnings_for(
    caplog: pytest.LogCaptureFixture, settings: Settings, host_addresses: list[str]
) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="media.ice"):
        ice.warn_about_reachability(settings, host_addresses)
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_no_ice_servers_on_a_reachable_host_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    public = ["93.184.216.34"]
    [line] = warnings_for(caplog, Settings(HOST="0.0.0.0"), public)
    assert line.startswith("LIFELINE_ICE_SERVERS is empty: ")
    # Behind a reverse proxy: it listens on loopback, and is published.
    [line] = warnings_for(caplog, Settings(PUBLIC_URL="https://112.example.org"), public)
    assert line.startswith("LIFELINE_ICE_SERVERS is empty: ")
    assert warnings_for(caplog, Settings(HOST="127.0.0.1"), public) == []
    assert warnings_for(caplog, Settings(HOST="localhost"), public) == []
    assert warnings_for(caplog, Settings(HOST="0.0.0.0", ICE_SERVERS=STUN), public) == []


def test_media_addresses_unset_behind_nat_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    private = ["10.1.2.3", "192.168.7.1", "fd00::5"]
    reachable = Settings(HOST="0.0.0.0", ICE_SERVERS=STUN)
    [line] = warnings_for(caplog, reachable, private)
    assert line.startswith(
        "LIFELINE_MEDIA_ADDRESSES is unset and this machine's addresses "
        "(10.1.2.3, 192.168.7.1, fd00::5) are all private: "
    )
    named = reachable.model_copy(update={"MEDIA_ADDRESSES": ["10.1.2.3"]})
    assert warnings_for(caplog, named, private) == []
    assert warnings_for(caplog, reachable, [*private, "93.184.216.34"]) == []
    assert warnings_for(caplog, Settings(ICE_SERVERS=STUN), private) == []  # loopback only
    # Both at once: a line each.
    both = warnings_for(caplog, Settings(HOST="0.0.0.0"), private)
    assert [line.split(" ", 1)[0] for line in both] == [
        "LIFELINE_ICE_SERVERS",
        "LIFELINE_MEDIA_ADDRESSES",
    ]
