"""Encoded-frame passthrough: take frames before aiortc decodes them, send them without encoding.

aiortc (pinned 1.16.0) decodes every received frame in a thread and re-encodes it for every
sender; that is what limits a naive aiortc server (docs/media.md). Everything this module knows
about aiortc's private insides is here and only here, checked by
``tests/test_media.py::test_aiortc_guard``:

* ``RTCRtpReceiver._handle_rtp_packet`` puts ``(codec, JitterFrame)`` on the private
  ``__decoder_queue`` (a ``queue.Queue``) and the decoder thread, started by ``receive()``,
  reads it until ``None``. :func:`tap_receiver` swaps that queue for :class:`_TapQueue`, which
  hands each frame to a callback on the event loop and never lets the thread decode.
* ``RTCRtpReceiver._send_rtcp_pli(ssrc)`` sends a Picture Loss Indication; ``__rtx_ssrc`` maps
  retransmission SSRCs (never the right target of a PLI).
* ``RTCRtpSender`` sends an ``av.Packet`` from its track by packetizing it
  (``encoder.pack``), and calls ``_send_keyframe()`` on a PLI or FIR from its remote peer.
* ``RTCRtpTransceiver._codecs`` holds the codecs negotiated by ``setRemoteDescription``.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import aiortc
import av
from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError

from server.core.errors import AppError, ErrorCode

logger = logging.getLogger(__name__)

PINNED_AIORTC_VERSION = "1.16.0"
VIDEO_CLOCK_RATE = 90_000
AUDIO_CLOCK_RATE = 48_000

Kind = Literal["audio", "video"]


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One reassembled, depayloaded frame as the receiver's jitter buffer released it."""

    kind: Kind
    codec: str  # aiortc's codec name: "VP8", "opus"
    data: bytes
    timestamp: int  # RTP clock units, starting near 0 and increasing (aiortc's TimestampMapper)
    clock_rate: int
    keyframe: bool
    arrival: float  # time.monotonic() when it was released
    source: int  # tells apart the receivers a track may be fed from, one after another


FrameSink = Callable[[EncodedFrame], None]


VP8_START_CODE = b"\x9d\x01\x2a"


def is_vp8_keyframe(data: bytes) -> bool:
    """VP8 frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 on a key frame, and the start
    code follows the 3-byte tag. The start code is checked too: a frame reassembled without its
    first packet (loss under overload) can have the bit clear, and taken for a keyframe it would
    be the first thing a waiting subscriber or a new segment gets."""
    return len(data) >= 10 and (data[0] & 1) == 0 and data[3:6] == VP8_START_CODE


class _TapQueue(queue.Queue[Any]):
    """Stands in for a receiver's decoder queue: frames go to the sink, only ``None`` queues.

    ``put`` is called on the event loop (from ``_handle_rtp_packet``), so the sink runs there;
    the idle decoder thread only ever receives the ``None`` that tells it to exit.
    """

    def __init__(self, kind: Kind, source: int, sink: FrameSink) -> None:
        super().__init__()
        self._kind: Kind = kind
        self._source = source
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None, block, timeout)
            return
        codec, encoded = item
        data = bytes(encoded.data)
        keyframe = self._kind == "audio" or is_vp8_keyframe(data)
        frame = EncodedFrame(
            kind=self._kind,
            codec=codec.name,
            data=data,
            timestamp=int(encoded.timestamp),
            clock_rate=int(codec.clockRate),
            keyframe=keyframe,
            arrival=time.monotonic(),
            source=self._source,
        )
        try:
            self._sink(frame)
        except Exception:
            # Raised into aiortc's receive path, it would end the whole transport.
            logger.exception("%s frame sink failed", self._kind)


def tap_receiver(receiver: RTCRtpReceiver, kind: Kind, sink: FrameSink) -> None:
    """Deliver ``receiver``'s encoded frames to ``sink`` instead of decoding them.

    Call before the receiver starts (before the peer connects): after that the decoder thread
    already holds the original queue.
    """
    if receiver._RTCRtpReceiver__decoder_thread is not None:  # type: ignore[attr-defined]
        raise RuntimeError("tap_receiver() must run before the receiver starts")
    receiver._RTCRtpReceiver__decoder_queue = _TapQueue(kind, id(receiver), sink)  # type: ignore[attr-defined]


async def request_keyframe(receiver: RTCRtpReceiver) -> bool:
    """Send a PLI to the remote sender of ``receiver``; False when it has sent nothing yet."""
    rtx_ssrcs: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    sources = [s for s in receiver.getSynchronizationSources() if s.source not in rtx_ssrcs]
    if not sources:
        return False
    latest = max(sources, key=lambda s: s.timestamp)
    await receiver._send_rtcp_pli(latest.source)
    return True


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote peer of ``sender`` sends a PLI or FIR.

    aiortc's own handler only flags its encoder, which a packet track never uses.
    """
    sender._send_keyframe = callback  # type: ignore[method-assign]


def restrict_codecs(transceiver: RTCRtpTransceiver, mime_type: str) -> None:
    """Keep only ``mime_type`` (and its RTX) among the codecs negotiated from the offer.

    Forwarding and stream-copy recording need one codec end to end: VP8 and Opus.
    ``setCodecPreferences`` cannot do this for an answerer (aiortc applies preferences when
    the transceiver is created, which for an answerer is inside ``setRemoteDescription``).

    Raises:
        AppError: ``INVALID_SDP``, the offer does not offer ``mime_type``.
    """
    codecs = transceiver._codecs
    kept = [c for c in codecs if c.mimeType.lower() == mime_type.lower()]
    if not kept:
        raise AppError(
            ErrorCode.INVALID_SDP, f"Unusable offer: no {mime_type} for {transceiver.kind}"
        )
    payload_types = {c.payloadType for c in kept}
    kept += [c for c in codecs if is_rtx(c) and c.parameters.get("apt") in payload_types]
    transceiver._codecs = kept


class _Timeline:
    """Keeps a track's outgoing timestamps increasing when its source changes.

    Each receiver's timestamps start near 0; a new citizen peer or another talker would make
    the stream jump back, which browsers' jitter buffers take badly.
    """

    def __init__(self) -> None:
        self._source: int | None = None
        self._offset = 0
        self._last_out: int | None = None
        self._last_arrival = 0.0

    def map(self, frame: EncodedFrame) -> int:
        if frame.source != self._source:
            if self._last_out is None:
                self._offset = -frame.timestamp
            else:
                gap = max(1, round((frame.arrival - self._last_arrival) * frame.clock_rate))
                self._offset = self._last_out + gap - frame.timestamp
            self._source = frame.source
        out = frame.timestamp + self._offset
        self._last_out = out
        self._last_arrival = frame.arrival
        return out


class PacketTrack(MediaStreamTrack):
    """A track of encoded frames: RTCRtpSender re-packetizes them, nothing is encoded.

    The queue is bounded: a subscriber that falls behind loses frames, never memory. Video
    drops to the next keyframe (a VP8 delta frame without its predecessors is garbage) and
    asks for one; a new video track also waits for a keyframe, so a late joiner's first frame
    decodes.
    """

    def __init__(
        self,
        kind: Kind,
        *,
        max_queue: int,
        on_keyframe_needed: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._max_queue = max_queue
        self._frames: deque[EncodedFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_keyframe_needed = on_keyframe_needed
        self._timeline = _Timeline()
        self.waiting_for_keyframe = kind == "video"
        self.forwarded = 0
        self.dropped = 0

    def push(self, frame: EncodedFrame) -> None:
        """Queue one frame (called on the event loop, by the receiving side)."""
        if self.readyState != "live":
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                self.dropped += 1
                return
            self.waiting_for_keyframe = False
        if len(self._frames) >= self._max_queue:
            if self.kind == "video":
                self.dropped += len(self._frames)
                self._frames.clear()
                if not frame.keyframe:
                    self.dropped += 1
                    self.waiting_for_keyframe = True
                    if self._on_keyframe_needed is not None:
                        self._on_keyframe_needed()
                    return
            else:
                self._frames.popleft()
                self.dropped += 1
        self._frames.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> av.Packet:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame = self._frames.popleft()
        packet = av.Packet(frame.data)
        packet.pts = self._timeline.map(frame)
        packet.time_base = fractions.Fraction(1, frame.clock_rate)
        self.forwarded += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self._frames.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def aiortc_internals_problems() -> list[str]:
    """What this module relies on and the installed aiortc lacks (empty when all is there)."""
    import inspect

    from aiortc.codecs.opus import OpusEncoder
    from aiortc.codecs.vpx import Vp8Encoder

    problems: list[str] = []
    if aiortc.__version__ != PINNED_AIORTC_VERSION:
        problems.append(f"aiortc {aiortc.__version__} != pinned {PINNED_AIORTC_VERSION}")
    handle = inspect.getsource(RTCRtpReceiver._handle_rtp_packet)
    if "self.__decoder_queue.put((codec, encoded_frame))" not in handle:
        problems.append("RTCRtpReceiver._handle_rtp_packet no longer feeds __decoder_queue")
    init = inspect.getsource(RTCRtpReceiver.__init__)
    for name in ("self.__decoder_queue", "self.__decoder_thread", "self.__rtx_ssrc"):
        if name not in init:
            problems.append(f"RTCRtpReceiver has no {name}")
    receive = inspect.getsource(RTCRtpReceiver.receive)
    if "self.__decoder_queue" not in receive:
        problems.append("RTCRtpReceiver.receive no longer hands __decoder_queue to the thread")
    if not hasattr(RTCRtpReceiver, "_send_rtcp_pli"):
        problems.append("RTCRtpReceiver._send_rtcp_pli is gone")
    rtcp = inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    if "self._send_keyframe()" not in rtcp:
        problems.append("RTCRtpSender no longer calls _send_keyframe() on PLI/FIR")
    encoded = inspect.getsource(RTCRtpSender._next_encoded_frame)
    if "self.__encoder.pack(data)" not in encoded:
        problems.append("RTCRtpSender no longer packs av.Packet from its track")
    for encoder in (Vp8Encoder, OpusEncoder):
        if "pack" not in vars(encoder):
            problems.append(f"{encoder.__name__}.pack is gone")
    if "_codecs" not in inspect.getsource(RTCRtpTransceiver.__init__):
        problems.append("RTCRtpTransceiver._codecs is gone")
    return problems
