"""The media of a silent monitor and of barge-in (issue 13, item 2), with real aiortc peers on a
real hub: the monitor receives the caller's video and both voices (the caller's, and the
operator's on a second audio line) while caller and operator keep theirs; its microphone
reaches nobody until it barges in, then the caller's and the operator's second audio lines. No
frame is decoded on the way (the counters are the forwarders')."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.hub import MediaHub
from media.ice import restrict_gathering, rtc_configuration
from server.core.clock import SystemClock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment
from tests.media_peers import LOOPBACK, CounterVideoTrack, ToneAudioTrack, wait_until

# One pass: the media hub alone, no store.
pytestmark = pytest.mark.one_pass

CALL = "call-monitor"
TIMEOUT_SECS = 20.0


class Lines:
    """A peer connection and the frames received on each of its transceivers, in order."""

    def __init__(self, pc: RTCPeerConnection, sending: list[MediaStreamTrack]) -> None:
        self.pc = pc
        self.sending = sending
        self.frames: dict[int, int] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def count(self, index: int) -> int:
        return self.frames.get(index, 0)

    def watch(self) -> None:
        for index, transceiver in enumerate(self.pc.getTransceivers()):
            self.tasks.append(asyncio.create_task(self._consume(index, transceiver.receiver.track)))

    async def _consume(self, index: int, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames[index] = self.frames.get(index, 0) + 1

    async def close(self) -> None:
        await self.pc.close()
        for track in self.sending:
            track.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _peer(setup: list[tuple[str, MediaStreamTrack | None, str]], answer_for) -> Lines:  # type: ignore[no-untyped-def]
    # Max-bundle, as a browser bundles (aiortc's default leaves a later second audio line on
    # a transport that never connects).
    pc = RTCPeerConnection(rtc_configuration([]))
    sending: list[MediaStreamTrack] = []
    for kind, track, direction in setup:
        if track is not None:
            sending.append(track)
            pc.addTransceiver(track, direction=direction)
        else:
            pc.addTransceiver(kind, direction=direction)
    lines = Lines(pc, sending)
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await answer_for(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    lines.watch()
    return lines


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[MediaHub]:
    async def stored(segment: ClosedSegment) -> None:
        del segment

    media_hub = MediaHub(
        recordings_dir=tmp_path / "recordings",
        ice_servers=[],
        media_addresses=LOOPBACK,
        peer_networks=["127.0.0.0/8"],
        on_segment_closed=stored,
        clock=SystemClock(),
    )
    yield media_hub
    await media_hub.close()


async def test_a_monitor_sees_and_hears_and_speaks_only_when_it_barges_in(
    hub: MediaHub,
) -> None:
    opened: list[Lines] = []
    try:
        # The caller: microphone, camera, and a second audio line for a supervisor's voice.
        citizen = await _peer(
            [
                ("audio", ToneAudioTrack(440.0), "sendrecv"),
                ("video", CounterVideoTrack(), "sendrecv"),
                ("audio", None, "recvonly"),
            ],
            lambda sdp: hub.citizen_offer(CALL, sdp),
        )
        opened.append(citizen)
        # The operator: the caller's video, both ways audio, a second line for a supervisor.
        operator = await _peer(
            [
                ("video", None, "recvonly"),
                ("audio", ToneAudioTrack(880.0), "sendrecv"),
                ("audio", None, "recvonly"),
            ],
            lambda sdp: hub.subscriber_offer(CALL, "staff-1", sdp, talk=True),
        )
        opened.append(operator)
        # The monitor: the caller's video, the caller's voice (its microphone on the same
        # line, forwarded only in barge-in), the operator's voice on a second line.
        monitor = await _peer(
            [
                ("video", None, "recvonly"),
                ("audio", ToneAudioTrack(660.0), "sendrecv"),
                ("audio", None, "recvonly"),
            ],
            lambda sdp: hub.subscriber_offer(CALL, "staff-2", sdp, talk=False),
        )
        opened.append(monitor)

        await wait_until(
            lambda: monitor.count(0) > 30 and monitor.count(1) > 25 and monitor.count(2) > 25,
            TIMEOUT_SECS,
            "the caller's video and voice and the operator's voice at the monitor",
        )
        before = (operator.count(0), citizen.count(0))
        await wait_until(
            lambda: operator.count(0) > before[0] + 15 and citizen.count(0) > before[1] + 15,
            TIMEOUT_SECS,
            "the caller's video at the operator, the operator's voice at the caller",
        )
        stats = hub.stats(CALL)
        assert stats["subscribers"]["staff-2"]["audio_received"] > 0  # its microphone arrives
        # ... and goes nowhere: the monitor is silent.
        assert citizen.count(2) == 0 and operator.count(2) == 0
        assert stats["citizen"]["supervisor_audio_forwarded"] == 0

        hub.set_barging(CALL, "staff-2", True)
        await wait_until(
            lambda: citizen.count(2) > 25 and operator.count(2) > 25,
            TIMEOUT_SECS,
            "the supervisor's voice at the caller and the operator",
        )
        # The operator still talks to the caller on the first line.
        still = citizen.count(0)
        await wait_until(lambda: citizen.count(0) > still + 10, TIMEOUT_SECS, "operator's voice")

        hub.set_barging(CALL, "staff-2", False)
        await asyncio.sleep(0.5)  # frames already on their way
        stopped = (citizen.count(2), operator.count(2))
        await wait_until(lambda: citizen.count(0) > still + 40, TIMEOUT_SECS, "more of the call")
        assert (citizen.count(2), operator.count(2)) == stopped

        with pytest.raises(AppError) as refused:
            hub.set_barging(CALL, "staff-1", True)  # the operator talks already
        assert refused.value.code is ErrorCode.NO_MEDIA
    finally:
        await asyncio.gather(*(lines.close() for lines in opened))
