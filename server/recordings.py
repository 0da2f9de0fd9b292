"""Evidence from the media layer: each closed recording segment is stored with its SHA-256 and
entered in the audit chain, in one transaction."""

from __future__ import annotations

from aiohttp import web

from media.hub import ClosedSegment
from server.db.models import Recording
from server.keys import AUDIT_KEY, SETTINGS_KEY


async def record_segment(app: web.Application, segment: ClosedSegment) -> None:
    audit = app[AUDIT_KEY]
    async with audit.transaction() as session:
        session.add(
            Recording(
                call_id=segment.call_id,
                segment=segment.segment,
                path=str(segment.path),
                media_node=app[SETTINGS_KEY].NODE_ID,
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
