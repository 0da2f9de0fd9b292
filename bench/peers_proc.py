"""Synthetic citizens, operators and the probe, in their own process (row 1's load generator).

``python -m bench.peers_proc --node URL`` prints ``ready: 1`` and then answers one JSON line per
command read from stdin, so their packetizing and SRTP never load the measured process:

* ``{"op": "calls", "n": N}``: bring the live calls up to N (each: a citizen sending the
  pre-encoded file, one operator counting frames without decoding; call 0 also has the probe);
* ``{"op": "offer", "n": N}``: offer N more calls, whatever the node answers: a refusal (HTTP
  503, admission control) is counted, its citizen closed, and the next call is offered;
* ``{"op": "measure", "secs": S}``: frames per second at every operator, the probe's
  latencies (ms) and this process's own CPU over S seconds;
* ``{"op": "close"}``: stop the citizens, end every call at the node (its recording's frame
  counts), close every peer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from bench import media_file
from bench.common import LOOPBACK, cpu_percent, cpu_sample, serve_commands
from media.ice import restrict_gathering
from media.passthrough import EncodedFrame, Kind, tap_receiver

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, media_file.AUDIO_SAMPLE_RATE)
FIRST_FRAME_TIMEOUT_SECS = 15.0
HTTP_TIMEOUT_SECS = 20.0
MAX_MEASURE_SECS = 120.0
MAX_CALLS = 64
PROBE_QUEUE_FRAMES = 120
DRAIN_SECS = 0.5  # let the last frames reach the node before the calls end


class Refused(Exception):
    """The node refused the call's media (HTTP 503): admission control said no."""


class FileTrack(MediaStreamTrack):
    """Sends one loop of pre-encoded frames over and over, paced in real time, as packets
    (aiortc's sender only packetizes them, as with ``MediaPlayer(decode=False)``)."""

    def __init__(
        self,
        kind: str,
        frames: list[bytes],
        rate_hz: float,
        pts_step: int,
        time_base: fractions.Fraction,
        send_log: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._frames = frames
        self._period = 1.0 / rate_hz
        self._pts_step = pts_step
        self._time_base = time_base
        self._start: float | None = None
        self._send_log = send_log
        self.sent = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            await asyncio.sleep(max(0.0, self._start + self.sent * self._period - now))
        index = self.sent % len(self._frames)
        packet = av.Packet(self._frames[index])
        packet.pts = self.sent * self._pts_step
        packet.time_base = self._time_base
        if self._send_log is not None:
            self._send_log[index] = time.monotonic()
        self.sent += 1
        return packet


@dataclass
class Counter:
    """Frames released by a receiver's jitter buffer, counted, never decoded."""

    video: int = 0
    audio: int = 0
    first_video_at: float | None = None

    def sink(self, frame: EncodedFrame) -> None:
        if frame.kind == "video":
            self.video += 1
            if self.first_video_at is None:
                self.first_video_at = time.monotonic()
        else:
            self.audio += 1


class Probe:
    """Decodes one operator's video in a thread and reads the painted index: latency from the
    citizen's send to the release at this receiver's jitter buffer."""

    def __init__(self, send_log: list[float]) -> None:
        self._send_log = send_log
        self._frames: queue.Queue[tuple[float, bytes] | None] = queue.Queue(PROBE_QUEUE_FRAMES)
        self.latencies_ms: list[float] = []
        self.unreadable = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._decode, name="probe-decoder", daemon=True)
        self._thread.start()

    def sink(self, frame: EncodedFrame) -> None:
        if frame.kind != "video":
            return
        try:
            self._frames.put_nowait((frame.arrival, frame.data))
        except queue.Full:
            self.dropped += 1  # the decoder will fail until the next keyframe: counted there

    def take(self) -> list[float]:
        with self._lock:
            taken, self.latencies_ms = self.latencies_ms, []
        return taken

    def stop(self) -> None:
        with contextlib.suppress(queue.Full):
            self._frames.put(None, timeout=1.0)
        self._thread.join(timeout=5.0)

    def _decode(self) -> None:
        decoder = av.CodecContext.create("vp8", "r")
        loop_secs = media_file.LOOP_FRAMES / media_file.FPS
        while (item := self._frames.get()) is not None:
            arrival, data = item
            try:
                pictures = decoder.decode(av.Packet(data))
            except av.error.FFmpegError:
                self.unreadable += 1
                continue
            for picture in pictures:
                index = media_file.read_index(picture.to_ndarray(format="gray"))
                if index is None or index >= len(self._send_log):
                    self.unreadable += 1
                    continue
                latency = arrival - self._send_log[index]
                if 0 <= latency < loop_secs:
                    with self._lock:
                        self.latencies_ms.append(latency * 1000)


@dataclass(eq=False)
class Call:
    call_id: str
    citizen: RTCPeerConnection
    video: FileTrack
    audio: FileTrack
    operator: RTCPeerConnection | None = None
    counter: Counter = field(default_factory=Counter)
    probe_pc: RTCPeerConnection | None = None
    setup_ms: float = 0.0


class Peers:
    def __init__(self, node_url: str, media: media_file.EncodedMedia, http: aiohttp.ClientSession):
        self._node = node_url
        self._media = media
        self._http = http
        self.calls: list[Call] = []
        self.probe: Probe | None = None
        self._run = os.getpid()
        self._made = 0
        self.refused = 0

    async def _offer(self, path: str, pc: RTCPeerConnection) -> None:
        restrict_gathering(pc, [LOOPBACK])
        await pc.setLocalDescription(await pc.createOffer())
        async with self._http.post(f"{self._node}{path}", data=pc.localDescription.sdp) as reply:
            if reply.status == 503:
                raise Refused(path)
            if reply.status != 200:
                raise RuntimeError(f"{path}: HTTP {reply.status}: {(await reply.text())[:300]}")
            answer = await reply.text()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _receiver(
        self, call_id: str, name: str, sink: Callable[[EncodedFrame], None]
    ) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for kind in ("video", "audio"):
            transceiver = pc.addTransceiver(kind, direction="recvonly")
            tap_receiver(transceiver.receiver, "video" if kind == "video" else "audio", sink)
        await self._offer(f"/calls/{call_id}/subscribers/{name}", pc)
        return pc

    async def add_call(self) -> Call | None:
        """A call up to its first frame at the operator; None when the node refused it."""
        started = time.monotonic()
        index = len(self.calls)
        call_id = f"bench-{self._run}-{self._made}"
        self._made += 1
        send_log = [0.0] * len(self._media.video) if index == 0 else None
        video = FileTrack(
            "video",
            self._media.video,
            media_file.FPS,
            90_000 // media_file.FPS,
            VIDEO_TIME_BASE,
            send_log,
        )
        audio = FileTrack(
            "audio",
            self._media.audio,
            media_file.AUDIO_SAMPLE_RATE / media_file.AUDIO_FRAME_SAMPLES,
            media_file.AUDIO_FRAME_SAMPLES,
            AUDIO_TIME_BASE,
        )
        citizen = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call = Call(call_id, citizen, video, audio)
        self.calls.append(call)
        for track in (audio, video):
            citizen.addTrack(track)
        for transceiver in citizen.getTransceivers():
            # What comes back (the operator's voice, if any) is not decoded either.
            kind: Kind = "video" if transceiver.kind == "video" else "audio"
            tap_receiver(transceiver.receiver, kind, _discard)
        try:
            await self._offer(f"/calls/{call_id}/citizen", citizen)
        except Refused:
            self.calls.remove(call)
            video.stop()
            audio.stop()
            await citizen.close()
            self.refused += 1
            return None
        call.operator = await self._receiver(call_id, "operator", call.counter.sink)
        if send_log is not None:
            self.probe = Probe(send_log)
            call.probe_pc = await self._receiver(call_id, "probe", self.probe.sink)
        deadline = started + FIRST_FRAME_TIMEOUT_SECS
        while call.counter.first_video_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no video at the operator of {call_id}")
            await asyncio.sleep(0.02)
        call.setup_ms = (call.counter.first_video_at - started) * 1000
        return call

    async def measure(self, secs: float) -> dict[str, Any]:
        secs = min(secs, MAX_MEASURE_SECS)
        video0 = [c.counter.video for c in self.calls]
        audio0 = [c.counter.audio for c in self.calls]
        sent0 = sum(c.video.sent for c in self.calls)
        if self.probe is not None:
            self.probe.take()
        cpu0 = cpu_sample(os.getpid())
        await asyncio.sleep(secs)
        cpu1 = cpu_sample(os.getpid())
        wall = cpu1.at - cpu0.at
        return {
            "secs": wall,
            "video_fps": [
                (c.counter.video - v) / wall for c, v in zip(self.calls, video0, strict=True)
            ],
            "audio_fps": [
                (c.counter.audio - a) / wall for c, a in zip(self.calls, audio0, strict=True)
            ],
            "sent_fps": (sum(c.video.sent for c in self.calls) - sent0)
            / wall
            / max(1, len(self.calls)),
            "latencies_ms": self.probe.take() if self.probe is not None else [],
            "probe_unreadable": self.probe.unreadable if self.probe is not None else 0,
            "peers_cpu_percent": cpu_percent(cpu0, cpu1),
            "setup_ms": [c.setup_ms for c in self.calls],
        }

    async def close(self) -> dict[str, Any]:
        for call in self.calls:
            call.video.stop()
            call.audio.stop()
        await asyncio.sleep(DRAIN_SECS)
        recordings = []
        for call in self.calls:
            async with self._http.post(f"{self._node}/calls/{call.call_id}/end") as reply:
                counts = await reply.json() if reply.status == 200 else {}
            recordings.append({"video_sent": call.video.sent, **counts})
        peers = [
            pc
            for call in self.calls
            for pc in (call.citizen, call.operator, call.probe_pc)
            if pc is not None
        ]
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        if self.probe is not None:
            self.probe.stop()
        self.calls.clear()
        return {"recordings": recordings}


def _discard(frame: EncodedFrame) -> None:
    del frame


async def _commands(peers: Peers) -> None:
    async def calls(command: dict[str, Any]) -> dict[str, Any]:
        wanted = min(int(command["n"]), MAX_CALLS)
        while len(peers.calls) < wanted:
            if await peers.add_call() is None:
                raise RuntimeError(f"the node refused call {len(peers.calls) + 1}")
        return {"calls": len(peers.calls)}

    async def offer(command: dict[str, Any]) -> dict[str, Any]:
        admitted = refused = 0
        for _ in range(int(command["n"])):
            if len(peers.calls) >= MAX_CALLS:
                break
            if await peers.add_call() is None:
                refused += 1
            else:
                admitted += 1
        return {"admitted": admitted, "refused": refused, "calls": len(peers.calls)}

    async def measure(command: dict[str, Any]) -> dict[str, Any]:
        return await peers.measure(float(command["secs"]))

    async def close(command: dict[str, Any]) -> dict[str, Any]:
        return await peers.close()

    await serve_commands({"calls": calls, "offer": offer, "measure": measure, "close": close})


async def _main(node_url: str) -> None:
    media = media_file.load(media_file.ensure_media_file())
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECS)
    ) as http:
        peers = Peers(node_url, media, http)
        try:
            await _commands(peers)
        finally:
            if peers.calls:
                await peers.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers_proc")
    parser.add_argument("--node", required=True, help="the media node's base URL (loopback)")
    args = parser.parse_args()
    if not args.node.startswith(f"http://{LOOPBACK}:"):
        parser.error("the node must be on loopback")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_main(args.node))


if __name__ == "__main__":
    main()
