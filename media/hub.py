"""The node's media hub: one MediaSession per call, what the server and signaling call."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from config import Settings
from media import ice
from media.admission import Admission
from media.disk_space import CHECK_EVERY_SECS, DiskSpace
from media.recovery import describe, recover
from media.segment_claims import Claim, SegmentClaims
from media.session import CITIZEN, MediaConfig, MediaSession
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment, RecordingFailure, RecordingState
from server.core.storage import OPEN_SEGMENTS, RECORDINGS

__all__ = ["CITIZEN", "MediaHub"]

logger = logging.getLogger(__name__)

# How often a media node looks for segments that dead processes left open, after the look it
# takes when it starts (a node that died and never came back is recovered by the others).
RECOVERY_SWEEP_SECS = 60.0


class MediaHub:
    """One per media node. Holds a MediaSession per call.

    What it refuses on purpose it raises as ``AppError`` with a media code (``MEDIA_BUSY``,
    ``NO_MEDIA``, ``NO_VIDEO``, ``INVALID_SDP``, ``INVALID_CANDIDATE``); any other exception is
    a bug, and media/rpc.py answers it as ``MEDIA_FAILED``.

    ``ice_servers``: the STUN and TURN servers of its own peer connections (a TURN entry without
    credentials of its own is the pages', left out: ``ice.node_ice_servers``).
    ``media_addresses``: the only addresses gathered and announced (empty: aioice's choice,
    every interface but loopback). ``peer_networks``: remote candidates outside them are
    dropped (empty: any IP address; a hostname candidate is always dropped). ``port_range``:
    the (lowest, highest) UDP port its ICE sockets bind (None: the kernel's choice); when all
    are taken, an offer is refused with ``MEDIA_BUSY``.

    ``on_segment_closed`` gets every closed segment, its own and those it recovers; whoever
    stores one calls ``release`` (its claim is kept until then, so a crash before that loses
    nothing). ``on_recording_failed`` gets every failure. ``node_id``: its media node id,
    written into its segments' claims (under ``claims_dir``, default ``open-segments`` beside
    ``recordings_dir``).

    ``min_free_bytes``: below this much free space on the recordings volume every call's
    recording pauses (0: never); ``on_recording_state`` is told per call when it pauses and
    resumes (media/disk_space.py).
    """

    def __init__(
        self,
        *,
        recordings_dir: Path,
        ice_servers: list[dict[str, Any]],
        media_addresses: list[str],
        peer_networks: list[str],
        on_segment_closed: Callable[[ClosedSegment], Awaitable[None]],
        segment_secs: float = 60.0,
        clock: Clock,
        admission: Admission | None = None,
        port_range: tuple[int, int] | None = None,
        on_recording_failed: Callable[[RecordingFailure], Awaitable[None]] | None = None,
        node_id: str = "",
        claims_dir: Path | None = None,
        min_free_bytes: int = 0,
        on_recording_state: Callable[[RecordingState], Awaitable[None]] | None = None,
    ) -> None:
        if segment_secs <= 0:
            raise ValueError("segment_secs must be positive")
        self.claims = SegmentClaims(
            claims_dir or recordings_dir.parent / OPEN_SEGMENTS, writer=node_id
        )
        self._config = MediaConfig(
            recordings_dir=recordings_dir,
            ice_servers=ice.node_ice_servers(ice_servers),
            media_addresses=list(media_addresses),
            peer_networks=ice.parse_networks(peer_networks),
            segment_secs=segment_secs,
            claims=self.claims,
            ports=ice.PortRange(*port_range) if port_range is not None else None,
        )
        self._clock = clock
        self._on_segment_closed = on_segment_closed
        self._on_recording_failed = on_recording_failed
        self._sessions: dict[str, MediaSession] = {}
        self.admission = admission
        self._recovering = asyncio.Lock()
        self._unrecoverable: set[str] = set()  # keys whose recovery failed in this process
        self._tasks: set[asyncio.Task[Any]] = set()
        self.disk = DiskSpace(recordings_dir, min_free_bytes=min_free_bytes)
        self._on_recording_state = on_recording_state
        self._told_paused: dict[str, bool] = {}  # per call, what the node was last told

    def _session(self, call_id: str) -> MediaSession:
        try:
            return self._sessions[call_id]
        except KeyError:
            raise AppError(ErrorCode.NO_MEDIA, "No media from the caller yet") from None

    def has_session(self, call_id: str) -> bool:
        return call_id in self._sessions

    def log_name(self, call_id: str) -> str:
        """How the logs name a call: as its session does; a call without one, not at all (it
        may be an internal-security call, whose id is never logged)."""
        session = self._sessions.get(call_id)
        return session.log_name if session is not None else "(no session)"

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    @property
    def totals(self) -> Counter[str]:
        """Its recording counts since it started: segments_written, segments_failed,
        frames_dropped (what its load reports carry to its node's metrics)."""
        return self._config.totals

    async def citizen_offer(
        self, call_id: str, sdp: str, *, first_segment: int = 1, log_name: str = ""
    ) -> str:
        """Answer the citizen's offer (opening the call's session); a second offer replaces
        the citizen's peer and starts a new recording segment. ``first_segment``: the number a
        new session's recording starts at (the call's media moved here); ``log_name``: how a
        new session's logs name the call (empty: by its id).

        Raises:
            AppError: ``INVALID_SDP``, the offer is unusable (no VP8 video or Opus audio,
                malformed); ``MEDIA_BUSY``, the node is overloaded and takes no new session (a
                call that has one keeps it: its reconnect is always answered), or no port of
                its range is free (then a reconnect too).
        """
        session = self._sessions.get(call_id)
        if session is not None:
            return await session.citizen_offer(sdp)
        if self.admission is not None and not self.admission.admit(len(self._sessions)):
            raise AppError(ErrorCode.MEDIA_BUSY, "This media node takes no new calls now")
        session = MediaSession(
            call_id,
            config=self._config,
            clock=self._clock,
            on_segment_closed=self._on_segment_closed,
            on_recording_failed=self._recording_failed,
            first_segment=first_segment,
            log_name=log_name,
        )
        self._sessions[call_id] = session
        if self.disk.low:
            session.recording.pause()  # the next disk check tells the node
        try:
            return await session.citizen_offer(sdp)
        except BaseException:
            if self._sessions.get(call_id) is session and not session.has_peers:
                del self._sessions[call_id]
                await session.close()
            raise

    async def subscriber_offer(
        self, call_id: str, subscriber_id: str, sdp: str, *, talk: bool
    ) -> str:
        """Answer an operator's (``talk``: their audio goes to the citizen) or a monitor's
        offer; it receives the citizen's video and audio.

        Raises:
            AppError: ``NO_MEDIA``, the call has no media session; ``INVALID_SDP``, the offer
                is unusable; ``MEDIA_BUSY``, no port of the node's range is free.
        """
        if subscriber_id == CITIZEN:
            raise AppError(ErrorCode.INVALID, f"{CITIZEN!r} is not a subscriber id")
        return await self._session(call_id).subscriber_offer(subscriber_id, sdp, talk=talk)

    async def add_candidate(
        self,
        call_id: str,
        peer: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        """A trickled remote candidate for ``peer`` ("citizen" or a subscriber id).

        Raises:
            AppError: ``NO_MEDIA``, the call has no media session; ``INVALID_CANDIDATE``, the
                candidate does not parse.
        """
        session = self._sessions.get(call_id)
        if session is None:
            raise AppError(ErrorCode.NO_MEDIA, "Send the offer first")
        await session.add_candidate(peer, candidate, sdp_mid, sdp_mline_index)

    async def snapshot(self, call_id: str) -> bytes:
        """A JPEG of the citizen's current picture.

        Raises:
            AppError: ``NO_VIDEO``, no session, or no picture yet.
        """
        session = self._sessions.get(call_id)
        if session is None:
            raise AppError(ErrorCode.NO_VIDEO, "No picture from the caller yet")
        return await session.snapshot()

    async def thumbnail(self, call_id: str) -> bytes:
        """The wall's small JPEG of the citizen's picture.

        Raises:
            AppError: ``NO_VIDEO``, no session, or no picture yet.
        """
        session = self._sessions.get(call_id)
        if session is None:
            raise AppError(ErrorCode.NO_VIDEO, "No picture from the caller yet")
        return await session.thumbnail()

    def set_barging(self, call_id: str, subscriber_id: str, on: bool) -> None:
        """Raises: AppError ``NO_MEDIA``, no session or no such monitor."""
        self._session(call_id).set_barging(subscriber_id, on)

    async def remove_subscriber(self, call_id: str, subscriber_id: str) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            await session.remove_subscriber(subscriber_id)

    async def end_call(self, call_id: str) -> list[ClosedSegment]:
        """Close every peer and the last segment; returns all the call's segments."""
        session = self._sessions.pop(call_id, None)
        self._told_paused.pop(call_id, None)
        if session is None:
            return []
        return await session.close()

    def stats(self, call_id: str) -> dict[str, Any]:
        """Frames received, forwarded, dropped and recorded per track.

        Raises:
            AppError: ``NO_MEDIA``, the call has no media session.
        """
        return self._session(call_id).stats()

    # -- the recording volume's free space --------------------------------------------------

    @property
    def paused_count(self) -> int:
        """Calls whose recording is paused for want of disk space."""
        return sum(1 for s in self._sessions.values() if s.recording.paused)

    def watch_disk(self) -> None:
        """Look at the recording volume's free space every ``CHECK_EVERY_SECS``."""
        self._spawn(self._watch_disk())

    async def _watch_disk(self) -> None:
        while True:
            try:
                await self.check_disk()
            except Exception:
                logger.exception("checking the recording volume failed")
            await self._clock.sleep(CHECK_EVERY_SECS)

    async def check_disk(self) -> None:
        """Pause every call's recording below the floor, resume it above; tell the node of
        each call whose state changed. Logged once per change of the volume, not per look."""
        was_low = self.disk.low
        reading = self.disk.read()
        if reading is None:
            return
        if reading.low != was_low:
            logger.warning(
                "recording volume low: recording paused"
                if reading.low
                else "recording volume has space again: recording resumed",
                extra={
                    "free_bytes": reading.free_bytes,
                    "min_free_bytes": self.disk.min_free_bytes,
                    "calls": len(self._sessions),
                },
            )
        for session in list(self._sessions.values()):
            recording = session.recording
            segment: int | None = None
            if reading.low and not recording.paused:
                segment = recording.pause()
            elif not reading.low and recording.paused:
                recording.resume()
            # A new session reports its state once, recording or not: a call whose media moved
            # here from a node that had paused it must not stay "not recording" on every screen.
            if self._told_paused.get(session.call_id) == reading.low:
                continue
            self._told_paused[session.call_id] = reading.low
            await self._tell_state(
                RecordingState(
                    call_id=session.call_id,
                    recording=not reading.low,
                    free_bytes=reading.free_bytes,
                    min_free_bytes=self.disk.min_free_bytes,
                    segment=segment,
                    log_as=session.log_name if session.log_name != session.call_id else "",
                )
            )

    async def _tell_state(self, state: RecordingState) -> None:
        if self._on_recording_state is None:
            return
        try:
            await self._on_recording_state(state)
        except Exception:
            logger.exception("reporting a paused or resumed recording failed")

    # -- claims and recovery -----------------------------------------------------------------

    def release(self, segment: ClosedSegment) -> None:
        """The node stored ``segment`` (or refused it for good): its claim is given up."""
        self.claims.release(segment.key)

    def start_recovery(self) -> None:
        """Close what dead processes left open now, then every ``RECOVERY_SWEEP_SECS``."""
        self._spawn(self._sweep())

    async def _sweep(self) -> None:
        while True:
            try:
                await self.recover_abandoned()
            except Exception:
                logger.exception("looking for abandoned recording segments failed")
            await self._clock.sleep(RECOVERY_SWEEP_SECS)

    async def recover_abandoned(self) -> int:
        """Close every segment whose writer died (media/recovery.py) and report it as a closed
        segment, or as a failure when nothing of it can be kept; returns how many."""
        async with self._recovering:
            outcomes = await asyncio.to_thread(self._recover_all)
            for outcome in outcomes:
                if isinstance(outcome, ClosedSegment):
                    logger.warning(
                        "recording segment recovered after a crash",
                        extra={
                            "call_id": outcome.log_as or outcome.call_id,
                            "segment": outcome.segment,
                        },
                    )
                    try:
                        await self._on_segment_closed(outcome)
                    except Exception:
                        logger.exception("reporting a recovered segment failed")
                else:
                    await self._report_failure(outcome)
            return len(outcomes)

    def _recover_all(self) -> list[ClosedSegment | RecordingFailure]:
        outcomes: list[ClosedSegment | RecordingFailure] = []
        for claim in self.claims.abandoned():
            if claim.info.key in self._unrecoverable:
                self.claims.let_go(claim.info.key)
                continue
            outcomes.append(self._recover_one(claim))
        return outcomes

    def _recover_one(self, claim: Claim) -> ClosedSegment | RecordingFailure:
        info = claim.info
        root = self._config.recordings_dir.parent
        try:
            outcome = recover(claim, root=root, recovered_by=self.claims.writer)
        except Exception as exc:
            # Left on disk for another process to try; this one does not try again.
            logger.exception("recovering a recording segment failed")
            self._unrecoverable.add(info.key)
            self.claims.let_go(info.key)
            return RecordingFailure(
                call_id=info.call_id,
                segment=info.segment,
                stage="recovering",
                cause=describe(exc, info.call_id, info.log_as),
                log_as=info.log_as,
            )
        if isinstance(outcome, RecordingFailure):
            self.claims.release(info.key)  # nothing to keep: the failure is what is reported
        return outcome

    async def _recording_failed(self, failure: RecordingFailure) -> None:
        """A writer failed: report it, and close at once what it managed to write."""
        await self._report_failure(failure)
        if failure.stage == "writing":
            self._spawn(self.recover_abandoned())
            if "errno 28" in failure.cause:  # ENOSPC: the volume is full, pause every call now
                self._spawn(self.check_disk())

    async def _report_failure(self, failure: RecordingFailure) -> None:
        if self._on_recording_failed is None:
            return
        try:
            await self._on_recording_failed(failure)
        except Exception:
            logger.exception("reporting a recording failure failed")

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Node shutdown: close every session's peers and segments, together; then stop
        sweeping (what is still open is a later sweep's)."""
        if self.admission is not None:
            await self.admission.close()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        results = await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("closing media of call %s failed", session.log_name, exc_info=result)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def hub_from_settings(
    settings: Settings,
    *,
    on_segment_closed: Callable[[ClosedSegment], Awaitable[None]],
    on_recording_failed: Callable[[RecordingFailure], Awaitable[None]],
    clock: Clock,
    node_id: str,
    on_recording_state: Callable[[RecordingState], Awaitable[None]] | None = None,
) -> MediaHub:
    """A media node's hub as the settings make it, its admission control running (a node's
    own hub and a worker's are the same). Its claims are under STORAGE_DIR/open-segments,
    which every node sharing the storage sweeps."""
    admission = Admission(
        max_loop_lag_ms=settings.MEDIA_MAX_LOOP_LAG_MS,
        max_cpu_percent=settings.MEDIA_MAX_CPU_PERCENT,
        max_host_cpu_percent=settings.MEDIA_MAX_HOST_CPU_PERCENT,
        guaranteed_sessions=settings.MEDIA_GUARANTEED_SESSIONS,
        sustained_secs=settings.MEDIA_OVERLOAD_SUSTAINED_SECS,
    )
    admission.start()
    return MediaHub(
        recordings_dir=settings.storage_dir / RECORDINGS,
        ice_servers=settings.ICE_SERVERS,
        media_addresses=settings.MEDIA_ADDRESSES,
        peer_networks=settings.MEDIA_PEER_NETWORKS,
        on_segment_closed=on_segment_closed,
        segment_secs=settings.RECORDING_SEGMENT_SECS,
        clock=clock,
        admission=admission,
        port_range=settings.media_port_range,
        on_recording_failed=on_recording_failed,
        node_id=node_id,
        claims_dir=settings.storage_dir / OPEN_SEGMENTS,
        min_free_bytes=settings.RECORDING_MIN_FREE_MB * 1024 * 1024,
        on_recording_state=on_recording_state,
    )
