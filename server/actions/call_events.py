"""What happens inside a call: chat, live location, the caller's photos, the operator's
snapshots, and the replay a reconnecting page asks for.

Every event gets a per-call sequence number in the same transaction that stores it, and is sent
only after it is stored: the database, not the bus, is the record, and a page that reconnects
asks for what follows the last number it saw.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.queue import LIVE_STATES
from server.actions.staff_sessions import StaffContext
from server.actions.uploads import SniffedImage, sniff_image
from server.actions.video_clips import SniffedClip, sniff_clip
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.events import ChatMessageEvent, LocationEvent, PhotoEvent
from server.core.services import Services
from server.core.storage import photo_key, snapshot_key
from server.db.engine import Database
from server.db.models import (
    Call,
    CallPhoto,
    CallState,
    ChatMessage,
    LocationSample,
    Snapshot,
    User,
)
from server.state.ratelimit import Exceeded, parse_rules

REPLAY_LIMIT = 500
MEGABYTE = 1_048_576


@dataclass(frozen=True)
class StoredChat:
    message: ChatMessage
    duplicate: bool


async def next_seq_and_state(session: AsyncSession, call_id: str) -> tuple[int, str]:
    """The call's next sequence number, and its state, in the one UPDATE that takes it."""
    result = await session.exec(
        update(Call)
        .where(col(Call.id) == call_id, col(Call.state).in_(LIVE_STATES))
        .values(last_seq=col(Call.last_seq) + 1)
        .returning(col(Call.last_seq), col(Call.state))
    )
    row = result.one_or_none()
    if row is None:
        raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
    return int(row[0]), str(row[1])


# --- what the pages receive --------------------------------------------------------------------


def chat_event(message: ChatMessage, sender_name: str | None = None) -> ChatMessageEvent:
    return ChatMessageEvent(
        call_id=message.call_id,
        seq=message.seq,
        sender=message.sender,
        sender_name=sender_name,
        client_id=message.client_id,
        body=message.body,
        at=message.at,
    )


def location_event(sample: LocationSample) -> LocationEvent:
    return LocationEvent(
        call_id=sample.call_id,
        seq=sample.seq,
        lat=sample.lat,
        lon=sample.lon,
        accuracy=sample.accuracy_m,
        heading=sample.heading_deg,
        speed=sample.speed_mps,
        measured_at=sample.measured_at,
    )


def photo_event(photo: CallPhoto) -> PhotoEvent:
    return PhotoEvent(
        call_id=photo.call_id,
        kind="video" if photo.content_type.startswith("video/") else "photo",
        content_type=photo.content_type,
        seq=photo.seq,
        url=f"/api/calls/{photo.call_id}/photos/{photo.seq}",
        sha256=photo.sha256,
        width=photo.width,
        height=photo.height,
        at=photo.at,
    )


# --- chat ----------------------------------------------------------------------------------------


async def do_send_chat(
    services: Services,
    *,
    call_id: str,
    client_id: str,
    body: str,
    staff: StaffContext | None = None,
) -> StoredChat:
    """Store one chat message (the citizen's, or ``staff``'s) and send it to both sides; a
    resend (same client id) returns the stored one and sends nothing."""
    for _attempt in range(2):
        async with services.db.session() as session:
            existing = (
                await session.exec(
                    select(ChatMessage).where(
                        col(ChatMessage.call_id) == call_id, col(ChatMessage.client_id) == client_id
                    )
                )
            ).first()
            if existing is not None:
                return StoredChat(existing, duplicate=True)
            seq, _state = await next_seq_and_state(session, call_id)
            message = ChatMessage(
                call_id=call_id,
                seq=seq,
                sender="citizen" if staff is None else "operator",
                sender_user_id=None if staff is None else staff.user_id,
                client_id=client_id,
                body=body,
                at=services.clock.now(),
            )
            session.add(message)
            try:
                await session.commit()
            except IntegrityError:  # the same resend raced in on another connection
                await session.rollback()
                continue
        event = chat_event(message, None if staff is None else staff.username)
        await services.notifier.to_call(call_id, event)
        return StoredChat(message, duplicate=False)
    raise AppError(ErrorCode.CHAT_CONFLICT, "The message could not be stored; resend it")


# --- location ------------------------------------------------------------------------------------


async def store_location(
    db: Database,
    clock: Clock,
    *,
    call_id: str,
    lat: float,
    lon: float,
    accuracy: float | None,
    heading: float | None,
    speed: float | None,
    measured_ms: float,
) -> tuple[LocationSample, str]:
    """Store one fix; the sample and the call's state as it was stored. A fix sent again (the
    page resends what was not acknowledged, after the database came back) has the same time of
    measurement and place: the stored one is returned, not a second."""
    measured = datetime.fromtimestamp(measured_ms / 1000, UTC)
    async with db.session() as session:
        seq, state = await next_seq_and_state(session, call_id)
        stored = (
            await session.exec(
                select(LocationSample).where(
                    col(LocationSample.call_id) == call_id,
                    col(LocationSample.measured_at) == measured,
                    col(LocationSample.lat) == lat,
                    col(LocationSample.lon) == lon,
                )
            )
        ).first()
        if stored is not None:
            return stored, state
        sample = LocationSample(
            call_id=call_id,
            seq=seq,
            lat=lat,
            lon=lon,
            accuracy_m=accuracy,
            heading_deg=heading,
            speed_mps=speed,
            measured_at=measured,
            received_at=clock.now(),
        )
        session.add(sample)
        await session.commit()
    return sample, state


async def do_send_location(
    services: Services,
    *,
    call_id: str,
    channel: str,
    lat: float,
    lon: float,
    accuracy: float | None,
    heading: float | None,
    speed: float | None,
    measured_ms: float,
) -> int:
    """Store a fix and send it to the call's watchers (and to the queue while it waits)."""
    sample, state = await store_location(
        services.db,
        services.clock,
        call_id=call_id,
        lat=lat,
        lon=lon,
        accuracy=accuracy,
        heading=heading,
        speed=speed,
        measured_ms=measured_ms,
    )
    event = location_event(sample)
    await services.notifier.to_call_watchers(call_id, event)
    if state == CallState.QUEUED:
        # The queue shows where waiting callers are; an answered call's track goes only to
        # those watching it, not to every console of the channel.
        await services.notifier.to_queue(channel, event)
    return sample.seq


# --- photos and snapshots ----------------------------------------------------------------------


def _photo_limit(reason: str, over: Exceeded) -> AppError:
    return AppError(
        ErrorCode.PHOTO_LIMIT,
        f"{reason}. The call goes on: send the photo again in {over.retry_after_secs} s, or "
        "describe it in the chat.",
        data={"headers": {"Retry-After": str(over.retry_after_secs)}},
    )


async def check_photo_quota(services: Services, call: Call, size: int) -> None:
    """How many photos, and how many megabytes of them, a call may send per window (counted
    per call: its token opens only that call, on any node). Only the photo over it is refused
    (429, with Retry-After); the call itself goes on. A photo refused for its megabytes has
    used one of the count."""
    settings = services.settings
    over = await services.limits.take(
        parse_rules(settings.CALL_PHOTO_RATE_LIMIT), "call_photos", call.id
    )
    if over is not None:
        raise _photo_limit(f"Too many photos in this call: at most {over.rule}", over)
    megabytes = parse_rules(settings.CALL_PHOTO_MEGABYTES_LIMIT)
    in_bytes = [type(r)(r.amount * MEGABYTE, r.multiples, r.namespace) for r in megabytes]
    over = await services.limits.take_amount(in_bytes, "call_photo_bytes", call.id, size)
    if over is not None:
        rule = megabytes[in_bytes.index(over.rule)]
        raise _photo_limit(f"Too many megabytes of photos in this call: at most {rule}", over)


async def do_store_photo(services: Services, call: Call, data: bytes) -> PhotoEvent:
    """A photo the caller sent: within the call's quota, kept byte for byte (EXIF location
    included: it may matter to the case), hashed, numbered in the call's sequence and entered
    in the audit chain. Sniffed on the node's image pool, ahead of report photos."""
    await check_photo_quota(services, call, len(data))
    image = await services.image_pool.run(partial(sniff_image, data), urgent=True)
    return await _store_attachment(services, call, image, "call_photo_received")


async def do_store_clip(services: Services, call: Call, data: bytes) -> PhotoEvent:
    """A video clip the caller sent: beside the call's photos (the same table, quota, audit
    and replay; its ``content_type`` says video), kept byte for byte with its hash."""
    await check_photo_quota(services, call, len(data))
    clip = await sniff_clip(services, data)
    return await _store_attachment(services, call, clip, "call_clip_received")


async def _store_attachment(
    services: Services, call: Call, sniffed: SniffedImage | SniffedClip, action: str
) -> PhotoEvent:
    """A sniffed photo or clip: stored under its hash, numbered in the call's sequence, entered
    in the audit chain, then shown on both sides."""
    audit = services.audit
    async with audit.transaction() as session:
        seq, _state = await next_seq_and_state(session, call.id)
        key = photo_key(call.id, seq, sniffed.sha256, sniffed.extension)
        await asyncio.to_thread(services.storage.put, key, sniffed.data)
        photo = CallPhoto(
            call_id=call.id,
            seq=seq,
            path=key,
            content_type=sniffed.content_type,
            sha256=sniffed.sha256,
            size_bytes=len(sniffed.data),
            width=sniffed.width,
            height=sniffed.height,
            at=services.clock.now(),
        )
        session.add(photo)
        await audit.record(
            session,
            actor="citizen",
            action=action,
            subject=f"call:{call.id}",
            data={"seq": seq, "sha256": sniffed.sha256, "size_bytes": len(sniffed.data)},
        )
    event = photo_event(photo)
    await services.notifier.to_call(call.id, event)
    return event


async def view_photo(
    services: Services,
    call_id: str,
    seq: int,
    viewer: StaffContext | None,
    *,
    justified: Mapping[str, Any] | None = None,
) -> CallPhoto:
    """A stored photo of the call; a staff member's look at it is audited (from the archive,
    with the reason its record was opened for: ``justified``)."""
    async with services.db.session() as session:
        photo = (
            await session.exec(
                select(CallPhoto).where(
                    col(CallPhoto.call_id) == call_id, col(CallPhoto.seq) == seq
                )
            )
        ).first()
    if photo is None:
        raise AppError(ErrorCode.PHOTO_NOT_FOUND, "No such photo")
    if photo.purged_at is not None:
        raise AppError(
            ErrorCode.EVIDENCE_PURGED,
            "Deleted when its retention ended (the audit chain keeps its hash)",
        )
    if viewer is not None:
        await services.audit.append(
            actor=viewer.username,
            action="call_photo_viewed",
            subject=f"call:{call_id}",
            data={"seq": photo.seq, "sha256": photo.sha256, **(justified or {})},
        )
    return photo


async def do_take_snapshot(services: Services, call: Call, staff: StaffContext) -> Snapshot:
    """A still from the caller's video: written, hashed, and recorded (row + audit entry)."""
    jpeg = await services.media.snapshot(call.id)
    now = services.clock.now()
    digest = hashlib.sha256(jpeg).hexdigest()
    key = snapshot_key(call.id, now, digest)
    await asyncio.to_thread(services.storage.put, key, jpeg)
    audit = services.audit
    async with audit.transaction() as session:
        snapshot = Snapshot(
            call_id=call.id,
            taken_by=staff.user_id,
            path=key,
            sha256=digest,
            size_bytes=len(jpeg),
            at=now,
        )
        session.add(snapshot)
        await session.flush()
        await audit.record(
            session,
            actor=staff.username,
            action="snapshot_taken",
            subject=f"call:{call.id}",
            data={"sha256": digest, "snapshot_id": snapshot.id},
        )
    return snapshot


async def view_snapshot(
    services: Services,
    call: Call,
    snapshot_id: int,
    staff: StaffContext,
    *,
    justified: Mapping[str, Any] | None = None,
) -> Snapshot:
    """A snapshot of the call, for its operator or a supervisor (or, with ``justified``, the
    reason its record was opened from the archive for); every view is audited."""
    async with services.db.session() as session:
        snapshot = await session.get(Snapshot, snapshot_id)
    if snapshot is None or snapshot.call_id != call.id:
        raise AppError(ErrorCode.SNAPSHOT_NOT_FOUND, "No such snapshot")
    if snapshot.purged_at is not None:
        raise AppError(
            ErrorCode.EVIDENCE_PURGED,
            "Deleted when its retention ended (the audit chain keeps its hash)",
        )
    await services.audit.append(
        actor=staff.username,
        action="snapshot_viewed",
        subject=f"call:{call.id}",
        data={"snapshot_id": snapshot.id, "sha256": snapshot.sha256, **(justified or {})},
    )
    return snapshot


# --- replay ----------------------------------------------------------------------------------


async def events_since(
    services: Services, call_id: str, last_seq: int, *, locations: bool
) -> list[ChatMessageEvent | LocationEvent | PhotoEvent]:
    """Every stored event of the call after ``last_seq``, in sequence order, as the pages get
    them live (the citizen's page does not get its own track back: ``locations=False``)."""
    async with services.db.session() as session:
        chats = (
            await session.exec(
                select(ChatMessage)
                .where(col(ChatMessage.call_id) == call_id, col(ChatMessage.seq) > last_seq)
                .order_by(col(ChatMessage.seq))
                .limit(REPLAY_LIMIT)
            )
        ).all()
        photos = (
            await session.exec(
                select(CallPhoto)
                .where(col(CallPhoto.call_id) == call_id, col(CallPhoto.seq) > last_seq)
                .order_by(col(CallPhoto.seq))
            )
        ).all()
        places: list[LocationSample] = []
        if locations:
            newest = (
                await session.exec(
                    select(LocationSample)
                    .where(
                        col(LocationSample.call_id) == call_id, col(LocationSample.seq) > last_seq
                    )
                    .order_by(col(LocationSample.seq).desc())
                    .limit(REPLAY_LIMIT)
                )
            ).all()
            places = list(reversed(newest))
        # Who wrote each staff line: after a transfer two operators' lines are in one chat.
        writers = {m.sender_user_id for m in chats if m.sender_user_id is not None}
        names = dict(
            (
                await session.exec(
                    select(User.id, User.username).where(col(User.id).in_(list(writers)))
                )
            ).all()
            if writers
            else []
        )
    events: list[ChatMessageEvent | LocationEvent | PhotoEvent] = [
        *(chat_event(m, names.get(m.sender_user_id)) for m in chats),
        *(location_event(p) for p in places),
        *(photo_event(p) for p in photos),
    ]
    events.sort(key=lambda e: e.seq)
    return events
