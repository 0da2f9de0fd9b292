"""A recorded call through the server: real aiortc peers offer over Socket.IO, as pages do.

The recording is the evidence: every segment is stored with its SHA-256, entered in the audit
chain, plays (PyAV opens it, with video and audio), and together the segments last as long as
the call did.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

import av
import cv2
import numpy as np
import pytest
from sqlmodel import col, select

from media.ice import count_candidates
from media.session import KEYFRAME_MIN_INTERVAL_SECS, MAX_CANDIDATES_PER_PEER
from server.core.clock import FrozenClock
from server.core.storage import Storage
from server.db.models import AuditEntry, Recording
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import (
    answer_via,
    citizen,
    console,
    refused_offer,
    start_call,
    without_dtls_setup,
)
from tests.staff import Client, add_account, another_browser, sign_in

MEDIA_TIMEOUT_SECS = 20.0


def _check_segment(storage: Storage, segment: Recording) -> float:
    """The file the row's key names is the one hashed, and plays with video and audio;
    returns its seconds."""
    path = storage.path(segment.path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == segment.sha256
    assert path.stat().st_size == segment.size_bytes
    with av.open(str(path)) as container:
        kinds = {stream.type for stream in container.streams}
        duration = (container.duration or 0) / av.time_base
    assert {"video", "audio"} <= kinds
    return float(duration)


async def test_a_recorded_call_with_a_reload(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    started = await start_call(client)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    began = time.monotonic()
    try:
        async with citizen(client, started["token"]) as phone, console(operator) as desk:
            peers.append(await citizen_peer(answer_via(phone)))
            # Recording starts before anyone answers.
            await wait_until(
                lambda: hub.stats(call_id)["citizen"]["video_received"] > 30,
                MEDIA_TIMEOUT_SECS,
                "the citizen's video at the server",
            )
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            # The keyframe limit runs on the app's clock, which stands still here: let one
            # interval pass, so the console's request for a picture goes out to the phone.
            clock.advance(KEYFRAME_MIN_INTERVAL_SECS)
            console_peer = await subscriber_peer(
                answer_via(desk, call_id=call_id),
                talk=True,
            )
            peers.append(console_peer)
            phone_peer = peers[0]
            await wait_until(
                lambda: (
                    console_peer.received.video_frames > 30
                    and console_peer.received.audio_frames > 30
                    and phone_peer.received.audio_frames > 30
                ),
                MEDIA_TIMEOUT_SECS,
                "video and audio at the operator, the operator at the phone",
            )
            assert console_peer.received.video_size == (640, 480)

            snap = await desk.call("snapshot", {"call_id": call_id})
            assert snap["ok"], snap
            image = await operator.get(snap["url"])
            assert image.status == 200
            jpeg = await image.read()
            assert hashlib.sha256(jpeg).hexdigest() == snap["sha256"]
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert picture is not None
            assert picture.shape[:2] == (480, 640)

            # The page reloads: a new peer connection; the recording goes on in a new segment.
            gap_began = time.monotonic()
            await phone_peer.close()
            before = console_peer.received.video_frames
            peers.append(await citizen_peer(answer_via(phone)))
            await wait_until(
                lambda: console_peer.received.video_frames > before,
                MEDIA_TIMEOUT_SECS,
                "the first frame at the operator after the reload",
            )
            # Between the two peer connections nothing was sent, so nothing is recorded: on a
            # busy machine that gap alone was once more than the tolerance below.
            gap_secs = time.monotonic() - gap_began
            await wait_until(
                lambda: console_peer.received.video_frames > before + 30,
                MEDIA_TIMEOUT_SECS,
                "new frames at the operator after the reload",
            )
            await asyncio.sleep(1.0)
            ended = await desk.call(
                "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
            )
            assert ended["state"] == "ended"
        call_secs = time.monotonic() - began
    finally:
        for peer in peers:
            await peer.close()

    async with client.app[SERVICES_KEY].db.session() as session:
        segments = (
            await session.exec(
                select(Recording)
                .where(col(Recording.call_id) == call_id)
                .order_by(col(Recording.segment))
            )
        ).all()
        closed = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "recording_segment_closed")
            )
        ).all()
    assert [s.segment for s in segments] == [1, 2]
    storage = client.app[SERVICES_KEY].storage
    recorded_secs = sum([_check_segment(storage, segment) for segment in segments])
    assert abs(recorded_secs - (call_secs - gap_secs)) <= 2.0, (recorded_secs, call_secs, gap_secs)
    assert sorted(e.subject for e in closed) == [f"call:{call_id}"] * 2
    assert {s.sha256 for s in segments} == {json.loads(e.data)["sha256"] for e in closed}
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.ok, report.broken


async def test_snapshots_and_offers_of_hidden_calls_do_not_exist_for_others(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """The internal-security channel over HTTP: its snapshots are nobody else's."""
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    security = await another_browser(client)
    await sign_in(security, await add_account(client, "sec", "internal_security"), clock)
    peers: list[MediaPeer] = []
    try:
        started = await start_call(client, channel="internal_security")
        call_id = started["call_id"]
        async with citizen(client, started["token"]) as phone, console(security) as desk:
            peers.append(await citizen_peer(answer_via(phone)))
            await wait_until(
                lambda: hub.stats(call_id)["citizen"]["video_received"] > 10,
                MEDIA_TIMEOUT_SECS,
                "video at the server",
            )
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            snap = await desk.call("snapshot", {"call_id": call_id})
            assert snap["ok"], snap
            assert (await security.get(snap["url"])).status == 200
            for outsider in (operator,):
                response = await outsider.get(snap["url"])
                assert response.status == 404
                assert (await response.json())["error"]["code"] == "call_not_found"
    finally:
        for peer in peers:
            await peer.close()
        await security.close()


async def test_a_bug_in_this_nodes_hub_is_media_failed_and_a_bad_offer_invalid_sdp(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The node's own hub, in process: an exception deep in aiortc's handling (an offer with no
    ``a=setup`` passes our checks, then aiortc fails on it) used to come back as "Unusable
    offer" (400) when it was a ValueError. Now it is a bug: logged with its traceback at the
    media node, and the caller's ``media_offer`` is refused ``media_failed`` (502). A genuinely
    unusable offer is still ``invalid_sdp``."""
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    started = await start_call(client)

    refusals: list[dict[str, str]] = []
    async with citizen(client, started["token"]) as phone:
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
        assert not hub.has_session(started["call_id"])

        unusable = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        reply = await phone.call("media_offer", {"type": "offer", "sdp": unusable})
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_sdp", reply
        assert not hub.has_session(started["call_id"])
        # A whole offer then gets media on the same call: nothing of the failure stayed behind.
        peer = await citizen_peer(answer_via(phone))
        try:
            await wait_until(
                lambda: hub.stats(started["call_id"])["citizen"]["video_received"] > 10,
                MEDIA_TIMEOUT_SECS,
                "video after the failures",
            )
        finally:
            await peer.close()


async def test_a_flood_of_candidates_is_refused_past_the_limit(client: Client) -> None:
    """A browser trickles a handful of candidates; a page sending hundreds would make the media
    node probe every address it names. Past the limit each is refused, and the call goes on."""
    started = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        peer = await citizen_peer(answer_via(phone))
        try:
            replies = [
                await phone.call(
                    "media_ice",
                    {
                        "candidate": f"candidate:{n} 1 udp 2122260223 127.0.0.1 {40000 + n} "
                        "typ host",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    },
                )
                for n in range(MAX_CANDIDATES_PER_PEER + 2)
            ]
            # The offer's own candidates count too: together, at most the limit.
            allowed = MAX_CANDIDATES_PER_PEER - count_candidates(peer.pc.localDescription.sdp)
            assert all(r["ok"] for r in replies[:allowed])
            assert {r["error"]["code"] for r in replies[allowed:]} == {"invalid_candidate"}
            assert (await phone.call("resume", {}))["call"]["state"] == "queued"
        finally:
            await peer.close()
