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
from media.session import CITIZEN, MediaConfig, MediaSession
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment
from server.core.storage import RECORDINGS

__all__ = ["CITIZEN", "MediaHub"]

logger = logging.getLogger(__name__)


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
    ) -> None:
        if segment_secs <= 0:
            raise ValueError("segment_secs must be positive")
        self._config = MediaConfig(
            recordings_dir=recordings_dir,
            ice_servers=ice.node_ice_servers(ice_servers),
            media_addresses=list(media_addresses),
            peer_networks=ice.parse_networks(peer_networks),
            segment_secs=segment_secs,
            ports=ice.PortRange(*port_range) if port_range is not None else None,
        )
        self._clock = clock
        self._on_segment_closed = on_segment_closed
        self._sessions: dict[str, MediaSession] = {}
        self.admission = admission

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
            first_segment=first_segment,
            log_name=log_name,
        )
        self._sessions[call_id] = session
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

    async def remove_subscriber(self, call_id: str, subscriber_id: str) -> None:
        session = self._sessions.get(call_id)
        if session is not None:
            await session.remove_subscriber(subscriber_id)

    async def end_call(self, call_id: str) -> list[ClosedSegment]:
        """Close every peer and the last segment; returns all the call's segments."""
        session = self._sessions.pop(call_id, None)
        if session is None:
            return []
        return await session.close()

    def stats(self, call_id: str) -> dict[str, Any]:
        """Frames received, forwarded, dropped and recorded per track.

        Raises:
            AppError: ``NO_MEDIA``, the call has no media session.
        """
        return self._session(call_id).stats()

    async def close(self) -> None:
        """Node shutdown: close every session's peers and segments, together."""
        if self.admission is not None:
            await self.admission.close()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        results = await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, BaseException):
                logger.error("closing media of call %s failed", session.log_name, exc_info=result)


def hub_from_settings(
    settings: Settings,
    *,
    on_segment_closed: Callable[[ClosedSegment], Awaitable[None]],
    clock: Clock,
) -> MediaHub:
    """A media node's hub as the settings make it, its admission control running (a node's
    own hub and a worker's are the same)."""
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
    )
