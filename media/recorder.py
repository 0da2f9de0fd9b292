"""Stream-copy recording: the call's encoded frames muxed into Matroska segments, no encoding.

MediaRecorder re-encodes on the event loop and dropped three quarters of the frames under load
(docs/media.md); here every received frame is muxed as it is, by a thread per open segment fed
through a queue, so file IO never blocks the event loop. A segment starts on a video keyframe
(it must play on its own) and closes after ``segment_secs``, at call end, and when the citizen's
peer is replaced; then its SHA-256 goes to ``on_closed``.

Each segment is claimed before its file is opened (media/segment_claims.py) and its claim kept
until the node has stored it, so a segment whose process dies with it open, or before its
report got through, is found and closed by whichever media node sweeps next
(media/recovery.py). A writer that fails (an I/O error, a full disk) is reported to
``on_failed`` and its claim let go, so what it wrote is recovered, never silently lost.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Literal

import av

from media.passthrough import EncodedFrame
from media.recovery import describe, sha256_of
from media.segment_claims import Claim, SegmentClaims
from server.core.clock import Clock
from server.core.media_rpc import ClosedSegment, RecordingFailure
from server.core.storage import recording_key

logger = logging.getLogger(__name__)

Track = Literal["video", "audio", "operator_audio"]

# Matroska clusters are written when they close: one per second bounds what a crash loses.
# FFmpeg's interleaver holds packets until every stream has one, and the operator's track is
# empty until someone talks: max_interleave_delta lets it write anyway after half a second.
CONTAINER_OPTIONS = {
    "flush_packets": "1",
    "cluster_time_limit": "1000",
    "max_interleave_delta": "500000",
}
MS_TIME_BASE = fractions.Fraction(1, 1000)
MAX_QUEUED_FRAMES = 3000  # ~40 s of 30 fps video + Opus; only a stuck disk fills it
MAX_PENDING_AUDIO_FRAMES = 250  # 5 s of Opus kept while a segment waits for its keyframe
VIDEO_WAIT_SECS = 3.0  # audio waits this long for the first keyframe, then records alone
KEYFRAME_LEAD_SECS = 2.0  # ask for the next segment's keyframe this long before it is due
WRITE_BATCH_SECS = 0.2  # frames wait at most this long on the event loop before the thread
# After a writer fails (a full disk, say), the next segment is tried this long later, doubling
# up to the maximum while it keeps failing: each failure is a chain entry, never a flood of them.
RETRY_AFTER_FAILURE_SECS = 5.0
MAX_RETRY_AFTER_FAILURE_SECS = 60.0


@dataclass
class _WriterResult:
    size_bytes: int
    sha256: str
    counts: dict[Track, int]


@dataclass
class _Item:
    track: Track
    data: bytes
    pts_ms: int
    keyframe: bool


def vp8_size(keyframe: bytes) -> tuple[int, int]:
    """Width and height from a VP8 key frame header (RFC 6386 9.1)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        raise ValueError("not a VP8 key frame")
    width = int.from_bytes(keyframe[6:8], "little") & 0x3FFF
    height = int.from_bytes(keyframe[8:10], "little") & 0x3FFF
    return width, height


class _SegmentWriter:
    """One Matroska file, written by its own thread from a queue."""

    def __init__(
        self,
        path: Path,
        video_size: tuple[int, int] | None,
        loop: asyncio.AbstractEventLoop,
        take_claim: Callable[[], Claim],
    ) -> None:
        self.path = path
        self._video_size = video_size
        self._loop = loop
        self._take_claim = take_claim
        # Frames go to the thread in batches: waking it for every frame cost more CPU (lock
        # hand-offs and GIL contention) than the muxing itself.
        self._items: queue.Queue[list[_Item] | None] = queue.Queue()
        self._batch: list[_Item] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._queued = 0  # frames handed over and not yet muxed, roughly (read without a lock)
        self._muxed = 0
        self.done: asyncio.Future[_WriterResult] = loop.create_future()
        self._thread = threading.Thread(target=self._run, name=f"rec-{path.name}", daemon=True)
        self._thread.start()

    def write(self, item: _Item) -> bool:
        """Queue one frame; False (frame lost) when the disk has fallen far behind."""
        if self._queued - self._muxed >= MAX_QUEUED_FRAMES:
            return False
        self._batch.append(item)
        self._queued += 1
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_later(WRITE_BATCH_SECS, self._flush)
        return True

    def _flush(self) -> None:
        self._flush_handle = None
        if self._batch:
            batch, self._batch = self._batch, []
            self._items.put(batch)

    def finish(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._items.put(None)

    def _run(self) -> None:
        try:
            result = self._write_all()
        except Exception as exc:  # noqa: BLE001 - handed to the event loop, which logs it
            self._loop.call_soon_threadsafe(self._settle, None, exc)
            self._drain()
        else:
            self._loop.call_soon_threadsafe(self._settle, result, None)

    def _settle(self, result: _WriterResult | None, exc: BaseException | None) -> None:
        if self.done.done():
            return
        if exc is not None:
            self.done.set_exception(exc)
        else:
            assert result is not None
            self.done.set_result(result)

    def _drain(self) -> None:
        while self._items.get() is not None:
            pass

    def _write_all(self) -> _WriterResult:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        claim = self._take_claim()  # before the file: a file is never open unclaimed
        counts: dict[Track, int] = {"video": 0, "audio": 0, "operator_audio": 0}
        container = av.open(
            str(self.path), "w", format="matroska", container_options=CONTAINER_OPTIONS
        )
        try:
            streams = {}
            if self._video_size is not None:
                width, height = self._video_size
                streams["video"] = container.add_mux_stream(
                    "vp8", width=width, height=height, time_base=MS_TIME_BASE
                )
            # An Opus track needs its OpusHead (codec private data), which only an opened
            # libopus encoder writes; it never encodes anything here.
            for name in ("audio", "operator_audio"):
                stream = container.add_stream("libopus", rate=48000, layout="stereo")
                stream.time_base = MS_TIME_BASE
                stream.metadata["title"] = name
                streams[name] = stream
            if "video" in streams:
                streams["video"].metadata["title"] = "video"
            while (batch := self._items.get()) is not None:
                for item in batch:
                    packet = av.Packet(item.data)
                    packet.stream = streams[item.track]
                    packet.pts = packet.dts = item.pts_ms
                    packet.time_base = MS_TIME_BASE
                    packet.is_keyframe = item.keyframe
                    container.mux(packet)
                    counts[item.track] += 1
                self._muxed += len(batch)
        finally:
            container.close()
        sha256, size = sha256_of(self.path)
        try:
            claim.mark_closed(
                sha256=sha256,
                size_bytes=size,
                counts={str(track): n for track, n in counts.items()},
            )
        except OSError:
            # Still "open" on disk: should the report be lost, recovery hashes the file anew.
            logger.warning("segment claim not marked closed", exc_info=True)
        return _WriterResult(size, sha256, counts)


@dataclass
class _Anchor:
    source: int
    timestamp: int
    pts_ms: int


@dataclass
class _SegmentTimeline:
    """Per-track pts in ms from the RTP timestamps, each track anchored at its arrival.

    RTP timestamps of the tracks start at unrelated origins; anchoring each at the arrival
    time of its first frame in the segment lines them up to within network jitter.
    """

    origin: float
    anchors: dict[Track, _Anchor] = field(default_factory=dict)
    last: dict[Track, int] = field(default_factory=dict)

    def pts_ms(self, track: Track, frame: EncodedFrame) -> int:
        anchor = self.anchors.get(track)
        if anchor is None or anchor.source != frame.source:
            start = max(round((frame.arrival - self.origin) * 1000), self.last.get(track, -1) + 1)
            anchor = _Anchor(frame.source, frame.timestamp, start)
            self.anchors[track] = anchor
        pts = anchor.pts_ms + round((frame.timestamp - anchor.timestamp) * 1000 / frame.clock_rate)
        pts = max(pts, self.last.get(track, -1) + 1)  # the muxer needs strictly increasing
        self.last[track] = pts
        return pts


@dataclass
class _OpenSegment:
    number: int
    key: str
    has_video: bool
    writer: _SegmentWriter
    started_at: datetime
    timeline: _SegmentTimeline


class Recording:
    """A call's recording: the sequence of its segments and the counts that check them."""

    def __init__(
        self,
        *,
        call_id: str,
        directory: Path,
        clock: Clock,
        segment_secs: float,
        request_keyframe: Callable[[], None],
        on_closed: Callable[[ClosedSegment], Awaitable[None]],
        claims: SegmentClaims,
        on_failed: Callable[[RecordingFailure], Awaitable[None]] | None = None,
        first_segment: int = 1,
        log_name: str = "",
        totals: Counter[str] | None = None,
    ) -> None:
        """``directory``: ``recordings`` under the storage root (a segment's key is
        ``recordings/<call>/segment-NNNN.mkv``, its file that key under the root).
        ``first_segment``: a call whose media moved here (its node died) goes on numbering
        after the segments already stored. ``log_name``: how the logs name the call (never by
        its id, nor by a path holding it, when it is an internal-security call). ``totals``:
        the media node's counts, shared by its calls (segments_written, segments_failed,
        frames_dropped: its metrics). ``claims``: the media node's segment claims; a segment's
        is given up by whoever sees it stored (``claims.release``). ``on_failed``: told of a
        segment whose writer failed (its claim is then let go, for a sweep to recover)."""
        if first_segment < 1:
            raise ValueError("first_segment must be at least 1")
        self.call_id = call_id
        self.log_name = log_name or call_id
        self._directory = directory
        self._clock = clock
        self._segment_secs = segment_secs
        self._request_keyframe = request_keyframe
        self._on_closed = on_closed
        self._claims = claims
        self._on_failed = on_failed
        self._totals = totals if totals is not None else Counter()
        self._segment: _OpenSegment | None = None
        self._numbers = first_segment - 1
        self._has_video = True
        self._want_segment = False
        self._keyframe_asked_for_rotation = False
        self._pending_audio: deque[tuple[Track, EncodedFrame]] = deque(
            maxlen=MAX_PENDING_AUDIO_FRAMES
        )
        self._closing: list[asyncio.Task[ClosedSegment | None]] = []
        self._failures = 0  # writers failed in a row
        # Set while the recording volume is low on space (media/disk_space.py): no segment
        # opens, the call itself goes on.
        self.paused = False
        self._retry_at: float | None = None  # monotonic time before which no segment opens
        self.closed: list[ClosedSegment] = []
        self.counts: dict[str, int] = {
            "video_received": 0,
            "video_before_keyframe": 0,
            "audio_received": 0,
            "operator_audio_received": 0,
            "queued": 0,
            "lost_disk_behind": 0,
            "lost_writer_failed": 0,
            "lost_disk_low": 0,
        }

    @property
    def waiting_for_keyframe(self) -> bool:
        """True while a segment waits to start (or rotate) on the next video keyframe."""
        waiting_to_start = self._want_segment and (
            self._segment is None or not self._segment.has_video
        )
        return self._has_video and (waiting_to_start or self._keyframe_asked_for_rotation)

    def start(self, *, has_video: bool) -> None:
        """A citizen peer began: close what is open; its first keyframe (first audio when it
        has no video) opens the next segment."""
        self._close_current()
        self._pending_audio.clear()
        self._has_video = has_video
        self._want_segment = True
        if has_video:
            self._request_keyframe()

    def stop(self) -> None:
        """The citizen's peer ended: close the open segment; nothing is written until start()."""
        self._want_segment = False
        self._pending_audio.clear()
        self._close_current()

    def pause(self) -> int | None:
        """The disk is low: close the open segment (stored and hashed like any other), open
        none until ``resume``. Returns the number of the last segment begun (None: none yet)."""
        self.paused = True
        self._pending_audio.clear()
        self._close_current()
        return self._numbers or None

    def resume(self) -> None:
        """Space is back: the next keyframe opens the next segment (a new number, never a file
        that exists), and the pause after a failed writer is forgotten."""
        self.paused = False
        self._retry_at = None
        self._failures = 0
        if self._want_segment and self._has_video:
            self._request_keyframe()

    def on_frame(self, track: Track, frame: EncodedFrame) -> None:
        """Called on the event loop for every frame of the call, in arrival order."""
        self.counts[f"{track}_received"] += 1
        if self.paused:
            self.counts["lost_disk_low"] += 1
            return
        segment = self._segment
        if segment is not None and self._rotation_due(segment, frame, track):
            self._close_current()
            segment = None
        if segment is None:
            if not self._want_segment:
                if track == "video":
                    self.counts["video_before_keyframe"] += 1
                return
            if self._retry_at is not None:
                if self._clock.monotonic() < self._retry_at:
                    self.counts["lost_writer_failed"] += 1
                    return
                self._retry_at = None
                if self._has_video:
                    self._request_keyframe()  # the next segment starts on one
            if track == "video":
                if not frame.keyframe:
                    self.counts["video_before_keyframe"] += 1
                    return
                segment = self._open(frame)
            elif self._has_video and not self._video_overdue(frame):
                self._pending_audio.append((track, frame))
                return
            else:
                # No camera (or its video is late): audio must not wait for it.
                segment = self._open(frame)
        elif track == "video" and not segment.has_video:
            # The camera came (back): a Matroska file cannot gain a track, so cut here.
            if not frame.keyframe:
                self.counts["video_before_keyframe"] += 1
                return
            self._close_current()
            segment = self._open(frame)
        self._write(segment, track, frame)

    def _video_overdue(self, frame: EncodedFrame) -> bool:
        return bool(self._pending_audio) and (
            frame.arrival - self._pending_audio[0][1].arrival >= VIDEO_WAIT_SECS
        )

    def _rotation_due(self, segment: _OpenSegment, frame: EncodedFrame, track: Track) -> bool:
        age_secs = (self._clock.now() - segment.started_at).total_seconds()
        if segment.has_video:
            if age_secs >= self._segment_secs - KEYFRAME_LEAD_SECS:
                if not self._keyframe_asked_for_rotation:
                    self._keyframe_asked_for_rotation = True
                    self._request_keyframe()
                return track == "video" and frame.keyframe
            return False
        return age_secs >= self._segment_secs

    def _file(self, number: int) -> tuple[str, Path]:
        key = recording_key(self.call_id, number)
        return key, self._directory / self.call_id / PurePosixPath(key).name

    def _open(self, first: EncodedFrame) -> _OpenSegment:
        self._numbers += 1
        key, path = self._file(self._numbers)
        # Evidence is never overwritten: a moved call's files (and claims) stay.
        while path.exists() or self._claims.exists(self.call_id, self._numbers):
            self._numbers += 1
            key, path = self._file(self._numbers)
        self._keyframe_asked_for_rotation = False
        video_size = vp8_size(first.data) if first.kind == "video" else None
        origin = min([first.arrival] + [f.arrival for _, f in self._pending_audio])
        started_at = self._clock.now()
        take_claim = partial(
            self._claims.take,
            call_id=self.call_id,
            segment=self._numbers,
            key=key,
            started_at=started_at.isoformat(),
            log_as=self.log_name,
        )
        segment = _OpenSegment(
            number=self._numbers,
            has_video=video_size is not None,
            key=key,
            writer=_SegmentWriter(path, video_size, asyncio.get_running_loop(), take_claim),
            started_at=started_at,
            timeline=_SegmentTimeline(origin=origin),
        )
        segment.writer.done.add_done_callback(partial(self._writer_done, segment))
        self._segment = segment
        pending = list(self._pending_audio)
        self._pending_audio.clear()
        for track, frame in pending:
            self._write(segment, track, frame)
        return segment

    def _write(self, segment: _OpenSegment, track: Track, frame: EncodedFrame) -> None:
        item = _Item(track, frame.data, segment.timeline.pts_ms(track, frame), frame.keyframe)
        if segment.writer.write(item):
            self.counts["queued"] += 1
        else:
            self.counts["lost_disk_behind"] += 1
            self._totals["frames_dropped"] += 1
            logger.warning(
                "recording of call %s, segment %d: disk behind, frame lost",
                self.log_name,
                segment.number,
            )

    def _writer_done(self, segment: _OpenSegment, done: asyncio.Future[_WriterResult]) -> None:
        """A writer that fails while its segment is open: the segment is closed at once (its
        failure reported, what it wrote recovered) and the next one waits a while."""
        if done.cancelled() or done.exception() is None or self._segment is not segment:
            return
        self._close_current()
        self._failures += 1
        pause = RETRY_AFTER_FAILURE_SECS * 2 ** (self._failures - 1)
        self._retry_at = self._clock.monotonic() + min(pause, MAX_RETRY_AFTER_FAILURE_SECS)

    def _close_current(self) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        segment.writer.finish()
        ended_at = self._clock.now()
        self._closing = [task for task in self._closing if not task.done()]
        self._closing.append(asyncio.create_task(self._finish(segment, ended_at)))

    async def _finish(self, segment: _OpenSegment, ended_at: datetime) -> ClosedSegment | None:
        try:
            result = await segment.writer.done
        except Exception as exc:  # noqa: BLE001 - reported (recording_failed) and logged
            self._totals["segments_failed"] += 1
            cause = describe(exc, self.call_id, self.log_name)
            # The cause, not a traceback: its messages name the file, whose path holds the id.
            logger.error(
                "recording of call %s, segment %d failed: %s", self.log_name, segment.number, cause
            )
            # What it wrote is kept: its claim stays on disk, unlocked, for a sweep to close.
            self._claims.let_go(segment.key)
            await self._failed(
                RecordingFailure(
                    call_id=self.call_id,
                    segment=segment.number,
                    stage="writing",
                    cause=cause,
                    log_as=self.log_name,
                )
            )
            return None
        self._totals["segments_written"] += 1
        self._failures = 0
        closed = ClosedSegment(
            call_id=self.call_id,
            segment=segment.number,
            key=segment.key,
            path=segment.writer.path,
            started_at=segment.started_at,
            ended_at=ended_at,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            video_frames=result.counts["video"],
            audio_frames=result.counts["audio"],
            operator_audio_frames=result.counts["operator_audio"],
            log_as=self.log_name,
        )
        self.closed.append(closed)
        try:
            await self._on_closed(closed)
        except Exception:
            logger.exception(
                "on_segment_closed failed for call %s, segment %d", self.log_name, closed.segment
            )
        return closed

    async def _failed(self, failure: RecordingFailure) -> None:
        if self._on_failed is None:
            return
        try:
            await self._on_failed(failure)
        except Exception:
            logger.exception(
                "on_failed failed for call %s, segment %s", self.log_name, failure.segment
            )

    async def wait_closed(self) -> None:
        """Wait until every closed segment is hashed and reported."""
        closing, self._closing = self._closing, []
        if closing:
            await asyncio.gather(*closing)
