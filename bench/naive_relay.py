"""The baseline media node: a relay the way aiortc's own server example builds one.

Every receiver decodes (aiortc's decoder thread), ``MediaRelay`` fans the decoded frames out,
every subscriber's sender re-encodes them, and ``MediaRecorder`` re-encodes to WebM on the event
loop (docs/media.md: "aiortc as it ships"). Same signaling shape as our hub, so the same harness
drives both.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder, MediaRelay

from media.ice import restrict_gathering


@dataclass(eq=False)
class _Call:
    path: Path
    relay: MediaRelay = field(default_factory=MediaRelay)
    citizen: RTCPeerConnection | None = None
    video: MediaStreamTrack | None = None
    audio: MediaStreamTrack | None = None
    recorder: MediaRecorder | None = None
    subscribers: dict[str, RTCPeerConnection] = field(default_factory=dict)


class NaiveRelay:
    """Decode + MediaRelay + re-encode per subscriber + MediaRecorder (WebM), per call."""

    def __init__(self, recordings_dir: Path, media_addresses: list[str]) -> None:
        self._dir = recordings_dir
        self._addresses = media_addresses
        self._calls: dict[str, _Call] = {}

    def _pc(self) -> RTCPeerConnection:
        # An explicit empty list: given None, aiortc adds a public STUN server.
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _answer(self, pc: RTCPeerConnection, sdp: str, call: _Call | None) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if call is not None and call.recorder is not None:
            await call.recorder.start()
        restrict_gathering(pc, self._addresses)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def citizen_offer(self, call_id: str, sdp: str) -> str:
        self._dir.mkdir(parents=True, exist_ok=True)
        call = _Call(self._dir / f"{call_id}.webm")
        self._calls[call_id] = call
        pc = self._pc()
        call.citizen = pc
        call.recorder = MediaRecorder(str(call.path))

        def on_track(track: MediaStreamTrack) -> None:
            # As the example does: the recorder and every viewer get a relay subscription.
            if track.kind == "video":
                call.video = track
            else:
                call.audio = track
            assert call.recorder is not None
            call.recorder.addTrack(call.relay.subscribe(track))

        pc.on("track", on_track)
        return await self._answer(pc, sdp, call)

    async def subscriber_offer(self, call_id: str, subscriber_id: str, sdp: str) -> str:
        call = self._calls[call_id]
        pc = self._pc()
        call.subscribers[subscriber_id] = pc
        # The offer's transceivers exist only after setRemoteDescription: add tracks to them.
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for transceiver in pc.getTransceivers():
            source = call.video if transceiver.kind == "video" else call.audio
            if source is not None:
                pc.addTrack(call.relay.subscribe(source))
        restrict_gathering(pc, self._addresses)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def end_call(self, call_id: str) -> dict[str, int]:
        """Close the call's peers and its recorder; the frames its file holds."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return {"video_recorded": 0, "audio_recorded": 0}
        peers = [p for p in (call.citizen, *call.subscribers.values()) if p is not None]
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        if call.recorder is not None:
            await call.recorder.stop()
        return await asyncio.to_thread(_count_packets, call.path)

    async def close(self) -> None:
        await asyncio.gather(*(self.end_call(c) for c in list(self._calls)))


def _count_packets(path: Path) -> dict[str, int]:
    counts = {"video_recorded": 0, "audio_recorded": 0}
    if not path.exists():
        return counts
    with contextlib.suppress(av.error.InvalidDataError), av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                counts[f"{packet.stream.type}_recorded"] += 1
    return counts
