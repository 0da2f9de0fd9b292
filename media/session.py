"""One call's media: the citizen's peer, its subscribers, the fan-out and the recording.

Frames flow as encoded frames only (media/passthrough.py): citizen video and audio to every
subscriber's bounded track and to the recording; the talking operator's audio to the citizen
and to the recording. Peers are dropped when their ``connectionState`` reaches failed or closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiortc import RTCIceCandidate, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.sdp import candidate_from_sdp

from media import ice, passthrough
from media.passthrough import EncodedFrame, Kind, PacketTrack
from media.recorder import Recording
from media.segment_claims import SegmentClaims
from media.snapshot import vp8_keyframe_to_jpeg, vp8_keyframe_to_thumbnail
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment, RecordingFailure

logger = logging.getLogger(__name__)

CITIZEN = "citizen"
VIDEO_QUEUE_FRAMES = 60  # 2 s at 30 fps: a subscriber further behind drops to a keyframe
AUDIO_QUEUE_FRAMES = 100  # 2 s of 20 ms Opus frames
KEYFRAME_MIN_INTERVAL_SECS = 0.25  # one PLI in flight serves every waiter
KEYFRAME_RETRY_SECS = 0.5  # re-ask while someone still waits (a PLI or keyframe got lost)
SNAPSHOT_KEYFRAME_WAIT_SECS = 1.0  # wait this long for a fresh keyframe, else use the last one


@dataclass(frozen=True)
class MediaConfig:
    """The node's media settings, shared by its sessions."""

    recordings_dir: Path
    ice_servers: Sequence[dict[str, Any]]
    media_addresses: Sequence[str]
    peer_networks: Sequence[ice.Network]
    segment_secs: float
    # Which segments this media node has open (media/segment_claims.py).
    claims: SegmentClaims
    # MEDIA_PORT_RANGE: the ports every peer connection's ICE sockets bind (None: any).
    ports: ice.PortRange | None = None
    # The node's recording counts, shared by every call's recording (media/recorder.py).
    totals: Counter[str] = field(default_factory=Counter)


MAX_CANDIDATES_PER_PEER = 50


@dataclass(eq=False)
class _Peer:
    name: str
    pc: RTCPeerConnection
    talk: bool = False
    video_receiver: RTCRtpReceiver | None = None
    video_out: PacketTrack | None = None  # citizen video toward a subscriber
    # citizen audio toward a subscriber; the operator's audio toward the citizen
    audio_out: PacketTrack | None = None
    # A second voice, on a second audio line where the page offered one: toward the citizen
    # and the operator, a supervisor's who barges in; toward a monitor, the operator's.
    voice_out: PacketTrack | None = None
    # A monitor whose voice goes to the caller and the operator (barge-in).
    barging: bool = False
    received: dict[str, int] = field(default_factory=lambda: {"video": 0, "audio": 0})
    closed: bool = False
    # Trickled candidates that arrive before the offer is applied wait here.
    remote_set: bool = False
    early_candidates: list[RTCIceCandidate] = field(default_factory=list)
    candidates: int = 0  # trickled to this peer connection so far

    def stop_tracks(self) -> None:
        for track in (self.video_out, self.audio_out, self.voice_out):
            if track is not None:
                track.stop()


class MediaSession:
    """The media of one call on this node.

    What it refuses on purpose is an ``AppError`` (an unusable offer or candidate, no picture,
    a call that ended); any other exception out of it is a bug. Keyframe requests are limited
    and retried on ``clock``'s monotonic time, so a test moves a ``FrozenClock`` instead of
    sleeping.
    """

    def __init__(
        self,
        call_id: str,
        *,
        config: MediaConfig,
        clock: Clock,
        on_segment_closed: Callable[[ClosedSegment], Awaitable[None]],
        on_recording_failed: Callable[[RecordingFailure], Awaitable[None]] | None = None,
        first_segment: int = 1,
        log_name: str = "",
    ) -> None:
        self.call_id = call_id
        # How the logs name the call: an internal-security call's id is never written there.
        self.log_name = log_name or call_id
        self._config = config
        self._clock = clock
        self._citizen: _Peer | None = None
        self._subscribers: dict[str, _Peer] = {}
        self._talkers: list[str] = []  # talk=True subscribers, first joined first; the first talks
        self._negotiating: dict[str, _Peer] = {}  # newest peer per name while its offer is applied
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keyframe_loop: asyncio.Task[None] | None = None
        self._last_pli = float("-inf")  # the clock's monotonic time of the last PLI sent
        self._plis_sent = 0
        self._last_keyframe: EncodedFrame | None = None
        self._keyframe_waiters: list[asyncio.Future[EncodedFrame]] = []
        self._keyframes = 0
        # The keyframe the last thumbnail was made of, and that thumbnail: no keyframe is
        # decoded twice for the wall.
        self._thumbnail_of: EncodedFrame | None = None
        self._thumbnail = b""
        self.thumbnails_made = 0
        self.recording = Recording(
            call_id=call_id,
            directory=config.recordings_dir,
            clock=clock,
            segment_secs=config.segment_secs,
            request_keyframe=self.request_keyframe,
            on_closed=on_segment_closed,
            claims=config.claims,
            on_failed=on_recording_failed,
            first_segment=first_segment,
            log_name=self.log_name,
            totals=config.totals,
        )

    @property
    def has_peers(self) -> bool:
        return self._citizen is not None or bool(self._subscribers)

    # -- peers -----------------------------------------------------------------------------

    async def citizen_offer(self, sdp: str) -> str:
        """Answer the citizen's offer; a new peer replaces the previous one and its segment."""
        peer = _Peer(CITIZEN, self._new_pc())
        self._negotiating[CITIZEN] = peer
        try:
            await self._set_offer(peer, sdp)
            has_video = False
            for transceiver in peer.pc.getTransceivers():
                if (
                    transceiver.kind == "audio"
                    and peer.audio_out is not None
                    and (peer.voice_out is None)
                ):
                    # A second audio line the page offered to hear a supervisor who barges in.
                    passthrough.restrict_codecs(transceiver, "audio/opus")
                    passthrough.tap_receiver(transceiver.receiver, "audio", _discard)
                    peer.voice_out = PacketTrack("audio", max_queue=AUDIO_QUEUE_FRAMES)
                    peer.pc.addTrack(peer.voice_out)
                elif (transceiver.kind == "video" and has_video) or (
                    transceiver.kind == "audio" and peer.audio_out is not None
                ):
                    # One camera and one microphone per call: a further m-line is ignored,
                    # but tapped so that aiortc does not decode it for nobody.
                    kind: Kind = "video" if transceiver.kind == "video" else "audio"
                    passthrough.tap_receiver(transceiver.receiver, kind, _discard)
                elif transceiver.kind == "video":
                    passthrough.restrict_codecs(transceiver, "video/VP8")
                    passthrough.tap_receiver(
                        transceiver.receiver, "video", partial(self._on_citizen_frame, peer)
                    )
                    peer.video_receiver = transceiver.receiver
                    has_video = True
                elif transceiver.kind == "audio":
                    passthrough.restrict_codecs(transceiver, "audio/opus")
                    passthrough.tap_receiver(
                        transceiver.receiver, "audio", partial(self._on_citizen_frame, peer)
                    )
                    # The operator's voice, once one talks; nothing is sent before.
                    peer.audio_out = PacketTrack("audio", max_queue=AUDIO_QUEUE_FRAMES)
                    peer.pc.addTrack(peer.audio_out)
            answer = await self._answer(peer)
        except BaseException:
            await self._close_pc(peer)
            raise
        finally:
            if self._negotiating.get(CITIZEN) is peer:
                del self._negotiating[CITIZEN]
        old, self._citizen = self._citizen, peer
        self.recording.start(has_video=has_video)
        if old is not None:
            await self._close_pc(old)
        self._start_keyframe_loop()
        return answer

    async def subscriber_offer(self, subscriber_id: str, sdp: str, *, talk: bool) -> str:
        """Answer an operator's (talk) or a monitor's offer; the same id replaces its peer."""
        peer = _Peer(subscriber_id, self._new_pc(), talk=talk)
        self._negotiating[subscriber_id] = peer
        try:
            await self._set_offer(peer, sdp)
            for transceiver in peer.pc.getTransceivers():
                if transceiver.kind == "video":
                    passthrough.restrict_codecs(transceiver, "video/VP8")
                    # An operator's camera is not forwarded (off by default, docs/media.md); the
                    # tap still keeps aiortc from decoding it into a queue nobody reads.
                    passthrough.tap_receiver(transceiver.receiver, "video", _discard)
                    peer.video_out = PacketTrack(
                        "video",
                        max_queue=VIDEO_QUEUE_FRAMES,
                        on_keyframe_needed=self.request_keyframe,
                    )
                    sender = peer.pc.addTrack(peer.video_out)
                    passthrough.on_keyframe_request(sender, self.request_keyframe)
                elif transceiver.kind == "audio" and peer.audio_out is None:
                    passthrough.restrict_codecs(transceiver, "audio/opus")
                    sink = partial(
                        self._on_operator_audio if talk else self._on_supervisor_audio, peer
                    )
                    passthrough.tap_receiver(transceiver.receiver, "audio", sink)
                    peer.audio_out = PacketTrack("audio", max_queue=AUDIO_QUEUE_FRAMES)
                    peer.pc.addTrack(peer.audio_out)
                elif transceiver.kind == "audio" and peer.voice_out is None:
                    # The second voice: the operator's for a monitor, a supervisor's for the
                    # operator. A further audio line is ignored.
                    passthrough.restrict_codecs(transceiver, "audio/opus")
                    passthrough.tap_receiver(transceiver.receiver, "audio", _discard)
                    peer.voice_out = PacketTrack("audio", max_queue=AUDIO_QUEUE_FRAMES)
                    peer.pc.addTrack(peer.voice_out)
                elif transceiver.kind == "audio":
                    passthrough.tap_receiver(transceiver.receiver, "audio", _discard)
            answer = await self._answer(peer)
        except BaseException:
            await self._close_pc(peer)
            raise
        finally:
            if self._negotiating.get(subscriber_id) is peer:
                del self._negotiating[subscriber_id]
        old = self._subscribers.get(subscriber_id)
        if old is not None:
            peer.barging = old.barging and not talk  # a monitor's new link keeps its barge-in
        self._subscribers[subscriber_id] = peer
        if subscriber_id in self._talkers:
            self._talkers.remove(subscriber_id)
        if talk:
            self._talkers.append(subscriber_id)
        if old is not None:
            await self._close_pc(old)
        self.request_keyframe()
        self._start_keyframe_loop()
        return answer

    async def add_candidate(
        self, peer_name: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """Add a trickled remote candidate; candidates outside the peer networks are dropped.

        Raises:
            AppError: ``INVALID_CANDIDATE``, the candidate string does not parse.
        """
        if not candidate.strip():
            return  # end of candidates: aiortc needs no signal for it
        try:
            value, address = ice.parse_candidate(candidate)
        except ValueError as exc:  # the browser's text, parsed here and nowhere deeper
            raise AppError(ErrorCode.INVALID_CANDIDATE, f"Unusable candidate: {exc}") from None
        if not ice.address_allowed(address, self._config.peer_networks):
            # Not the address: it is the caller's, and logs are read by many.
            logger.info(
                "call %s: dropped %s candidate outside peer networks", self.log_name, peer_name
            )
            return
        # The browser trickles as soon as it has sent its offer: the newest peer of that name,
        # even one whose offer is still being applied, is the one its candidates belong to.
        peer = self._negotiating.get(peer_name) or (
            self._citizen if peer_name == CITIZEN else self._subscribers.get(peer_name)
        )
        if peer is None or peer.closed:
            logger.info("call %s: candidate for unknown peer %s dropped", self.log_name, peer_name)
            return
        # A browser gathers a handful per interface; a thousand is someone making the node
        # probe addresses (each one costs STUN checks).
        peer.candidates += 1
        if peer.candidates > MAX_CANDIDATES_PER_PEER:
            raise AppError(
                ErrorCode.INVALID_CANDIDATE,
                f"More than {MAX_CANDIDATES_PER_PEER} candidates for one connection",
            )
        parsed = candidate_from_sdp(value)
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        if sdp_mid is None and sdp_mline_index is None:
            parsed.sdpMLineIndex = 0  # bundled: every m-line shares the first one's transport
        if not peer.remote_set:
            peer.early_candidates.append(parsed)
            return
        await peer.pc.addIceCandidate(parsed)

    def set_barging(self, subscriber_id: str, on: bool) -> None:
        """A monitor's voice goes to the caller and the operator (``on``) or to nobody.

        Raises:
            AppError: ``NO_MEDIA``, that monitor has no link to the call's media.
        """
        peer = self._subscribers.get(subscriber_id)
        if peer is None or peer.talk:
            raise AppError(ErrorCode.NO_MEDIA, "Link to the call's media first")
        peer.barging = on

    async def remove_subscriber(self, subscriber_id: str) -> None:
        peer = self._subscribers.get(subscriber_id)
        if peer is not None:
            await self._drop(peer)

    async def close(self) -> list[ClosedSegment]:
        """Close every peer and the last segment; every segment of the call, in order."""
        self._closed = True
        if self._keyframe_loop is not None:
            self._keyframe_loop.cancel()
        peers = [p for p in (self._citizen, *self._subscribers.values()) if p is not None]
        self._citizen = None
        self._subscribers.clear()
        self._talkers.clear()
        await asyncio.gather(*(self._close_pc(peer) for peer in peers))
        self.recording.stop()
        await self.recording.wait_closed()
        for waiter in self._keyframe_waiters:
            waiter.cancel()
        # Peer drops and PLIs are short: let them finish (a cancelled wait on aiortc's
        # close() would cancel the future its own closing task still has to resolve).
        loop_task = [self._keyframe_loop] if self._keyframe_loop else []
        await asyncio.gather(*self._tasks, *loop_task, return_exceptions=True)
        return sorted(self.recording.closed, key=lambda segment: segment.segment)

    # -- frames ----------------------------------------------------------------------------

    def _on_citizen_frame(self, peer: _Peer, frame: EncodedFrame) -> None:
        if peer is not self._citizen:
            return  # a replaced peer's last frames
        peer.received[frame.kind] += 1
        if frame.kind == "video":
            if frame.keyframe:
                self._keyframes += 1
                self._last_keyframe = frame
                waiters, self._keyframe_waiters = self._keyframe_waiters, []
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(frame)
            for subscriber in self._subscribers.values():
                if subscriber.video_out is not None:
                    subscriber.video_out.push(frame)
            self.recording.on_frame("video", frame)
        else:
            for subscriber in self._subscribers.values():
                if subscriber.audio_out is not None:
                    subscriber.audio_out.push(frame)
            self.recording.on_frame("audio", frame)

    def _on_operator_audio(self, peer: _Peer, frame: EncodedFrame) -> None:
        if self._subscribers.get(peer.name) is not peer:
            return
        peer.received["audio"] += 1
        if not self._talkers:
            return
        if self._talkers[0] != peer.name:
            self._second_talker_audio(peer, frame)
            return
        citizen = self._citizen
        if citizen is not None and citizen.audio_out is not None:
            citizen.audio_out.push(frame)
        self.recording.on_frame("operator_audio", frame)
        for subscriber in self._subscribers.values():
            if subscriber is not peer and subscriber.voice_out is not None:
                # Monitors hear the operator too, and so does a second operator on the call.
                subscriber.voice_out.push(frame)

    def _second_talker_audio(self, peer: _Peer, frame: EncodedFrame) -> None:
        """A second operator or supervisor on the call (a warm transfer's target, a
        conference's guest) speaks on the second audio line of the caller and the operator,
        as a barging supervisor does, while nobody barges: one voice per line, no mixing (that
        would mean decoding). A third talker waits for one of them to leave."""
        if len(self._talkers) < 2 or self._talkers[1] != peer.name or self._first_barging():
            return
        citizen = self._citizen
        if citizen is not None and citizen.voice_out is not None:
            citizen.voice_out.push(frame)
        operator = self._subscribers.get(self._talkers[0])
        if operator is not None and operator.voice_out is not None:
            operator.voice_out.push(frame)

    def _on_supervisor_audio(self, peer: _Peer, frame: EncodedFrame) -> None:
        """A monitor's microphone: forwarded only while they barge in, and one barging voice at
        a time (the first), on the caller's and the operator's second audio line."""
        if self._subscribers.get(peer.name) is not peer:
            return
        peer.received["audio"] += 1
        if not peer.barging or self._first_barging() is not peer:
            return
        citizen = self._citizen
        if citizen is not None and citizen.voice_out is not None:
            citizen.voice_out.push(frame)
        if self._talkers:
            operator = self._subscribers.get(self._talkers[0])
            if operator is not None and operator.voice_out is not None:
                operator.voice_out.push(frame)

    def _first_barging(self) -> _Peer | None:
        return next((p for p in self._subscribers.values() if p.barging), None)

    # -- keyframes and snapshots -----------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the citizen's camera for a keyframe (a PLI), at most every 250 ms of the clock."""
        citizen = self._citizen
        if citizen is None or citizen.video_receiver is None or self._closed:
            return
        now = self._clock.monotonic()
        if now - self._last_pli < KEYFRAME_MIN_INTERVAL_SECS:
            return
        self._last_pli = now
        self._plis_sent += 1
        self._spawn(passthrough.request_keyframe(citizen.video_receiver))

    def _someone_waits_for_keyframe(self) -> bool:
        return (
            self.recording.waiting_for_keyframe
            or bool(self._keyframe_waiters)
            or any(
                s.video_out is not None and s.video_out.waiting_for_keyframe
                for s in self._subscribers.values()
            )
        )

    def _start_keyframe_loop(self) -> None:
        if self._keyframe_loop is None:
            self._keyframe_loop = asyncio.create_task(self._retry_keyframes())

    async def _retry_keyframes(self) -> None:
        while True:
            await self._clock.sleep(KEYFRAME_RETRY_SECS)
            if self._someone_waits_for_keyframe():
                self.request_keyframe()

    async def thumbnail(self) -> bytes:
        """The wall's small JPEG of the caller's picture: one fresh keyframe (asked for with a
        PLI, waited for up to a second) decoded and resized, never a decode of the stream. The
        same keyframe twice gives the same thumbnail without decoding it again.

        Raises:
            AppError: ``NO_VIDEO``, no picture has arrived (or it does not decode).
        """
        frame = await self._fresh_keyframe()
        if frame is self._thumbnail_of:
            return self._thumbnail
        try:
            jpeg = await asyncio.to_thread(vp8_keyframe_to_thumbnail, frame.data)
        except ValueError as exc:
            message = f"The caller's picture did not decode: {exc}"
            raise AppError(ErrorCode.NO_VIDEO, message) from None
        self._thumbnail_of, self._thumbnail = frame, jpeg
        self.thumbnails_made += 1
        return jpeg

    async def _fresh_keyframe(self) -> EncodedFrame:
        """A keyframe that arrives within a second of asking, else the last one."""
        citizen = self._citizen
        if (citizen is None or citizen.video_receiver is None) and self._last_keyframe is None:
            raise AppError(ErrorCode.NO_VIDEO, "No video in this call")
        waiter: asyncio.Future[EncodedFrame] = asyncio.get_running_loop().create_future()
        self._keyframe_waiters.append(waiter)
        self.request_keyframe()
        try:
            return await asyncio.wait_for(waiter, SNAPSHOT_KEYFRAME_WAIT_SECS)
        except TimeoutError:
            if self._last_keyframe is None:
                raise AppError(ErrorCode.NO_VIDEO, "No picture from the caller yet") from None
            return self._last_keyframe
        finally:
            if waiter in self._keyframe_waiters:
                self._keyframe_waiters.remove(waiter)

    async def snapshot(self) -> bytes:
        """A JPEG of the citizen's picture now: a fresh keyframe if one comes within a second,
        else the last one.

        Raises:
            AppError: ``NO_VIDEO``, no picture has arrived (or it does not decode).
        """
        frame = await self._fresh_keyframe()
        try:
            return await asyncio.to_thread(vp8_keyframe_to_jpeg, frame.data)
        except ValueError as exc:  # the caller's frame, not our code: no picture to give
            message = f"The caller's picture did not decode: {exc}"
            raise AppError(ErrorCode.NO_VIDEO, message) from None

    # -- plumbing --------------------------------------------------------------------------

    def _new_pc(self) -> RTCPeerConnection:
        if self._closed:
            raise AppError(ErrorCode.NO_MEDIA, "The call's media has ended")
        return RTCPeerConnection(configuration=ice.rtc_configuration(self._config.ice_servers))

    async def _set_offer(self, peer: _Peer, sdp: str) -> None:
        """Apply the browser's offer. What makes an offer unusable is checked first, on the text
        (``ice.check_offer``) and by aiortc's own refusals; anything else aiortc raises while
        applying it is a bug, not the caller's offer."""
        # Candidates in the offer count as trickled ones do: each costs the node STUN checks.
        peer.candidates += ice.count_candidates(sdp)
        if peer.candidates > MAX_CANDIDATES_PER_PEER:
            raise AppError(
                ErrorCode.INVALID_SDP,
                f"More than {MAX_CANDIDATES_PER_PEER} candidates in one offer",
            )
        filtered = ice.filter_sdp_candidates(sdp, self._config.peer_networks)
        ice.check_offer(filtered)
        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=filtered, type="offer"))
        except (InvalidAccessError, InvalidStateError, OperationError) as exc:
            if self._closed:  # closed under it: the call ended meanwhile
                raise AppError(ErrorCode.NO_MEDIA, "The call's media has ended") from None
            raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {exc}") from None
        if not peer.pc.getTransceivers():
            raise AppError(ErrorCode.INVALID_SDP, "Unusable offer: no audio or video")
        peer.remote_set = True
        early, peer.early_candidates = peer.early_candidates, []
        for candidate in early:
            await peer.pc.addIceCandidate(candidate)

    async def _answer(self, peer: _Peer) -> str:
        ice.restrict_gathering(peer.pc, self._config.media_addresses, self._config.ports)
        peer.pc.on("connectionstatechange", partial(self._on_state, peer))
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
        if self._closed:
            raise AppError(ErrorCode.NO_MEDIA, "The call's media ended during negotiation")
        return str(peer.pc.localDescription.sdp)

    def _on_state(self, peer: _Peer) -> None:
        state = peer.pc.connectionState
        logger.info("call %s: %s peer %s", self.log_name, peer.name, state)
        if state in ("failed", "closed") and not peer.closed:
            self._spawn(self._drop(peer))
        elif state == "connected" and peer.video_out is not None:
            self.request_keyframe()

    async def _drop(self, peer: _Peer) -> None:
        """Close a peer and take it out of the session (its segment ends with it)."""
        if peer is self._citizen:
            self._citizen = None
            self.recording.stop()
        elif self._subscribers.get(peer.name) is peer:
            del self._subscribers[peer.name]
            if peer.name in self._talkers:
                self._talkers.remove(peer.name)
        await self._close_pc(peer)

    async def _close_pc(self, peer: _Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        peer.stop_tracks()
        # Shielded: aiortc may be closing this connection itself (remote DTLS close), and a
        # cancelled waiter would cancel the future that its close() resolves at the end.
        await asyncio.shield(peer.pc.close())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("call %s: media task failed", self.log_name, exc_info=task.exception())

    # -- stats -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters per track, for tests and the wall."""
        citizen = self._citizen
        subscribers: dict[str, Any] = {}
        for name, peer in self._subscribers.items():
            subscribers[name] = {
                "talk": peer.talk,
                "talking": bool(self._talkers) and self._talkers[0] == name,
                "video_forwarded": peer.video_out.forwarded if peer.video_out else 0,
                "video_dropped": peer.video_out.dropped if peer.video_out else 0,
                "audio_forwarded": peer.audio_out.forwarded if peer.audio_out else 0,
                "audio_dropped": peer.audio_out.dropped if peer.audio_out else 0,
                "audio_received": peer.received["audio"],
                "barging": peer.barging,
                "voice_forwarded": peer.voice_out.forwarded if peer.voice_out else 0,
            }
        return {
            "call_id": self.call_id,
            "citizen": {
                "connected": citizen is not None and citizen.pc.connectionState == "connected",
                "video_received": self.recording.counts["video_received"],
                "audio_received": self.recording.counts["audio_received"],
                "keyframes_received": self._keyframes,
                # Keyframe requests (PLIs) sent to the caller's camera, and when the last went.
                "plis_sent": self._plis_sent,
                "last_pli_at": self._last_pli if self._plis_sent else None,
                "thumbnails_made": self.thumbnails_made,
                # A barging supervisor's voice, on the caller's second audio line.
                "supervisor_audio_forwarded": (
                    citizen.voice_out.forwarded if citizen and citizen.voice_out else 0
                ),
                "operator_audio_forwarded": (
                    citizen.audio_out.forwarded if citizen and citizen.audio_out else 0
                ),
            },
            "recording": {
                **self.recording.counts,
                "paused": self.recording.paused,
                "segments_closed": len(self.recording.closed),
                "video_recorded": sum(s.video_frames for s in self.recording.closed),
                "audio_recorded": sum(s.audio_frames for s in self.recording.closed),
                "operator_audio_recorded": sum(
                    s.operator_audio_frames for s in self.recording.closed
                ),
            },
            "subscribers": subscribers,
        }


def _discard(frame: EncodedFrame) -> None:
    del frame
