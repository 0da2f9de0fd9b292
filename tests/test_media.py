"""The media hub with real aiortc peers on loopback: forwarding, keyframes, recording, ICE."""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from aioice import Connection
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import RTCIceGatherer

from media import ice, passthrough
from media.hub import MediaHub
from media.passthrough import EncodedFrame, PacketTrack, request_keyframe
from media.rpc import HubHandler
from media.session import KEYFRAME_MIN_INTERVAL_SECS, KEYFRAME_RETRY_SECS
from server.core.clock import FrozenClock, SystemClock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import CitizenOffer, ClosedSegment, Snapshot, serve
from tests.media_peers import (
    HEIGHT,
    LOOPBACK,
    WIDTH,
    CounterVideoTrack,
    MediaPeer,
    PreEncodedVideoTrack,
    Received,
    ToneAudioTrack,
    connect_citizen,
    connect_subscriber,
    wait_until,
)
from tests.sockets import without_dtls_setup

# One pass: the media hub alone, no store.
pytestmark = pytest.mark.one_pass

CALL = "call-1"
FRAMES_TIMEOUT_SECS = 10.0


class Segments:
    """Collects what the hub hands to on_segment_closed."""

    def __init__(self) -> None:
        self.closed: list[ClosedSegment] = []

    async def __call__(self, segment: ClosedSegment) -> None:
        self.closed.append(segment)


@pytest.fixture
def segments() -> Segments:
    return Segments()


@pytest.fixture
async def hub(tmp_path: Path, segments: Segments) -> AsyncIterator[MediaHub]:
    media_hub = MediaHub(
        recordings_dir=tmp_path / "recordings",
        ice_servers=[],
        media_addresses=LOOPBACK,
        peer_networks=["127.0.0.0/8"],
        on_segment_closed=segments,
        clock=SystemClock(),
    )
    yield media_hub
    await media_hub.close()


@pytest.fixture
async def frozen_hub(
    tmp_path: Path, segments: Segments, clock: FrozenClock
) -> AsyncIterator[MediaHub]:
    """A hub whose keyframe limit and retries (and segment times) run on ``clock``."""
    media_hub = MediaHub(
        recordings_dir=tmp_path / "recordings",
        ice_servers=[],
        media_addresses=LOOPBACK,
        peer_networks=["127.0.0.0/8"],
        on_segment_closed=segments,
        clock=clock,
    )
    yield media_hub
    await media_hub.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[MediaPeer]]:
    """Test peers to close at teardown, whatever the test's outcome."""
    opened: list[MediaPeer] = []
    yield opened
    await asyncio.gather(*(peer.close() for peer in opened))


def _udp_addresses_of_this_process() -> set[str]:
    """Local addresses of this process's UDP sockets (from /proc: no psutil)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    addresses = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    host = fields[1].split(":")[0]
                    if len(host) == 8:
                        host = ".".join(str(b) for b in reversed(bytes.fromhex(host)))
                    addresses.add(host)
    return addresses


def _video_packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size]


def _check_segment(segment: ClosedSegment) -> float:
    """The file plays, has video and both audio tracks, matches its counts and hash;
    returns its duration in seconds."""
    data = segment.path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == segment.sha256
    assert len(data) == segment.size_bytes
    with av.open(str(segment.path)) as container:
        kinds = [s.type for s in container.streams]
        assert kinds == ["video", "audio", "audio"]
        assert container.streams.video[0].codec_context.name == "vp8"
        counts = [0, 0, 0]
        first_video_key = None
        for packet in container.demux():
            if packet.size:
                counts[packet.stream.index] += 1
                if packet.stream.index == 0 and first_video_key is None:
                    first_video_key = packet.is_keyframe
        assert container.duration is not None
        duration_secs = container.duration / 1_000_000
    assert first_video_key, "a segment must start on a keyframe"
    assert counts == [segment.video_frames, segment.audio_frames, segment.operator_audio_frames]
    return duration_secs


# -- guards: fail loudly when an upgrade changes what the adapters rely on --------------------


def test_aiortc_guard() -> None:
    assert passthrough.aiortc_internals_problems() == []


def test_aioice_guard() -> None:
    gather = inspect.getsource(Connection.gather_candidates)
    assert "get_host_addresses(" in gather
    assert "self.get_component_candidates(component=component, addresses=addresses)" in gather
    params = list(inspect.signature(Connection.get_component_candidates).parameters)
    assert params == ["self", "component", "addresses", "timeout"]
    assert "self._connection = Connection(" in inspect.getsource(RTCIceGatherer.__init__)


def test_ice_configuration_is_explicit() -> None:
    assert ice.rtc_configuration([]).iceServers == []
    config = ice.rtc_configuration([{"urls": "stun:stun.example.org:3478"}])
    assert config.iceServers is not None
    assert [s.urls for s in config.iceServers] == ["stun:stun.example.org:3478"]


async def test_gathering_uses_only_media_addresses() -> None:
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    try:
        pc.addTransceiver("audio")
        ice.restrict_gathering(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        lines = [x for x in pc.localDescription.sdp.splitlines() if x.startswith("a=candidate")]
        assert lines
        assert {line.split()[4] for line in lines} == {"127.0.0.1"}
    finally:
        await pc.close()


def test_sdp_candidates_outside_peer_networks_are_removed() -> None:
    networks = ice.parse_networks(["10.0.0.0/8"])
    sdp = (
        "v=0\r\na=candidate:1 1 udp 2122260223 10.1.2.3 5000 typ host\r\n"
        "a=candidate:2 1 udp 2122260223 192.0.2.7 5000 typ host\r\n"
        "a=candidate:3 1 udp 2122260223 abc.local 5000 typ host\r\n"
    )
    kept = ice.filter_sdp_candidates(sdp, networks)
    assert "10.1.2.3" in kept
    assert "192.0.2.7" not in kept
    assert "abc.local" not in kept


def test_without_peer_networks_only_public_addresses_are_probed() -> None:
    """Unset, a caller cannot make the node send STUN checks into the centre's own network."""
    for inside in ("127.0.0.1", "10.0.0.5", "192.168.1.9", "172.16.0.1", "169.254.1.1", "::1",
                   "fd00::1", "100.64.0.1", "0.0.0.0", "224.0.0.1"):  # fmt: skip
        assert not ice.address_allowed(inside, []), inside
    assert ice.address_allowed("8.8.8.8", [])
    assert ice.address_allowed("2a00:1450:4001::1", [])
    assert ice.address_allowed("10.0.0.5", ice.parse_networks(["10.0.0.0/8"]))  # where named


async def test_an_offer_with_more_than_50_candidates_is_refused(hub: MediaHub) -> None:
    """Candidates in the offer count as trickled ones do: each costs the node STUN checks."""
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    try:
        pc.addTransceiver("video", direction="recvonly")
        ice.restrict_gathering(pc, LOOPBACK)
        await pc.setLocalDescription(await pc.createOffer())
        lines = pc.localDescription.sdp.rstrip("\r\n").split("\r\n")
        extra = [f"a=candidate:{n} 1 udp 2122260223 127.0.0.{n} {40000 + n} typ host"
                 for n in range(1, 52)]  # fmt: skip
        with pytest.raises(AppError, match="More than 50 candidates") as refused:
            await hub.citizen_offer(CALL, "\r\n".join(lines + extra) + "\r\n")
        assert refused.value.code is ErrorCode.INVALID_SDP
        assert not hub.has_session(CALL)
    finally:
        await pc.close()


# -- passthrough units ------------------------------------------------------------------------


def _frame(n: int, *, keyframe: bool) -> EncodedFrame:
    return EncodedFrame(
        kind="video",
        codec="VP8",
        data=bytes([0 if keyframe else 1]) + bytes(9),
        timestamp=n * 3000,
        clock_rate=90_000,
        keyframe=keyframe,
        arrival=n / 30,
        source=1,
    )


async def test_stalled_subscriber_queue_is_bounded_and_drops_to_a_keyframe() -> None:
    asked: list[float] = []
    track = PacketTrack("video", max_queue=10, on_keyframe_needed=lambda: asked.append(1.0))
    try:
        track.push(_frame(0, keyframe=False))  # before any keyframe: useless, dropped
        track.push(_frame(1, keyframe=True))
        for n in range(2, 1000):
            track.push(_frame(n, keyframe=False))
            assert len(track._frames) <= 10
        assert track.waiting_for_keyframe
        assert asked
        track.push(_frame(1000, keyframe=True))
        packet = await track.recv()
        assert (bytes(packet)[0] & 1) == 0, "after overflow the first frame out is a keyframe"
        assert packet.time_base == fractions.Fraction(1, 90_000)
    finally:
        track.stop()


def test_vp8_keyframe_bit() -> None:
    header = b"\x10\x02\x00\x9d\x01\x2a\x80\x02\xe0\x01"  # 640x480
    assert passthrough.is_vp8_keyframe(header)
    assert not passthrough.is_vp8_keyframe(b"\x11\x02\x00" + header[3:])
    # The bit alone is not enough: a frame missing its first packet may have it clear.
    assert not passthrough.is_vp8_keyframe(b"\x10\x02\x00\x00\x00\x00\x00\x00\x00\x00")
    assert not passthrough.is_vp8_keyframe(b"\x10\x02\x00\x9d\x01\x2a")  # truncated
    assert not passthrough.is_vp8_keyframe(b"")


# -- real peers ---------------------------------------------------------------------------------


async def test_live_call_forwards_records_and_snapshots(
    hub: MediaHub, peers: list[MediaPeer], segments: Segments
) -> None:
    call_started = time.monotonic()
    citizen = await connect_citizen(hub, CALL)
    peers.append(citizen)
    operator = await connect_subscriber(hub, CALL, "operator-1", talk=True)
    peers.append(operator)

    await wait_until(
        lambda: (
            operator.received.video_frames >= 60
            and operator.received.audio_frames >= 50
            and citizen.received.audio_frames >= 50
        ),
        FRAMES_TIMEOUT_SECS,
        "video and audio at the operator, the operator's audio at the citizen",
    )
    assert operator.received.video_size == (WIDTH, HEIGHT)
    # Every UDP socket of this process (hub and test peers) is on loopback.
    assert _udp_addresses_of_this_process() == {"127.0.0.1"}

    jpeg = await hub.snapshot(CALL)
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert image.shape == (HEIGHT, WIDTH, 3)

    stats = hub.stats(CALL)
    assert stats["subscribers"]["operator-1"]["talking"]
    assert stats["subscribers"]["operator-1"]["video_forwarded"] > 0
    assert stats["citizen"]["operator_audio_forwarded"] > 0

    closed = await hub.end_call(CALL)
    call_secs = time.monotonic() - call_started
    assert not hub.has_session(CALL)
    assert closed == segments.closed
    assert [s.segment for s in closed] == [1]
    segment = closed[0]
    assert segment.path.name == "segment-0001.mkv"
    assert segment.path.parent.name == CALL
    assert segment.started_at.tzinfo is not None
    duration_secs = _check_segment(segment)
    assert abs(duration_secs - call_secs) <= 2.0

    recording = stats["recording"]
    # Frames in the file == frames received (the stats were read before the last frames).
    assert recording["video_before_keyframe"] == 0
    assert recording["lost_disk_behind"] == 0
    assert segment.video_frames >= stats["citizen"]["video_received"]
    assert segment.video_frames == len(_video_packets(segment.path))
    assert segment.operator_audio_frames > 0


async def test_frames_in_file_equal_frames_received(hub: MediaHub, peers: list[MediaPeer]) -> None:
    citizen = await connect_citizen(hub, CALL)
    peers.append(citizen)
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["video_received"] >= 45, FRAMES_TIMEOUT_SECS, "video"
    )
    await citizen.close()  # no frame arrives after this, so the counts are final
    await wait_until(lambda: not hub.stats(CALL)["citizen"]["connected"], 5.0, "peer closed")
    received = hub.stats(CALL)["citizen"]
    closed = await hub.end_call(CALL)
    assert sum(s.video_frames for s in closed) == received["video_received"]
    assert sum(s.audio_frames for s in closed) == received["audio_received"]
    assert sum(len(_video_packets(s.path)) for s in closed) == received["video_received"]


async def test_recorded_frames_are_byte_identical_to_the_frames_sent(
    hub: MediaHub, peers: list[MediaPeer]
) -> None:
    video = PreEncodedVideoTrack()
    citizen = await connect_citizen(hub, CALL, video)
    peers.append(citizen)
    await wait_until(lambda: len(video.sent_hashes) >= 45, FRAMES_TIMEOUT_SECS, "frames sent")
    await citizen.close()
    await wait_until(lambda: not hub.stats(CALL)["citizen"]["connected"], 5.0, "peer closed")
    closed = await hub.end_call(CALL)
    assert len(closed) == 1
    recorded = [hashlib.sha256(bytes(p)).hexdigest() for p in _video_packets(closed[0].path)]
    # The last frames sent may still have been in flight when the peer closed.
    assert len(video.sent_hashes) - 3 <= len(recorded) <= len(video.sent_hashes)
    assert recorded == video.sent_hashes[: len(recorded)]


async def test_a_citizen_without_camera_is_heard_and_recorded(
    hub: MediaHub, peers: list[MediaPeer]
) -> None:
    citizen = await connect_citizen(hub, CALL, camera=False)
    peers.append(citizen)
    operator = await connect_subscriber(hub, CALL, "operator-1", talk=True)
    peers.append(operator)
    await wait_until(
        lambda: operator.received.audio_frames >= 25 and citizen.received.audio_frames >= 25,
        FRAMES_TIMEOUT_SECS,
        "audio both ways",
    )
    assert operator.received.video_frames == 0
    with pytest.raises(AppError) as refused:
        await hub.snapshot(CALL)
    assert refused.value.code is ErrorCode.NO_VIDEO
    closed = await hub.end_call(CALL)
    assert len(closed) == 1
    with av.open(str(closed[0].path)) as container:
        assert [s.type for s in container.streams] == ["audio", "audio"]
    assert closed[0].audio_frames > 0
    assert closed[0].operator_audio_frames > 0


async def test_a_subscribers_picture_loss_is_forwarded_to_the_citizen(
    frozen_hub: MediaHub, peers: list[MediaPeer], clock: FrozenClock
) -> None:
    hub = frozen_hub
    citizen = await connect_citizen(hub, CALL)
    peers.append(citizen)
    monitor = await connect_subscriber(hub, CALL, "supervisor-1", talk=False)
    peers.append(monitor)
    await wait_until(lambda: monitor.received.video_frames >= 10, FRAMES_TIMEOUT_SECS, "video")
    # The monitor's browser reports picture loss on the hub's video sender (RTCP PLI).
    receiver = next(r for r in monitor.pc.getReceivers() if r.track.kind == "video")
    clock.advance(KEYFRAME_MIN_INTERVAL_SECS)  # past the hub's own PLI rate limit
    keyframes = hub.stats(CALL)["citizen"]["keyframes_received"]
    await request_keyframe(receiver)
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["keyframes_received"] > keyframes,
        2.0,
        "a keyframe from the citizen",
    )


async def test_an_open_segment_is_readable_before_it_is_closed(
    hub: MediaHub, peers: list[MediaPeer], tmp_path: Path
) -> None:
    """What a node crash leaves: the open file plays up to its last second or so."""
    citizen = await connect_citizen(hub, CALL)
    peers.append(citizen)
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["video_received"] >= 90, FRAMES_TIMEOUT_SECS, "video"
    )
    received = hub.stats(CALL)["citizen"]["video_received"]
    path = tmp_path / "recordings" / CALL / "segment-0001.mkv"
    crashed = tmp_path / "crashed.mkv"
    crashed.write_bytes(path.read_bytes())  # a copy: as the disk holds it now
    readable = 0
    with av.open(str(crashed)) as container:
        try:
            for packet in container.demux(video=0):
                readable += 1 if packet.size else 0
        except av.error.InvalidDataError:
            pass  # the cluster being written is cut short
    assert readable >= received - 45  # at most ~1.5 s lost (clusters close every second)


async def test_replacing_the_citizen_peer_starts_a_new_segment(
    hub: MediaHub, peers: list[MediaPeer], segments: Segments
) -> None:
    first = await connect_citizen(hub, CALL)
    peers.append(first)
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["video_received"] >= 30, FRAMES_TIMEOUT_SECS, "video"
    )
    second = await connect_citizen(hub, CALL)  # the page reloaded
    peers.append(second)
    await wait_until(lambda: len(segments.closed) == 1, 5.0, "first segment closed")
    await wait_until(
        lambda: (
            hub.stats(CALL)["recording"]["queued"] > 0
            and hub.stats(CALL)["citizen"]["video_received"] >= 60
        ),
        FRAMES_TIMEOUT_SECS,
        "video from the new peer",
    )
    closed = await hub.end_call(CALL)
    assert [s.segment for s in closed] == [1, 2]
    assert [s.path.name for s in closed] == ["segment-0001.mkv", "segment-0002.mkv"]
    for segment in closed:
        _check_segment(segment)
        assert segment.video_frames > 0


async def test_segments_rotate_on_a_keyframe(
    tmp_path: Path, peers: list[MediaPeer], segments: Segments
) -> None:
    clock = FrozenClock(datetime.now(UTC))
    hub = MediaHub(
        recordings_dir=tmp_path,
        ice_servers=[],
        media_addresses=LOOPBACK,
        peer_networks=["127.0.0.0/8"],
        on_segment_closed=segments,
        segment_secs=5.0,
        clock=clock,
    )
    try:
        citizen = await connect_citizen(hub, CALL)
        peers.append(citizen)
        await wait_until(
            lambda: hub.stats(CALL)["citizen"]["video_received"] >= 15, FRAMES_TIMEOUT_SECS, "video"
        )
        keyframes = hub.stats(CALL)["citizen"]["keyframes_received"]
        clock.advance(5.0)  # the segment is due: the hub asks for a keyframe and cuts there
        await wait_until(lambda: len(segments.closed) == 1, 5.0, "rotation")
        assert hub.stats(CALL)["citizen"]["keyframes_received"] > keyframes
        received = hub.stats(CALL)["citizen"]["video_received"]
        await wait_until(
            lambda: hub.stats(CALL)["citizen"]["video_received"] >= received + 15,
            FRAMES_TIMEOUT_SECS,
            "video in the second segment",
        )
        clock.advance(1.0)
        closed = await hub.end_call(CALL)
        assert [s.segment for s in closed] == [1, 2]
        assert (closed[0].ended_at - closed[0].started_at).total_seconds() == 5.0
        for segment in closed:
            _check_segment(segment)
    finally:
        await hub.close()


LATE_JOIN_SECS = 10.0


async def test_late_subscriber_sees_a_picture_quickly(
    hub: MediaHub, peers: list[MediaPeer]
) -> None:
    """Issue 6: an operator joining 10 s into a call sees a frame within 0.5 s."""
    citizen = await connect_citizen(hub, CALL)
    started = time.monotonic()
    peers.append(citizen)
    # aiortc's encoder (like Chrome's) makes keyframes only when asked after the first one.
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["video_received"] >= 60, FRAMES_TIMEOUT_SECS, "video"
    )
    await asyncio.sleep(max(0.0, LATE_JOIN_SECS - (time.monotonic() - started)))
    keyframes = hub.stats(CALL)["citizen"]["keyframes_received"]
    joined = time.monotonic()
    monitor = await connect_subscriber(hub, CALL, "supervisor-1", talk=False)
    peers.append(monitor)
    negotiated = time.monotonic()
    await wait_until(lambda: monitor.received.video_frames > 0, 2.0, "the monitor's first frame")
    assert monitor.received.first_video_at is not None
    first_frame_secs = monitor.received.first_video_at - negotiated
    logging.getLogger(__name__).info(
        "late joiner: offer to first frame %.3f s", monitor.received.first_video_at - joined
    )
    assert first_frame_secs <= 0.5
    assert hub.stats(CALL)["citizen"]["keyframes_received"] > keyframes
    assert not hub.stats(CALL)["subscribers"]["supervisor-1"]["talk"]

    await hub.remove_subscriber(CALL, "supervisor-1")
    assert hub.stats(CALL)["subscribers"] == {}


async def test_trickled_candidates_during_the_offer_are_used(
    hub: MediaHub, peers: list[MediaPeer]
) -> None:
    """A browser's offer carries no candidates; they follow at once, racing the answer."""
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    peer = MediaPeer(pc, Received(), [ToneAudioTrack(440.0), CounterVideoTrack()])
    peers.append(peer)
    for track in peer.sending:
        pc.addTrack(track)
    ice.restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.splitlines()
    candidates = [x.removeprefix("a=") for x in lines if x.startswith("a=candidate:")]
    trickled = ("a=candidate:", "a=end-of-candidates")  # a browser's offer holds neither
    bare_offer = "\r\n".join(x for x in lines if not x.startswith(trickled)) + "\r\n"
    assert candidates

    async def trickle() -> None:
        for candidate in candidates:
            await hub.add_candidate(CALL, "citizen", candidate, "0", 0)
        await hub.add_candidate(CALL, "citizen", "", "0", 0)

    answer, _ = await asyncio.gather(hub.citizen_offer(CALL, bare_offer), trickle())
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await wait_until(
        lambda: hub.stats(CALL)["citizen"]["video_received"] >= 10, FRAMES_TIMEOUT_SECS, "video"
    )


async def test_candidates_outside_peer_networks_are_dropped(
    hub: MediaHub, peers: list[MediaPeer], caplog: pytest.LogCaptureFixture
) -> None:
    citizen = await connect_citizen(hub, CALL)
    peers.append(citizen)
    caplog.set_level(logging.INFO, logger="media.session")
    outside = "candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host"
    await hub.add_candidate(CALL, "citizen", outside, "0", 0)
    assert any("outside peer networks" in r.getMessage() for r in caplog.records)
    assert not any("192.0.2.7" in r.getMessage() for r in caplog.records)  # a caller's address
    caplog.clear()
    inside = "candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host"
    await hub.add_candidate(CALL, "citizen", inside, "0", 0)
    await hub.add_candidate(CALL, "citizen", "", "0", 0)  # end of candidates: ignored
    assert not any("outside peer networks" in r.getMessage() for r in caplog.records)
    with pytest.raises(AppError, match="not an ICE candidate") as refused:
        await hub.add_candidate(CALL, "citizen", "candidate:garbage", "0", 0)
    assert refused.value.code is ErrorCode.INVALID_CANDIDATE


async def test_bad_requests(hub: MediaHub) -> None:
    """Each refusal on purpose is an AppError with its own code: nothing is left to guess
    from an exception's class."""
    refusals = [
        (hub.snapshot("no-such-call"), ErrorCode.NO_VIDEO),
        (hub.subscriber_offer("no-such-call", "op", "v=0\r\n", talk=True), ErrorCode.NO_MEDIA),
        (hub.add_candidate("no-such-call", "op", "candidate:x", None, None), ErrorCode.NO_MEDIA),
        (hub.citizen_offer(CALL, "this is not SDP"), ErrorCode.INVALID_SDP),
        (hub.citizen_offer(CALL, "v=0\r\nm=video abc\r\n"), ErrorCode.INVALID_SDP),
    ]
    for refused_call, code in refusals:
        with pytest.raises(AppError) as refused:
            await refused_call
        assert refused.value.code is code, refused.value.message
    with pytest.raises(AppError) as refused:
        hub.stats("no-such-call")
    assert refused.value.code is ErrorCode.NO_MEDIA
    assert not hub.has_session(CALL), "a refused first offer leaves no session behind"
    assert await hub.end_call("no-such-call") == []


async def test_an_offer_without_vp8_is_refused_as_unusable(
    hub: MediaHub, peers: list[MediaPeer]
) -> None:
    """A real browser offer, minus its VP8: refused on purpose (INVALID_SDP), no session."""
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    peers.append(MediaPeer(pc, Received(), []))
    pc.addTransceiver("video", direction="recvonly")
    ice.restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.splitlines()
    vp8 = {line.split()[0].split(":")[1] for line in lines if "VP8/90000" in line}
    no_vp8 = [x for x in lines if not any(f":{pt} " in x or x.endswith(f":{pt}") for pt in vp8)]
    m_line = next(i for i, x in enumerate(no_vp8) if x.startswith("m=video"))
    fields = no_vp8[m_line].split()
    no_vp8[m_line] = " ".join(fields[:3] + [pt for pt in fields[3:] if pt not in vp8])
    with pytest.raises(AppError, match="VP8") as refused:
        await hub.citizen_offer(CALL, "\r\n".join(no_vp8) + "\r\n")
    assert refused.value.code is ErrorCode.INVALID_SDP
    assert not hub.has_session(CALL)


async def test_keyframe_requests_are_limited_on_the_clock(
    frozen_hub: MediaHub, peers: list[MediaPeer], clock: FrozenClock
) -> None:
    """One PLI per KEYFRAME_MIN_INTERVAL_SECS of the hub's clock, however many ask; a waiter
    is asked for again every KEYFRAME_RETRY_SECS. The clock moves, not the test's time. The
    PLIs are read from the session's own counters (when each was sent)."""
    sent: list[float] = []

    def plis() -> list[float]:
        citizen = frozen_hub.stats(CALL)["citizen"]
        if citizen["plis_sent"] > len(sent):
            sent.append(citizen["last_pli_at"])
        assert citizen["plis_sent"] == len(sent), "one PLI at a time is read"
        return sent

    citizen = await connect_citizen(frozen_hub, CALL)
    peers.append(citizen)
    await wait_until(
        lambda: frozen_hub.stats(CALL)["citizen"]["video_received"] >= 10,
        FRAMES_TIMEOUT_SECS,
        "video",
    )
    session = frozen_hub._sessions[CALL]
    assert plis() == [0.0]  # the recording asked for its first keyframe
    for _ in range(5):
        session.request_keyframe()
    assert plis() == [0.0], "within the interval every request is served by the PLI in flight"
    clock.advance(KEYFRAME_MIN_INTERVAL_SECS)
    session.request_keyframe()
    session.request_keyframe()
    assert plis() == [0.0, KEYFRAME_MIN_INTERVAL_SECS]
    # A snapshot waits for a fresh keyframe: the retry loop asks again when it is due.
    waiting = asyncio.ensure_future(frozen_hub.snapshot(CALL))
    await wait_until(lambda: bool(session._keyframe_waiters), 5.0, "the snapshot to wait")
    clock.advance(KEYFRAME_RETRY_SECS - KEYFRAME_MIN_INTERVAL_SECS)
    await wait_until(lambda: len(plis()) == 3, 5.0, "the retry loop's PLI")
    assert sent == [0.0, KEYFRAME_MIN_INTERVAL_SECS, KEYFRAME_RETRY_SECS]
    assert (await waiting)[:2] == b"\xff\xd8"


async def test_a_bug_in_the_media_node_is_media_failed_never_invalid(
    hub: MediaHub,
    peers: list[MediaPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception deep in aiortc's handling (an offer with no ``a=setup`` passes our checks,
    then aiortc fails on it) is a bug: logged with its traceback at the media node and answered
    MEDIA_FAILED, in process and on the wire. A request that fails its model is INVALID."""

    pc = RTCPeerConnection(ice.rtc_configuration([]))  # a good offer, which the bug meets
    peer = MediaPeer(pc, Received(), [ToneAudioTrack(440.0), CounterVideoTrack()])
    peers.append(peer)
    for track in peer.sending:
        pc.addTrack(track)
    ice.restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    offer = without_dtls_setup(pc.localDescription.sdp)
    handler = HubHandler(hub)
    with caplog.at_level(logging.ERROR, logger="media.rpc"):
        with pytest.raises(AppError) as failed:
            await handler(CitizenOffer(call_id=CALL, sdp=offer))
        assert failed.value.code is ErrorCode.MEDIA_FAILED
        wire = await serve(handler, "citizen_offer", {"call_id": CALL, "sdp": offer})
    assert wire["ok"] is False and wire["code"] == "media_failed", wire
    bugs = [r for r in caplog.records if r.name == "media.rpc" and r.levelno == logging.ERROR]
    assert len(bugs) == 2
    assert all(r.exc_info and isinstance(r.exc_info[1], AttributeError) for r in bugs)
    assert not hub.has_session(CALL)
    malformed = await serve(handler, "snapshot", {"call_id": CALL, "extra": 1})
    assert malformed["ok"] is False and malformed["code"] == "invalid", malformed
    unknown = await serve(handler, "reboot", {"call_id": CALL})
    assert unknown["code"] == "invalid"
    refused = await serve(handler, Snapshot.event, {"call_id": CALL})
    assert refused["code"] == "no_video"
