"""Calls: ``check_*`` validates and authorises, ``do_*`` writes (then the caller emits).

Every state change is an atomic conditional update plus a transition row, so two operators
accepting at once, on one node or two, leave exactly one winner. Events (chat, location) get a
per-call sequence number in the same transaction that stores them: the database, not the bus, is
the record, and a reconnecting client asks for what follows the last number it saw.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import (
    Call,
    CallState,
    CallTransition,
    Channel,
    ChatMessage,
    LocationSample,
    Role,
    User,
)
from server.security.tokens import new_token, token_hash
from signaling.events import CallSummary, ChatMessageEvent, LocationEvent

# Which channels each role may see: the internal-security channel is nobody else's.
CHANNELS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.OPERATOR: frozenset({Channel.POLICE}),
    Role.SUPERVISOR: frozenset({Channel.POLICE}),
    Role.INTERNAL_SECURITY: frozenset({Channel.INTERNAL_SECURITY}),
    Role.ADMIN: frozenset(),
}
LIVE_STATES = (CallState.QUEUED, CallState.ANSWERED)
REPLAY_LIMIT = 500


def channels_for(role: str) -> frozenset[str]:
    return CHANNELS_BY_ROLE.get(role, frozenset())


@dataclass(frozen=True)
class NewCall:
    call: Call
    token: str


@dataclass(frozen=True)
class StoredLocation:
    sample: LocationSample
    state: str  # the call's state as the sample was stored: queued calls show in the queue


@dataclass(frozen=True)
class StoredChat:
    message: ChatMessage
    duplicate: bool


def _summary(call: Call, operator: str | None, last: LocationSample | None) -> CallSummary:
    return CallSummary(
        call_id=call.id,
        channel=call.channel,
        mode=call.mode,
        language=call.language,
        state=call.state,
        created_at=call.created_at,
        answered_at=call.answered_at,
        operator=operator,
        lat=last.lat if last else None,
        lon=last.lon if last else None,
        accuracy=last.accuracy_m if last else None,
    )


async def _transition(
    session: AsyncSession,
    call_id: str,
    old: str | None,
    new: str,
    actor: str,
    now: datetime,
    reason: str = "",
) -> None:
    session.add(
        CallTransition(
            call_id=call_id, from_state=old, to_state=new, actor=actor, reason=reason, at=now
        )
    )


async def do_create_call(
    audit: AuditLog, clock: Clock, *, channel: str, mode: str, language: str, remote: str
) -> NewCall:
    token = new_token()
    now = clock.now()
    call = Call(
        id=str(uuid.uuid4()),
        channel=channel,
        mode=mode,
        language=language,
        state=CallState.QUEUED,
        token_hash=token_hash(token),
        created_at=now,
    )
    async with audit.transaction() as session:
        session.add(call)
        await session.flush()
        await _transition(session, call.id, None, CallState.QUEUED, "citizen", now)
        await audit.record(
            session,
            actor="citizen",
            action="call_created",
            subject=f"call:{call.id}",
            data={"channel": channel, "mode": mode, "remote": remote},
        )
    return NewCall(call, token)


async def call_by_token(db: Database, token: str) -> Call | None:
    async with db.session() as session:
        result = await session.exec(select(Call).where(col(Call.token_hash) == token_hash(token)))
        return result.first()


async def check_call_for_staff(
    db: Database, call_id: str, role: str, user_id: int, *, must_own: bool = False
) -> Call:
    """The call, if this staff member may see it (and, with ``must_own``, act on it).

    The channel filter is in the query itself: an internal-security call does not exist for
    anyone else, so the answer is the same "not found" as for a call that never was.
    """
    allowed = channels_for(role)
    async with db.session() as session:
        call = (
            await session.exec(
                select(Call).where(col(Call.id) == call_id, col(Call.channel).in_(allowed))
            )
        ).first()
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    if must_own and role != Role.SUPERVISOR and call.operator_id != user_id:
        raise AppError(ErrorCode.NOT_YOUR_CALL, "This call is another operator's")
    return call


async def do_accept(audit: AuditLog, clock: Clock, *, call_id: str, user: User) -> Call:
    """Answer a queued call: one conditional UPDATE, so exactly one operator wins."""
    now = clock.now()
    assert user.id is not None
    async with audit.transaction() as session:
        result = await session.exec(
            update(Call)
            .where(
                col(Call.id) == call_id,
                col(Call.state) == CallState.QUEUED,
                col(Call.channel).in_(channels_for(user.role)),
            )
            .values(state=CallState.ANSWERED, operator_id=user.id, answered_at=now)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.CALL_GONE, "The call was taken or has ended")
        await _transition(
            session, call_id, CallState.QUEUED, CallState.ANSWERED, user.username, now
        )
        await audit.record(
            session, actor=user.username, action="call_answered", subject=f"call:{call_id}"
        )
        call = await session.get(Call, call_id)
        assert call is not None
    return call


async def do_transfer(
    audit: AuditLog, clock: Clock, *, call_id: str, user: User, note: str = ""
) -> Call:
    """Give an answered call back to its queue (answered -> transferred -> queued): another
    operator takes it; its media and recording go on. Only its own operator may."""
    now = clock.now()
    async with audit.transaction() as session:
        result = await session.exec(
            update(Call)
            .where(
                col(Call.id) == call_id,
                col(Call.state) == CallState.ANSWERED,
                col(Call.operator_id) == user.id,
            )
            .values(state=CallState.QUEUED, operator_id=None, answered_at=None)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.CALL_CHANGED, "The call is not yours to transfer now")
        await _transition(
            session, call_id, CallState.ANSWERED, CallState.TRANSFERRED, user.username, now, note
        )
        await _transition(
            session, call_id, CallState.TRANSFERRED, CallState.QUEUED, user.username, now
        )
        await audit.record(
            session,
            actor=user.username,
            action="call_transferred",
            subject=f"call:{call_id}",
            data={"note": note} if note else None,
        )
        call = await session.get(Call, call_id)
        assert call is not None
    return call


async def do_finish(
    audit: AuditLog,
    clock: Clock,
    *,
    call_id: str,
    actor: str,
    disposition: str | None = None,
    note: str | None = None,
) -> tuple[Call, str | None]:
    """End a call: queued -> abandoned, answered -> ended. Returns the call and the state it
    left (None when it had ended already: then only the disposition is recorded)."""
    now = clock.now()
    async with audit.transaction() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
        old = call.state
        new = {CallState.QUEUED: CallState.ABANDONED, CallState.ANSWERED: CallState.ENDED}.get(
            CallState(old)
        )
        if new is not None:
            result = await session.exec(
                update(Call)
                .where(col(Call.id) == call_id, col(Call.state) == old)
                .values(state=new, ended_at=now)
            )
            if result.rowcount != 1:
                raise AppError(ErrorCode.CALL_CHANGED, "The call changed meanwhile; try again")
            await _transition(session, call_id, old, new, actor, now)
        if disposition is not None:
            await session.exec(
                update(Call)
                .where(col(Call.id) == call_id)
                .values(disposition=disposition, note=note or None)
            )
        await audit.record(
            session,
            actor=actor,
            action="call_finished",
            subject=f"call:{call_id}",
            data={"from": old, "to": new, "disposition": disposition},
        )
        await session.refresh(call)
    return call, (old if new is not None else None)


async def next_seq(session: AsyncSession, call_id: str) -> int:
    seq, _state = await next_seq_and_state(session, call_id)
    return seq


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


async def do_store_chat(
    db: Database,
    clock: Clock,
    *,
    call_id: str,
    sender: str,
    sender_user_id: int | None,
    client_id: str,
    body: str,
) -> StoredChat:
    """Store one chat message; a resend (same client id) returns the stored one."""
    for _attempt in range(2):
        async with db.session() as session:
            existing = (
                await session.exec(
                    select(ChatMessage).where(
                        col(ChatMessage.call_id) == call_id, col(ChatMessage.client_id) == client_id
                    )
                )
            ).first()
            if existing is not None:
                return StoredChat(existing, duplicate=True)
            message = ChatMessage(
                call_id=call_id,
                seq=await next_seq(session, call_id),
                sender=sender,
                sender_user_id=sender_user_id,
                client_id=client_id,
                body=body,
                at=clock.now(),
            )
            session.add(message)
            try:
                await session.commit()
            except IntegrityError:  # the same resend raced in on another connection
                await session.rollback()
                continue
            return StoredChat(message, duplicate=False)
    raise AppError(ErrorCode.CHAT_CONFLICT, "The message could not be stored; resend it")


async def do_store_location(
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
) -> StoredLocation:
    measured = datetime.fromtimestamp(measured_ms / 1000, UTC)
    async with db.session() as session:
        seq, state = await next_seq_and_state(session, call_id)
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
    return StoredLocation(sample, state)


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


async def chat_since(db: Database, call_id: str, last_seq: int) -> Sequence[ChatMessage]:
    async with db.session() as session:
        return (
            await session.exec(
                select(ChatMessage)
                .where(col(ChatMessage.call_id) == call_id, col(ChatMessage.seq) > last_seq)
                .order_by(col(ChatMessage.seq))
                .limit(REPLAY_LIMIT)
            )
        ).all()


async def locations_since(db: Database, call_id: str, last_seq: int) -> Sequence[LocationSample]:
    async with db.session() as session:
        rows = (
            await session.exec(
                select(LocationSample)
                .where(col(LocationSample.call_id) == call_id, col(LocationSample.seq) > last_seq)
                .order_by(col(LocationSample.seq).desc())
                .limit(REPLAY_LIMIT)
            )
        ).all()
    return list(reversed(rows))


async def live_calls(db: Database, role: str) -> list[CallSummary]:
    """Queued and answered calls of the channels this role may see, oldest first."""
    allowed = channels_for(role)
    async with db.session() as session:
        calls = (
            await session.exec(
                select(Call)
                .where(col(Call.state).in_(LIVE_STATES), col(Call.channel).in_(allowed))
                .order_by(col(Call.created_at))
            )
        ).all()
        return [await _summarize(session, call) for call in calls]


async def summary_of(db: Database, call: Call) -> CallSummary:
    async with db.session() as session:
        return await _summarize(session, call)


async def _summarize(session: AsyncSession, call: Call) -> CallSummary:
    """The queue's view of a call: with its operator's name and its latest position."""
    last = (
        await session.exec(
            select(LocationSample)
            .where(col(LocationSample.call_id) == call.id)
            .order_by(col(LocationSample.seq).desc())
            .limit(1)
        )
    ).first()
    operator = None
    if call.operator_id is not None:
        user = await session.get(User, call.operator_id)
        operator = user.username if user else None
    return _summary(call, operator, last)
