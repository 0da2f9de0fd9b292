"""A call through TURN, as a centre runs it: Debian's coturn with the repository's configuration
(deploy/coturn/turnserver.conf), on loopback.

The server hands the pages coturn in ``ICE_SERVERS`` with credentials minted from
``TURN_SECRET``, and ``ICE_TRANSPORT_POLICY=relay`` makes the caller's page use relayed
candidates only. The caller's video reaches the operator's console through the relay, the
call's recording holds it, and no UDP socket of the server, coturn or Chromium is bound off
loopback. coturn's own rules are checked with aioice as a TURN client: the server's credentials
open an allocation, a wrong or expired one does not, and a relay to a private address is
refused (the test lets loopback through, on the command line, as the configuration says).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol
from playwright.sync_api import BrowserContext, Page, expect

from tests import stores
from tests.browser import test_live_call as live
from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.browser.test_live_call import accept, end_from_console, expect_rising, start_call
from tests.browser.waiting import wait_true

pytestmark = pytest.mark.browser

TURNSERVER = "/usr/bin/turnserver"
CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "coturn" / "turnserver.conf"
# Below the kernel's ephemeral range, apart from tests/test_media_ports.py's (and the other
# storage pass's, which runs at the same time).
RELAY_PORTS = (22000 + stores.PORT_OFFSET, 22049 + stores.PORT_OFFSET)
MEDIA_PORTS = (21100 + stores.PORT_OFFSET, 21149 + stores.PORT_OFFSET)
VIDEO = "[data-testid=remote-video]"
START_TIMEOUT_SECS = 10.0

# The module's phone and console are the live-call module's, against this call_server.
phone = live.phone
console = live.console

# The newest open peer connection's selected candidate pair, and every local candidate's type.
SELECTED_PAIR_JS = """async () => {
  const open = (window.__peers || []).filter((pc) => pc.connectionState !== 'closed');
  const pc = open[open.length - 1];
  if (!pc) return null;
  const stats = await pc.getStats();
  let pairId = null;
  const localTypes = [];
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    if (s.type === 'local-candidate') localTypes.push(s.candidateType);
  });
  const pair = pairId && stats.get(pairId);
  if (!pair || pair.state !== 'succeeded') return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  return {
    policy: pc.getConfiguration().iceTransportPolicy,
    local: {
      type: local.candidateType, address: local.address, relayProtocol: local.relayProtocol,
    },
    remote: { type: remote.candidateType, address: remote.address, port: remote.port },
    localTypes,
  };
}"""


# Every address the page's open peer connections send to: candidate pairs' remote candidates
# and the relays' own addresses.
REMOTE_ADDRESSES_JS = """async () => {
  const found = [];
  for (const pc of (window.__peers || []).filter((p) => p.connectionState !== 'closed')) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'remote-candidate' || s.type === 'local-candidate') found.push(s.address);
    });
  }
  return found;
}"""


@dataclass
class Turn:
    process: subprocess.Popen[bytes]
    port: int
    secret: str
    log: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_stun(port: int) -> bool:
    """A STUN Binding request to 127.0.0.1:port gets its success response."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.3)
        probe.sendto(bytes(request), ("127.0.0.1", port))
        try:
            data = probe.recv(2048)
        except TimeoutError:
            return False
    response = stun.parse_message(data)
    return bool(
        response.transaction_id == request.transaction_id
        and response.message_class == stun.Class.RESPONSE
    )


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    """coturn in the foreground with the repository's configuration; the test's own listening
    port, relay ports, secret and realm, and loopback let through as a peer (the one change the
    configuration says a private media node needs, plus coturn's separate loopback switch)."""
    assert Path(TURNSERVER).exists(), "Debian's coturn is required: apt-get install coturn"
    directory = tmp_path_factory.mktemp("coturn")
    port = _free_udp_port()
    secret = secrets.token_urlsafe(24)
    log = directory / "turnserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                TURNSERVER,
                "-c",
                str(CONFIG),
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                f"--min-port={RELAY_PORTS[0]}",
                f"--max-port={RELAY_PORTS[1]}",
                "--allowed-peer-ip=127.0.0.1",
                "--allow-loopback-peers",
                f"--static-auth-secret={secret}",
                "--realm=lifeline.test",
                f"--pidfile={directory / 'turnserver.pid'}",
                f"--userdb={directory / 'turndb'}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while not _answers_stun(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"coturn did not start: {log.read_text(errors='replace')}")
    yield Turn(process, port, secret, log)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def call_server(tmp_path_factory: pytest.TempPathFactory, turn: Turn) -> Iterator[RunningServer]:
    """The pages get coturn (credentials from TURN_SECRET) and relay only; the media node binds
    MEDIA_PORTS on loopback, and admits the relay's loopback candidates."""
    server = start_server(
        tmp_path_factory.mktemp("turn-relay"),
        {
            "LIFELINE_ICE_SERVERS": json.dumps([{"urls": [turn.url]}]),
            "LIFELINE_TURN_SECRET": turn.secret,
            "LIFELINE_ICE_TRANSPORT_POLICY": "relay",
            "LIFELINE_MEDIA_PORT_RANGE": f"{MEDIA_PORTS[0]}-{MEDIA_PORTS[1]}",
            "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
            "LIFELINE_MEDIA_PEER_NETWORKS": "127.0.0.0/8",
            "LIFELINE_CALL_RATE_LIMIT": "100/minute",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(call_server: RunningServer) -> None:
    """The server first: in scale-out mode its start resets PostgreSQL with ``asyncio.run()``."""


# -- coturn's rules, with aioice as the TURN client ------------------------------------------


async def _allocate(port: int, username: str, password: str, peer: tuple[str, int]) -> str:
    """Allocate on coturn and bind a channel to ``peer``; "ok", or the refusal's STUN code."""
    loop = asyncio.get_running_loop()
    server = ("127.0.0.1", port)
    transport, client = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server, username=username, password=password, lifetime=60, channel_refresh_time=60
        ),
        remote_addr=server,
    )
    try:
        try:
            await asyncio.wait_for(client.connect(), 5)
        except stun.TransactionFailed as exc:
            return f"allocate {exc.response.error_code}"
        try:
            await asyncio.wait_for(client.channel_bind(0x4000, peer), 5)
        except stun.TransactionFailed as exc:
            return f"peer {exc.response.error_code}"
        await client.delete()
        return "ok"
    finally:
        transport.close()


def _in_a_thread(coroutine: Any) -> Any:
    """Run a coroutine on a loop of its own (sync Playwright's may hold this thread's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=30)


def _rest_password(secret: str, username: str) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    ).decode()


def test_coturn_takes_the_servers_credentials_and_refuses_private_peers(
    call_server: RunningServer, turn: Turn
) -> None:
    request = urllib.request.Request(
        f"{call_server.base}/api/calls",
        data=json.dumps({"channel": "police", "language": "en", "mode": "text"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        created = json.load(response)
    [entry] = created["ice_servers"]
    assert entry["urls"] == [turn.url]
    username, password = entry["username"], entry["credential"]
    assert username.endswith(":call-" + created["call_id"][:8])
    loopback_peer = ("127.0.0.1", MEDIA_PORTS[0])
    assert _in_a_thread(_allocate(turn.port, username, password, loopback_peer)) == "ok"
    assert _in_a_thread(_allocate(turn.port, username, "wrong", loopback_peer)) == "allocate 401"
    expired = f"{int(time.time()) - 60}:call-{created['call_id'][:8]}"
    assert (
        _in_a_thread(
            _allocate(turn.port, expired, _rest_password(turn.secret, expired), loopback_peer)
        )
        == "allocate 401"
    )
    # The configuration's denied-peer-ip: a relay into the centre's network is refused.
    for private in ("10.1.2.3", "192.168.1.10", "172.16.5.4", "169.254.0.9", "100.64.0.1"):
        assert _in_a_thread(_allocate(turn.port, username, password, (private, 9))) == "peer 403"


# -- the call --------------------------------------------------------------------------------


def _udp_sockets(pids: set[int]) -> list[tuple[str, str, str]]:
    """(process, local address:port, peer) of every UDP socket ``ss -uanp`` lists for ``pids``."""
    out = subprocess.run(
        ["ss", "-uanp"], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    found = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 6:
            continue
        owners = {int(pid) for pid in _pids_in(fields[5])}
        if owners & pids:
            name = fields[5].split('"')[1]
            found.append((name, fields[3], fields[4]))
    return found


def _pids_in(users: str) -> list[str]:
    return [part.split(",")[0] for part in users.split("pid=")[1:]]


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (the server, coturn, Playwright's Chromium)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _host(address: str) -> str:
    return address.rsplit(":", 1)[0].strip("[]")


def test_the_callers_media_reaches_the_operator_through_the_relay(
    phone: BrowserContext, console: Page, call_server: RunningServer, turn: Turn
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    expect_rising(console, "framesDecoded", VIDEO)
    console.wait_for_function(
        "(selector) => document.querySelector(selector).videoWidth > 0", arg=VIDEO
    )
    expect_rising(citizen, "audioPackets")

    wait_true(citizen, f"async () => (await ({SELECTED_PAIR_JS})()) !== null", None, 15_000,
              "the caller's selected candidate pair")  # fmt: skip
    pair: dict[str, Any] = citizen.evaluate(SELECTED_PAIR_JS)
    assert pair["policy"] == "relay"
    assert pair["localTypes"] and set(pair["localTypes"]) == {"relay"}, pair
    assert pair["local"] == {"type": "relay", "address": "127.0.0.1", "relayProtocol": "udp"}
    # The far end is the media node's host candidate, on a port of its range.
    assert pair["remote"]["type"] == "host" and pair["remote"]["address"] == "127.0.0.1"
    assert MEDIA_PORTS[0] <= pair["remote"]["port"] <= MEDIA_PORTS[1], pair

    # Nothing leaves loopback. The server's and coturn's UDP sockets are all bound to it (and
    # so cannot reach beyond it), the media node's in its range, coturn's relays in theirs.
    server_held = _udp_sockets(_descendants(call_server.process.pid))
    turn_held = _udp_sockets({turn.process.pid})
    assert server_held and turn_held
    assert all(_host(local) == "127.0.0.1" for _, local, _ in server_held + turn_held)
    assert all(MEDIA_PORTS[0] <= _port(local) <= MEDIA_PORTS[1] for _, local, _ in server_held)
    relays = [local for _, local, _ in turn_held if _port(local) != turn.port]
    assert relays and all(RELAY_PORTS[0] <= _port(local) <= RELAY_PORTS[1] for local in relays)
    # Chromium also binds a socket on each other interface to reach coturn from (ss lists
    # them), but every address it was given or found to send to is loopback: coturn's, the
    # relays' and the media node's.
    for page in (citizen, console):
        remotes: list[str] = page.evaluate(REMOTE_ADDRESSES_JS)
        assert remotes and set(remotes) == {"127.0.0.1"}, remotes

    # Three seconds of picture at the operator before the end, so that the recording cannot be
    # short only because the call was (CI once ended this call 29 frames in, at load 5).
    wait_true(console, live.RISING_JS, [VIDEO, "framesDecoded", 90], 20_000,
              "90 frames decoded at the operator")  # fmt: skip
    end_from_console(console, citizen)
    rows = call_media(call_server, call_id)["recordings"]
    assert rows, "no recording"
    import av

    frames = 0
    for row in rows:
        with av.open(row["path"]) as container:
            assert "video" in {stream.type for stream in container.streams}
            frames += sum(1 for packet in container.demux(video=0) if packet.size)
    assert frames > 30, f"the recording holds {frames} video frames"
