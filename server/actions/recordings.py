"""Evidence from the media layer: each closed recording segment is stored with its SHA-256 and
entered in the audit chain, in one transaction; a segment a dead process left open, closed
after it, is entered as recovered after a crash; a recording that failed is entered as
``recording_failed`` with its cause (as NENA i3's RecordingFailed), so no gap in a recording
goes unexplained. Staff play them from the call's record (server/actions/record_views.py)."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import col, select

from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment, RecordingFailure
from server.core.services import Services
from server.core.storage import check_key
from server.db.models import Recording

log = logging.getLogger(__name__)

RECOVERED_AFTER = "a crash"  # what a recovered segment's chain entry says it was recovered after


async def record_segment(
    services: Services, segment: ClosedSegment, *, media_node: str | None = None
) -> bool:
    """Store it; False when that segment of the call is already stored (a re-sent report).
    What could not be stored is counted (``telemetry.segment_not_stored``) before it is raised.

    Raises:
        AppError: ``SEGMENT_CONFLICT``, two files claim one segment number of the call: the
            second is not stored (its file stays on disk; the log and a ``recording_failed``
            entry say so).
    """
    try:
        stored = await _store(services, segment, media_node)
    except AppError as exc:
        conflict = exc.code is ErrorCode.SEGMENT_CONFLICT
        services.telemetry.segment_not_stored("conflict" if conflict else "error")
        if conflict:
            await record_failure(
                services,
                RecordingFailure(
                    call_id=segment.call_id,
                    segment=segment.segment,
                    stage="storing",
                    cause=exc.message,
                    log_as=segment.log_as,
                ),
                media_node=media_node,
            )
        raise
    except Exception:
        services.telemetry.segment_not_stored("error")
        raise
    if stored:
        services.telemetry.segment_stored()
        if segment.recovered is not None:
            services.telemetry.segment_recovered()
    return stored


async def record_failure(
    services: Services, failure: RecordingFailure, *, media_node: str | None = None
) -> None:
    """Enter a failed recording in the chain and log it: the gap it leaves is explained."""
    node = media_node or services.settings.NODE_ID
    log.error(
        "recording failed",
        extra={
            "call_id": failure.log_as or failure.call_id,
            "segment": failure.segment,
            "stage": failure.stage,
            "cause": failure.cause,
            "media_node": node,
        },
    )
    await services.audit.append(
        actor="system:recorder",
        action="recording_failed",
        subject=f"call:{failure.call_id}",
        data={
            "segment": failure.segment,
            "stage": failure.stage,
            "cause": failure.cause,
            "media_node": node,
        },
    )
    services.telemetry.recording_failed(failure.stage)


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
    recovery = segment.recovered
    reporter = media_node or services.settings.NODE_ID
    data: dict[str, Any] = {
        "segment": segment.segment,
        "sha256": segment.sha256,
        "size_bytes": segment.size_bytes,
        "video_frames": segment.video_frames,
        "audio_frames": segment.audio_frames,
    }
    if recovery is not None:
        data |= {
            "recovered_after": RECOVERED_AFTER,
            "writer": recovery.writer,
            "recovered_by": recovery.recovered_by,
            "playable_sha256": recovery.playable_sha256,
            "playable_size_bytes": recovery.playable_size_bytes,
        }
    async with audit.transaction() as session:
        session.add(
            Recording(
                call_id=segment.call_id,
                segment=segment.segment,
                path=check_key(segment.key),
                # A recovered segment's node is the one that wrote it, not the one that found it.
                media_node=(recovery.writer if recovery is not None else "") or reporter,
                started_at=segment.started_at,
                ended_at=segment.ended_at,
                size_bytes=segment.size_bytes,
                sha256=segment.sha256,
                recovered=recovery is not None,
                playable_path=(
                    check_key(recovery.playable_key)
                    if recovery is not None and recovery.playable_key
                    else None
                ),
                playable_sha256=recovery.playable_sha256 if recovery is not None else None,
                playable_size_bytes=(
                    recovery.playable_size_bytes if recovery is not None else None
                ),
            )
        )
        await audit.record(
            session,
            actor="system:recorder",
            action=(
                "recording_segment_recovered"
                if recovery is not None
                else "recording_segment_closed"
            ),
            subject=f"call:{segment.call_id}",
            data=data,
        )
    return True
