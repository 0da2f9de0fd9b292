"""Synthetic aiortc peers for the media tests: a citizen's phone and an operator's console.

Real peers in-process on loopback, as aiortc's own tests do; they decode what they receive
(that is the browser's job, not the media node's).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import AUDIO_PTIME, VIDEO_TIME_BASE, MediaStreamError
from av import AudioFrame, VideoFrame

from media.hub import MediaHub
from media.ice import restrict_gathering

LOOPBACK = ["127.0.0.1"]
WIDTH, HEIGHT = 640, 480
POLL_SECS = 0.02


class CounterVideoTrack(VideoStreamTrack):
    """640x480 at 30 fps; the frame number is painted as the brightness of a top-left block."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        rows = np.arange(HEIGHT, dtype=np.uint16)[:, None]
        cols = np.arange(WIDTH, dtype=np.uint16)[None, :]
        self._base = ((rows + cols) % 256).astype(np.uint8)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        luma = np.roll(self._base, self.sent * 4, axis=1)
        luma[:32, :32] = (self.sent * 8) % 256
        image = np.stack([luma, luma, luma], axis=2)
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = pts
        frame.time_base = time_base
        self.sent += 1
        return frame


class PreEncodedVideoTrack(CounterVideoTrack):
    """Sends VP8 it encodes itself as ``av.Packet``s, so the test knows every byte sent.

    aiortc's sender only packetizes packets (as with ``MediaPlayer(decode=False)``); the hash
    of each frame sent lets a test compare it with what the recording holds.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sent_hashes: list[str] = []
        self._encoder = av.CodecContext.create("libvpx", "w")
        self._encoder.width = WIDTH
        self._encoder.height = HEIGHT
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.bit_rate = 500_000
        self._encoder.time_base = VIDEO_TIME_BASE
        self._encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}

    async def recv(self) -> av.Packet:  # type: ignore[override]
        frame = await super().recv()
        packets = await asyncio.to_thread(self._encode, frame)
        data = b"".join(bytes(p) for p in packets)
        packet = av.Packet(data)
        packet.pts = frame.pts
        packet.time_base = VIDEO_TIME_BASE
        self.sent_hashes.append(hashlib.sha256(data).hexdigest())
        return packet

    def _encode(self, frame: VideoFrame) -> list[av.Packet]:
        return list(self._encoder.encode(frame.reformat(format="yuv420p")))


class ToneAudioTrack(MediaStreamTrack):
    """A sine tone in 20 ms frames at 48 kHz, paced in real time."""

    kind = "audio"

    def __init__(self, frequency_hz: float) -> None:
        super().__init__()
        self._frequency_hz = frequency_hz
        self._start: float | None = None
        self._samples_sent = 0
        self.sent = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        rate = 48_000
        samples = int(AUDIO_PTIME * rate)
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._samples_sent / rate - time.monotonic()
            await asyncio.sleep(max(0.0, wait))
        t = (np.arange(samples) + self._samples_sent) / rate
        tone = (np.sin(2 * math.pi * self._frequency_hz * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = self._samples_sent
        frame.time_base = fractions.Fraction(1, rate)
        self._samples_sent += samples
        self.sent += 1
        return frame


@dataclass
class Received:
    """What a test peer got: counts, first-frame time and the last picture's size."""

    video_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None
    video_size: tuple[int, int] | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def consume(self, track: MediaStreamTrack) -> None:
        self.tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, VideoFrame):
                    self.video_frames += 1
                    self.video_size = (frame.width, frame.height)
                    if self.first_video_at is None:
                        self.first_video_at = time.monotonic()
                else:
                    self.audio_frames += 1


@dataclass
class MediaPeer:
    """A test peer connection and what it received; ``close()`` it in every test."""

    pc: RTCPeerConnection
    received: Received
    sending: list[MediaStreamTrack]

    async def close(self) -> None:
        await self.pc.close()
        for track in self.sending:
            track.stop()
        for task in self.received.tasks:
            task.cancel()
        await asyncio.gather(*self.received.tasks, return_exceptions=True)


async def _negotiate(
    pc: RTCPeerConnection, received: Received, answer_for: Callable[[str], Awaitable[str]]
) -> None:
    pc.on("track", received.consume)
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await answer_for(pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


async def connect_citizen(
    hub: MediaHub, call_id: str, video: CounterVideoTrack | None = None, *, camera: bool = True
) -> MediaPeer:
    """A phone: sendrecv audio (hears the operator) and sendrecv video, as the page offers;
    without ``camera`` (permission refused) audio only."""
    return await citizen_peer(lambda sdp: hub.citizen_offer(call_id, sdp), video, camera=camera)


async def citizen_peer(
    answer_for: Callable[[str], Awaitable[str]],
    video: CounterVideoTrack | None = None,
    *,
    camera: bool = True,
) -> MediaPeer:
    """The phone of ``connect_citizen``, answered by whoever ``answer_for`` asks (the hub
    itself, or the server over Socket.IO)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sending: list[MediaStreamTrack] = [ToneAudioTrack(440.0)]
    if camera:
        sending.append(video or CounterVideoTrack())
    for track in sending:
        pc.addTrack(track)
    peer = MediaPeer(pc, Received(), sending)
    try:
        await _negotiate(pc, peer.received, answer_for)
    except BaseException:
        await peer.close()
        raise
    return peer


async def connect_subscriber(
    hub: MediaHub, call_id: str, subscriber_id: str, *, talk: bool
) -> MediaPeer:
    """A console: receives video and audio; an operator (talk) sends a tone back."""
    return await subscriber_peer(
        lambda sdp: hub.subscriber_offer(call_id, subscriber_id, sdp, talk=talk), talk=talk
    )


async def subscriber_peer(answer_for: Callable[[str], Awaitable[str]], *, talk: bool) -> MediaPeer:
    """The console of ``connect_subscriber``, answered by ``answer_for``."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    sending: list[MediaStreamTrack] = []
    if talk:
        voice = ToneAudioTrack(880.0)
        pc.addTrack(voice)
        sending.append(voice)
    else:
        pc.addTransceiver("audio", direction="recvonly")
    peer = MediaPeer(pc, Received(), sending)
    try:
        await _negotiate(pc, peer.received, answer_for)
    except BaseException:
        await peer.close()
        raise
    return peer


async def wait_until(condition: Callable[[], bool], timeout_secs: float, what: str) -> float:
    """Poll ``condition``; returns the seconds it took. Fails the test after the timeout."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_secs:
            raise AssertionError(f"timed out after {timeout_secs} s waiting for {what}")
        await asyncio.sleep(POLL_SECS)
    return time.monotonic() - start
