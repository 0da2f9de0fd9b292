"""Media nodes reached over Socket.IO (media/agent.py, signaling/media_bus.py): the path of
media worker processes and of a console on one node watching a call whose media is on another.

The media nodes here are real MediaAgents with real MediaHubs, connected to the real server over
a real Socket.IO connection; the citizen and the console are real aiortc peers offering through
the server, as the pages do.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import socketio

from config import Settings
from media.agent import MediaAgent
from media.hub import MediaHub
from server.app import create_app
from server.core.clock import FrozenClock, SystemClock
from server.core.media_rpc import LOAD, NAMESPACE, SEGMENT_CLOSED, ClosedSegment
from server.core.storage import RECORDINGS
from server.db.models import Call, Recording
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY, MEDIA_SECRET_KEY
from server.state.media_nodes import STALE_SECS
from tests import stores
from tests.conftest import ClientFactory
from tests.evidence_calls import stored_segments
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import (
    answer_via,
    base_url,
    citizen,
    console,
    refused_offer,
    start_call,
    without_dtls_setup,
)
from tests.staff import Client, add_account, sign_in

MEDIA_TIMEOUT_SECS = 20.0
# The cross-node test needs the bus in either mode; the embedded run borrows a Redis db of its own.
BUS_REDIS_URL = stores.REDIS_URL or "redis://127.0.0.1:6379/13"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A node whose media is all in media nodes of their own (MEDIA_WORKERS > 0)."""
    return settings.model_copy(update={"MEDIA_WORKERS": 1})


@asynccontextmanager
async def media_node(client: Client, node_id: str) -> AsyncIterator[MediaAgent]:
    """What a worker process runs, connected to the client's node."""
    assert client.app is not None
    app = client.app
    settings = app[SERVICES_KEY].settings
    agents: list[MediaAgent] = []

    async def closed(segment: ClosedSegment) -> None:
        await agents[0].segment_closed(segment)

    hub = MediaHub(
        recordings_dir=settings.storage_dir / RECORDINGS,
        ice_servers=[],
        media_addresses=settings.MEDIA_ADDRESSES,
        peer_networks=settings.MEDIA_PEER_NETWORKS,
        on_segment_closed=closed,
        segment_secs=settings.RECORDING_SEGMENT_SECS,
        clock=SystemClock(),
    )
    agent = MediaAgent(hub, node_id=node_id, home=settings.NODE_ID, secret=app[MEDIA_SECRET_KEY])
    agents.append(agent)
    await agent.connect(base_url(client))
    try:
        for _ in range(100):
            if node_id in {n.id for n in await app[SERVICES_KEY].media_nodes.alive()}:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"media node {node_id} never joined")
        yield agent
    finally:
        await agent.close()


def _sha256_of(client: Client, key: str) -> str:
    """The hash of the file a row's key names, read through the node's storage."""
    assert client.app is not None
    path = client.app[SERVICES_KEY].storage.path(key)
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _media_node_of(client: Client, call_id: str) -> str | None:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call.media_node


async def test_a_call_whose_media_is_in_a_media_node(client: Client, operator: Client) -> None:
    """Offers, candidates, snapshot and the end all cross the wire; the segment comes back as
    evidence, stored with the media node's name."""
    assert client.app is not None
    assert client.app[MEDIA_HUB_KEY] is None  # nothing of the media runs in the server
    started = await start_call(client)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    async with media_node(client, "test.m1") as node:
        try:
            async with citizen(client, started["token"]) as phone, console(operator) as desk:
                peers.append(await citizen_peer(answer_via(phone)))
                assert await _media_node_of(client, call_id) == "test.m1"
                await wait_until(
                    lambda: node.hub.stats(call_id)["citizen"]["video_received"] > 30,
                    MEDIA_TIMEOUT_SECS,
                    "the citizen's video at the media node",
                )
                assert (await desk.call("accept", {"call_id": call_id}))["ok"]
                desk_peer = await subscriber_peer(answer_via(desk, call_id=call_id), talk=True)
                peers.append(desk_peer)
                await wait_until(
                    lambda: (
                        desk_peer.received.video_frames > 30 and peers[0].received.audio_frames > 30
                    ),
                    MEDIA_TIMEOUT_SECS,
                    "video at the operator, the operator's voice at the phone",
                )
                snap = await desk.call("snapshot", {"call_id": call_id})
                assert snap["ok"], snap
                image = await operator.get(snap["url"])
                jpeg = await image.read()
                assert jpeg[:2] == b"\xff\xd8"
                assert hashlib.sha256(jpeg).hexdigest() == snap["sha256"]
                ended = await desk.call(
                    "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
                )
                assert ended["state"] == "ended"
                assert not node.hub.has_session(call_id)
        finally:
            for peer in peers:
                await peer.close()
        segments: list[Recording] = []
        for _ in range(100):  # the report crosses the wire after the end
            segments = await stored_segments(client, call_id)
            if segments:
                break
            await asyncio.sleep(0.05)
    assert [(s.segment, s.media_node) for s in segments] == [(1, "test.m1")]
    assert _sha256_of(client, segments[0].path) == segments[0].sha256
    assert (await client.app[SERVICES_KEY].audit.verify()).ok


async def test_media_moves_when_its_media_node_goes(client: Client, operator: Client) -> None:
    """The media node of a call stops; the page's new offer is placed on another one, the
    recording goes on as the next segment and no file is overwritten."""
    assert client.app is not None
    started = await start_call(client)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    async with media_node(client, "test.m1") as first, media_node(client, "test.m2") as second:
        try:
            async with citizen(client, started["token"]) as phone:
                peers.append(await citizen_peer(answer_via(phone)))
                home = await _media_node_of(client, call_id)
                assert home in ("test.m1", "test.m2")
                gone, other = (first, second) if home == "test.m1" else (second, first)
                await wait_until(
                    lambda: gone.hub.stats(call_id)["citizen"]["video_received"] > 30,
                    MEDIA_TIMEOUT_SECS,
                    "video at the first media node",
                )
                await gone.close()
                # The page hears at once that its media node went, and offers again.
                assert (await phone.next_event("media.lost"))["call_id"] == call_id
                await peers[0].close()
                peers.append(await citizen_peer(answer_via(phone)))
                assert await _media_node_of(client, call_id) == other.node_id
                await wait_until(
                    lambda: other.hub.stats(call_id)["citizen"]["video_received"] > 30,
                    MEDIA_TIMEOUT_SECS,
                    "video at the second media node",
                )
                assert (await phone.call("end_call", {}))["ok"]
        finally:
            for peer in peers:
                await peer.close()
        segments: list[Recording] = []
        for _ in range(100):
            segments = await stored_segments(client, call_id)
            if len(segments) == 2:
                break
            await asyncio.sleep(0.05)
    assert [(s.segment, s.media_node) for s in segments] == [
        (1, gone.node_id),
        (2, other.node_id),
    ]
    assert len({s.path for s in segments}) == 2
    for segment in segments:
        assert _sha256_of(client, segment.path) == segment.sha256


async def test_with_no_media_node_the_call_still_queues(client: Client) -> None:
    started = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        peer_sdp: list[str] = []

        async def offer(sdp: str) -> str:
            peer_sdp.append(sdp)
            reply = await phone.call("media_offer", {"type": "offer", "sdp": sdp})
            assert reply["ok"] is False
            assert reply["error"]["code"] == "media_busy"
            raise RuntimeError("refused as expected")

        with pytest.raises(RuntimeError, match="refused as expected"):
            await citizen_peer(offer)
        assert peer_sdp
        said = await phone.call("chat", {"client_id": "c-nomedia1", "body": "no video?"})
        assert said["ok"]
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"


async def test_only_media_nodes_get_in_and_bad_reports_are_refused(client: Client) -> None:
    assert client.app is not None
    url = base_url(client)
    intruder = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await intruder.connect(
            url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            auth={"secret": "guess", "node": "evil"},
            wait_timeout=5,
        )
    node = socketio.AsyncClient(reconnection=False)
    secret = client.app[MEDIA_SECRET_KEY]
    with pytest.raises(socketio.exceptions.ConnectionError):
        await node.connect(
            url,
            namespaces=[NAMESPACE],
            transports=["websocket"],
            auth={"secret": secret, "node": "bad id with spaces"},
            wait_timeout=5,
        )
    await node.connect(
        url,
        namespaces=[NAMESPACE],
        transports=["websocket"],
        auth={"secret": secret, "node": "test.m9"},
        wait_timeout=5,
    )
    try:
        await node.emit(LOAD, "not a load report", namespace=NAMESPACE)
        await node.emit(LOAD, {"sessions": -1, "admit": True}, namespace=NAMESPACE)
        for bad in (None, "x", {"call_id": "c"}, {**_a_segment(), "size_bytes": "many"}):
            reply = await node.call(SEGMENT_CLOSED, bad, namespace=NAMESPACE, timeout=5)
            assert reply["ok"] is False and reply["code"] == "invalid", (bad, reply)
        # Still connected and listed: a bad report does not cost the connection.
        assert "test.m9" in {n.id for n in await client.app[SERVICES_KEY].media_nodes.alive()}
    finally:
        await node.disconnect()
    assert await stored_segments(client, "c") == []


async def test_a_media_node_that_stops_reporting_is_stale_on_the_clock(
    client: Client, clock: FrozenClock
) -> None:
    """Staleness is measured on the services' clock: moved past STALE_SECS without a report,
    the media node is no longer listed nor given a call; its next report lists it again."""
    assert client.app is not None
    nodes = client.app[SERVICES_KEY].media_nodes
    offers: list[object] = []
    node = socketio.AsyncClient(reconnection=False)
    node.on("citizen_offer", lambda data: offers.append(data), namespace=NAMESPACE)
    await node.connect(
        base_url(client),
        namespaces=[NAMESPACE],
        transports=["websocket"],
        auth={"secret": client.app[MEDIA_SECRET_KEY], "node": "test.m7"},
        wait_timeout=5,
    )
    try:
        assert "test.m7" in {n.id for n in await nodes.alive()}
        clock.advance(STALE_SECS)
        assert "test.m7" in {n.id for n in await nodes.alive()}, "stale only past the limit"
        clock.advance(0.5)
        assert "test.m7" not in {n.id for n in await nodes.alive()}
        started = await start_call(client)
        async with citizen(client, started["token"]) as phone:
            sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            reply = await phone.call("media_offer", {"type": "offer", "sdp": sdp})
            assert reply["error"]["code"] == "media_busy", reply
        assert offers == [], "a stale media node is never asked"
        await node.emit(LOAD, {"sessions": 2, "admit": True}, namespace=NAMESPACE)
        for _ in range(250):  # until the server has handled the report, not for a time
            if ("test.m7", 2) in {(n.id, n.sessions) for n in await nodes.alive()}:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the load report never listed the media node again")
    finally:
        await node.disconnect()


async def test_a_bug_in_a_media_node_reaches_the_caller_as_media_failed(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A real hub behind the real /media namespace fails inside aiortc on an offer that passed
    its checks (no ``a=setup``): the media node logs the bug with its traceback, and the
    caller's ``media_offer`` (a real Socket.IO citizen) is refused ``media_failed``, never
    ``invalid_sdp``. A genuinely unusable offer still gets ``invalid_sdp``."""
    started = await start_call(client)
    async with media_node(client, "test.m1") as node, citizen(client, started["token"]) as phone:
        refusals: list[dict[str, object]] = []

        offer = refused_offer(phone, refusals, without_dtls_setup)

        with (
            caplog.at_level(logging.ERROR, "media.rpc"),
            pytest.raises(RuntimeError, match="refused as expected"),
        ):
            await citizen_peer(offer)
        assert [r["code"] for r in refusals] == ["media_failed"], refusals
        assert (await phone.next_error())["code"] == "media_failed"
        bugs = [r for r in caplog.records if r.name == "media.rpc" and r.levelno >= logging.ERROR]
        assert len(bugs) == 1
        assert bugs[0].exc_info is not None and isinstance(bugs[0].exc_info[1], AttributeError)
        assert not node.hub.has_session(started["call_id"])

        unusable = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video abc\r\n"
        reply = await phone.call("media_offer", {"type": "offer", "sdp": unusable})
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_sdp", reply
        assert not node.hub.has_session(started["call_id"])


def _a_segment() -> dict[str, object]:
    return {
        "call_id": "c",
        "segment": 1,
        "path": "/nowhere.mkv",
        "started_at": "2026-11-25T10:00:00+00:00",
        "ended_at": "2026-11-25T10:01:00+00:00",
        "size_bytes": 1,
        "sha256": "0" * 64,
        "video_frames": 1,
        "audio_frames": 1,
    }


async def test_a_console_on_another_node_watches_the_call(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """Two nodes on one database and one bus: the call's media is on node B's media node, the
    operator's console on node A; offers, candidates and the snapshot cross the bus."""
    stores.flush_redis(BUS_REDIS_URL)
    on_bus = settings.model_copy(update={"REDIS_URL": BUS_REDIS_URL})
    node_a = await aiohttp_client(create_app(on_bus, clock))
    node_b = await aiohttp_client(create_app(on_bus.model_copy(update={"NODE_ID": "b"}), clock))
    anna = await add_account(node_a, "anna", "operator")
    await sign_in(node_a, anna, clock)
    started = await start_call(node_b)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    began = time.monotonic()
    async with media_node(node_b, "b.m1") as node:
        try:
            async with citizen(node_b, started["token"]) as phone, console(node_a) as desk:
                peers.append(await citizen_peer(answer_via(phone)))
                assert await _media_node_of(node_a, call_id) == "b.m1"
                assert (await desk.call("accept", {"call_id": call_id}))["ok"]
                desk_peer = await subscriber_peer(answer_via(desk, call_id=call_id), talk=True)
                peers.append(desk_peer)
                await wait_until(
                    lambda: desk_peer.received.video_frames > 30,
                    MEDIA_TIMEOUT_SECS,
                    "video at node A's operator",
                )
                snap = await desk.call("snapshot", {"call_id": call_id})
                assert snap["ok"], snap
                ended = await desk.call(
                    "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
                )
                assert ended["state"] == "ended"
                # Node A ended it; the media on node B's media node closed.
                await wait_until(lambda: not node.hub.has_session(call_id), 5.0, "the media closed")
        finally:
            for peer in peers:
                await peer.close()
    assert time.monotonic() - began < MEDIA_TIMEOUT_SECS * 2
    segments = await stored_segments(node_a, call_id)
    assert [(s.segment, s.media_node) for s in segments] == [(1, "b.m1")]
