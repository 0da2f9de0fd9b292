"""A call's whole record as its archive page shows it: the call, its transitions, who was
present, the chat, the location track, snapshots, photos and the recording's segments, each
with its time, so the page can line them up with the recording as it plays.

Read only after a justified view is opened (server/actions/record_views.py); the stored files
themselves are fetched one by one with the view's token. A file deleted when its retention ended
is listed with its hash and ``purged_at`` (server/actions/retention.py).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from server.actions.participants import participants_of
from server.core.services import Services
from server.db.models import (
    AuditEntry,
    Call,
    CallPhoto,
    CallTransition,
    ChatMessage,
    LocationSample,
    Recording,
    Snapshot,
    User,
)

# The chain's entries that put a staff member on the call while it ran (a supervisor who
# listened in is entered as call_joined by the console's join).
PRESENT_ACTIONS = ("call_answered", "call_joined", "call_transferred", "snapshot_taken")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def load_record(services: Services, call: Call) -> dict[str, Any]:
    """The record of ``call`` (already checked against the reader's archive)."""
    subject = f"call:{call.id}"
    async with services.db.session() as session:
        transitions = (
            await session.exec(
                select(CallTransition)
                .where(col(CallTransition.call_id) == call.id)
                .order_by(col(CallTransition.at), col(CallTransition.id))
            )
        ).all()
        chat = (
            await session.exec(
                select(ChatMessage)
                .where(col(ChatMessage.call_id) == call.id)
                .order_by(col(ChatMessage.seq))
            )
        ).all()
        track = (
            await session.exec(
                select(LocationSample)
                .where(col(LocationSample.call_id) == call.id)
                .order_by(col(LocationSample.measured_at), col(LocationSample.seq))
            )
        ).all()
        snapshots = (
            await session.exec(
                select(Snapshot).where(col(Snapshot.call_id) == call.id).order_by(col(Snapshot.at))
            )
        ).all()
        photos = (
            await session.exec(
                select(CallPhoto)
                .where(col(CallPhoto.call_id) == call.id)
                .order_by(col(CallPhoto.seq))
            )
        ).all()
        segments = (
            await session.exec(
                select(Recording)
                .where(col(Recording.call_id) == call.id)
                .order_by(col(Recording.segment))
            )
        ).all()
        present_entries = (
            await session.exec(
                select(AuditEntry.actor, AuditEntry.at)
                .where(
                    col(AuditEntry.action).in_(PRESENT_ACTIONS),
                    col(AuditEntry.subject) == subject,
                )
                .order_by(col(AuditEntry.seq))
            )
        ).all()
        staff_ids = {m.sender_user_id for m in chat if m.sender_user_id is not None}
        staff_ids |= {s.taken_by for s in snapshots}
        if call.operator_id is not None:
            staff_ids.add(call.operator_id)
        first_seen = {name: at for name, at in reversed(present_entries)}
        users = (
            await session.exec(
                select(User).where(
                    (col(User.id).in_(staff_ids)) | (col(User.username).in_(first_seen))
                )
            )
        ).all()
    names = {u.id: u.username for u in users}
    stays = await participants_of(services, call.id)
    present = [
        {"username": u.username, "role": u.role, "since": _iso(first_seen.get(u.username))}
        for u in sorted(users, key=lambda u: (first_seen.get(u.username) is None, u.username))
    ]
    return {
        "call": {
            "call_id": call.id,
            "channel": call.channel,
            "mode": call.mode,
            "language": call.language,
            "state": call.state,
            "operator": names.get(call.operator_id) if call.operator_id else None,
            "disposition": call.disposition,
            "note": call.note,
            "marks": [m for m in call.marks.split(",") if m],
            "created_at": _iso(call.created_at),
            "answered_at": _iso(call.answered_at),
            "ended_at": _iso(call.ended_at),
        },
        "transitions": [
            {
                "from": t.from_state,
                "to": t.to_state,
                "actor": t.actor,
                "reason": t.reason,
                "at": _iso(t.at),
            }
            for t in transitions
        ],
        "present": present,
        # Who was on the call's media and chat from when to when (a transfer's target, a
        # conference's guest): server/actions/participants.py.
        "participants": [stay.model_dump(mode="json") for stay in stays],
        "chat": [
            {
                "seq": m.seq,
                "sender": m.sender,
                "name": names.get(m.sender_user_id) if m.sender_user_id else None,
                "body": m.body,
                "at": _iso(m.at),
            }
            for m in chat
        ],
        "track": [
            {
                "lat": s.lat,
                "lon": s.lon,
                "accuracy_m": s.accuracy_m,
                "at": _iso(s.measured_at),
            }
            for s in track
        ],
        "snapshots": [
            {
                "id": s.id,
                "at": _iso(s.at),
                "sha256": s.sha256,
                "taken_by": names.get(s.taken_by),
                "purged_at": _iso(s.purged_at),
            }
            for s in snapshots
        ],
        "photos": [
            {
                "seq": p.seq,
                # A video clip is kept beside the photos (server/actions/call_events.py).
                "kind": "video" if p.content_type.startswith("video/") else "photo",
                "content_type": p.content_type,
                "at": _iso(p.at),
                "sha256": p.sha256,
                "width": p.width,
                "height": p.height,
                "purged_at": _iso(p.purged_at),
            }
            for p in photos
        ],
        "segments": [
            {
                "segment": r.segment,
                "started_at": _iso(r.started_at),
                "ended_at": _iso(r.ended_at),
                "size_bytes": r.size_bytes,
                "sha256": r.sha256,
                "recovered": r.recovered,
                "purged_at": _iso(r.purged_at),
            }
            for r in segments
        ],
    }
