"""Live calls through the real server, in their own process: the fan-out row's media load.

``python -m bench.server_peers --server URL`` prints ``ready: 1`` and answers one JSON line per
command read from stdin (bench/common.py ``serve_commands``), so the peers' packetizing and
SRTP never load the measured server:

* ``{"op": "calls", "operators": [COOKIE, ...]}``: one answered call per operator's session
  cookie, each brought up as the pages do it: ``POST /api/calls``; the citizen's ``/citizen``
  socket offers its media (``media_offer``; aiortc gathers before it offers, so the candidates
  are in the SDP) and sends the pre-encoded VP8 + Opus loop; the operator's ``/console`` socket
  accepts the call and offers to receive its video and audio while sending a voice back;
* ``{"op": "measure", "secs": S}``: frames/s at every operator (video, audio), the operator's
  voice at every citizen, and this process's CPU over S seconds;
* ``{"op": "close"}``: operators end their calls, every peer and socket closes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from bench import media_file
from bench.common import LOOPBACK, cpu_percent, cpu_sample, serve_commands
from bench.peers_proc import AUDIO_TIME_BASE, VIDEO_TIME_BASE, Counter, FileTrack
from media.ice import restrict_gathering
from media.passthrough import Kind, tap_receiver

FIRST_FRAME_TIMEOUT_SECS = 15.0
SOCKET_TIMEOUT_SECS = 20.0
MAX_CALLS = 64
# Admission control may refuse a call's media while the node is busy setting up the previous
# one; the page would tell the caller to wait, the bench retries a few times, then fails.
BUSY_RETRIES = 5
BUSY_WAIT_SECS = 2.0


def _video(media: media_file.EncodedMedia) -> FileTrack:
    return FileTrack(
        "video", media.video, media_file.FPS, 90_000 // media_file.FPS, VIDEO_TIME_BASE
    )


def _audio(media: media_file.EncodedMedia) -> FileTrack:
    return FileTrack(
        "audio",
        media.audio,
        media_file.AUDIO_SAMPLE_RATE / media_file.AUDIO_FRAME_SAMPLES,
        media_file.AUDIO_FRAME_SAMPLES,
        AUDIO_TIME_BASE,
    )


@dataclass(eq=False)
class LiveCall:
    """One answered call: both sockets, both peer connections, and what each side received."""

    call_id: str
    citizen_sio: socketio.AsyncClient
    operator_sio: socketio.AsyncClient | None = None
    citizen_pc: RTCPeerConnection | None = None
    operator_pc: RTCPeerConnection | None = None
    sending: list[FileTrack] = field(default_factory=list)
    at_operator: Counter = field(default_factory=Counter)
    at_citizen: Counter = field(default_factory=Counter)  # the operator's voice
    setup_ms: float = 0.0


class ServerPeers:
    def __init__(
        self, server: str, media: media_file.EncodedMedia, http: aiohttp.ClientSession
    ) -> None:
        self._server = server
        self._media = media
        self._http = http
        self.calls: list[LiveCall] = []
        self.busy_retries = 0

    async def _socket(
        self, namespace: str, *, auth: Any = None, cookie: str = ""
    ) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False, http_session=self._http)
        headers = {"Origin": self._server}
        if cookie:
            headers["Cookie"] = f"lifeline_session={cookie}"
        await sio.connect(
            self._server,
            namespaces=[namespace],
            transports=["websocket"],
            auth=auth,
            headers=headers,
            wait_timeout=SOCKET_TIMEOUT_SECS,
        )
        return sio

    async def _offer(
        self, sio: socketio.AsyncClient, namespace: str, pc: RTCPeerConnection, **extra: str
    ) -> None:
        restrict_gathering(pc, [LOOPBACK])
        await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp, **extra}
        for _ in range(BUSY_RETRIES):
            reply = await sio.call(
                "media_offer", offer, namespace=namespace, timeout=SOCKET_TIMEOUT_SECS
            )
            if reply.get("ok"):
                break
            if reply.get("error", {}).get("code") != "media_busy":
                raise RuntimeError(f"media_offer on {namespace}: {reply}")
            self.busy_retries += 1
            await asyncio.sleep(BUSY_WAIT_SECS)
        else:
            raise RuntimeError(f"media_offer on {namespace}: media_busy {BUSY_RETRIES} times")
        answer = RTCSessionDescription(sdp=reply["sdp"], type="answer")
        await pc.setRemoteDescription(answer)

    async def add_call(self, operator_cookie: str) -> LiveCall:
        started = time.monotonic()
        body = {"channel": "police", "language": "en", "mode": "video"}
        async with self._http.post(f"{self._server}/api/calls", json=body) as reply:
            if reply.status != 201:
                raise RuntimeError(f"POST /api/calls: HTTP {reply.status}")
            made = await reply.json()
        citizen_sio = await self._socket("/citizen", auth={"token": made["token"], "last_seq": 0})
        call = LiveCall(str(made["call_id"]), citizen_sio)
        self.calls.append(call)

        citizen = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call.citizen_pc = citizen
        audio, video = _audio(self._media), _video(self._media)
        call.sending += [audio, video]
        for track in (audio, video):
            citizen.addTrack(track)
        for transceiver in citizen.getTransceivers():
            # What comes back (the operator's voice) is counted, never decoded.
            kind: Kind = "video" if transceiver.kind == "video" else "audio"
            tap_receiver(transceiver.receiver, kind, call.at_citizen.sink)
        await self._offer(citizen_sio, "/citizen", citizen)

        call.operator_sio = await self._socket("/console", cookie=operator_cookie)
        accepted = await call.operator_sio.call(
            "accept", {"call_id": call.call_id}, namespace="/console", timeout=SOCKET_TIMEOUT_SECS
        )
        if not accepted.get("ok"):
            raise RuntimeError(f"accept {call.call_id}: {accepted}")
        operator = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        call.operator_pc = operator
        voice = _audio(self._media)
        call.sending.append(voice)
        operator.addTrack(voice)
        operator.addTransceiver("video", direction="recvonly")
        for transceiver in operator.getTransceivers():
            kind = "video" if transceiver.kind == "video" else "audio"
            tap_receiver(transceiver.receiver, kind, call.at_operator.sink)
        await self._offer(call.operator_sio, "/console", operator, call_id=call.call_id)

        deadline = started + FIRST_FRAME_TIMEOUT_SECS
        while call.at_operator.first_video_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no video at the operator of {call.call_id}")
            await asyncio.sleep(0.02)
        call.setup_ms = (call.at_operator.first_video_at - started) * 1000
        return call

    async def measure(self, secs: float) -> dict[str, Any]:
        counts0 = [
            (c.at_operator.video, c.at_operator.audio, c.at_citizen.audio) for c in self.calls
        ]
        cpu0 = cpu_sample(os.getpid())
        await asyncio.sleep(secs)
        cpu1 = cpu_sample(os.getpid())
        wall = cpu1.at - cpu0.at
        rates = [
            (
                (c.at_operator.video - v) / wall,
                (c.at_operator.audio - a) / wall,
                (c.at_citizen.audio - back) / wall,
            )
            for c, (v, a, back) in zip(self.calls, counts0, strict=True)
        ]
        return {
            "secs": wall,
            "operator_video_fps": [r[0] for r in rates],
            "operator_audio_fps": [r[1] for r in rates],
            "citizen_audio_fps": [r[2] for r in rates],
            "peers_cpu_percent": cpu_percent(cpu0, cpu1),
            "setup_ms": [c.setup_ms for c in self.calls],
            "busy_retries": self.busy_retries,
        }

    async def close(self) -> dict[str, Any]:
        for call in self.calls:
            for track in call.sending:
                track.stop()
        ended = 0
        for call in self.calls:
            if call.operator_sio is not None and call.operator_sio.connected:
                reply = await call.operator_sio.call(
                    "end_call",
                    {"call_id": call.call_id, "disposition": "resolved", "note": ""},
                    namespace="/console",
                    timeout=SOCKET_TIMEOUT_SECS,
                )
                ended += bool(reply.get("ok"))
        peers = [pc for call in self.calls for pc in (call.citizen_pc, call.operator_pc) if pc]
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        sockets = [
            sio for call in self.calls for sio in (call.citizen_sio, call.operator_sio) if sio
        ]
        await asyncio.gather(*(sio.disconnect() for sio in sockets), return_exceptions=True)
        self.calls.clear()
        return {"ended": ended}


async def _main(server: str) -> None:
    media = media_file.load(media_file.ensure_media_file())
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=SOCKET_TIMEOUT_SECS)
    ) as http:
        peers = ServerPeers(server, media, http)

        async def calls(command: dict[str, Any]) -> dict[str, Any]:
            for cookie in command["operators"][: MAX_CALLS - len(peers.calls)]:
                await peers.add_call(str(cookie))
            return {"calls": len(peers.calls)}

        async def measure(command: dict[str, Any]) -> dict[str, Any]:
            return await peers.measure(float(command["secs"]))

        async def close(command: dict[str, Any]) -> dict[str, Any]:
            return await peers.close()

        try:
            await serve_commands({"calls": calls, "measure": measure, "close": close})
        finally:
            if peers.calls:
                await peers.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server_peers")
    parser.add_argument("--server", required=True, help="the server's base URL (loopback)")
    args = parser.parse_args()
    if not args.server.startswith(f"http://{LOOPBACK}:"):
        parser.error("the server must be on loopback")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_main(args.server.rstrip("/")))


if __name__ == "__main__":
    main()
