"""Evidence from the media layer: each closed recording segment is stored with its SHA-256 and
entered in the audit chain, in one transaction; staff who may see a call read its segments."""

from __future__ import annotations

from sqlmodel import col, select

from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment
from server.core.services import Services
from server.core.storage import check_key
from server.db.models import Call, Recording


async def record_segment(
    services: Services, segment: ClosedSegment, *, media_node: str | None = None
) -> bool:
    """Store it; False when that segment of the call is already stored (a re-sent report).
    What could not be stored is counted (``telemetry.segment_not_stored``) before it is raised.

    Raises:
        AppError: ``SEGMENT_CONFLICT``, two files claim one segment number of the call: the
            second is not stored (its file stays on disk, and the log says).
    """
    try:
        stored = await _store(services, segment, media_node)
    except AppError as exc:
        conflict = exc.code is ErrorCode.SEGMENT_CONFLICT
        services.telemetry.segment_not_stored("conflict" if conflict else "error")
        raise
    except Exception:
        services.telemetry.segment_not_stored("error")
        raise
    if stored:
        services.telemetry.segment_stored()
    return stored


async def _store(services: Services, segment: ClosedSegment, media_node: str | None) -> bool:
    audit = services.audit
    async with services.db.session() as session:
        stored = (
            await session.exec(
                select(Recording).where(
                    col(Recording.call_id) == segment.call_id,
                    col(Recording.segment) == segment.segment,
                )
            )
        ).first()
    if stored is not None:
        if stored.sha256 != segment.sha256:
            raise AppError(
                ErrorCode.SEGMENT_CONFLICT,
                # Not the call's id: the media node logs this, and it may be a hidden call.
                f"segment {segment.segment} of this call is stored with another hash",
            )
        return False
    async with audit.transaction() as session:
        session.add(
            Recording(
                call_id=segment.call_id,
                segment=segment.segment,
                path=check_key(segment.key),
                media_node=media_node or services.settings.NODE_ID,
                started_at=segment.started_at,
                ended_at=segment.ended_at,
                size_bytes=segment.size_bytes,
                sha256=segment.sha256,
            )
        )
        await audit.record(
            session,
            actor="system:recorder",
            action="recording_segment_closed",
            subject=f"call:{segment.call_id}",
            data={
                "segment": segment.segment,
                "sha256": segment.sha256,
                "size_bytes": segment.size_bytes,
                "video_frames": segment.video_frames,
                "audio_frames": segment.audio_frames,
            },
        )
    return True


async def view_recording(
    services: Services, call: Call, segment: int, staff: StaffContext
) -> Recording:
    """A stored segment of the call (already checked: its operator or a supervisor); every
    view is audited, as a snapshot's is."""
    async with services.db.session() as session:
        stored = (
            await session.exec(
                select(Recording).where(
                    col(Recording.call_id) == call.id, col(Recording.segment) == segment
                )
            )
        ).first()
    if stored is None:
        raise AppError(ErrorCode.RECORDING_NOT_FOUND, "No such segment of this call's recording")
    await services.audit.append(
        actor=staff.username,
        action="recording_viewed",
        subject=f"call:{call.id}",
        data={"segment": stored.segment, "sha256": stored.sha256},
    )
    return stored
