"""Handing a live call on (docs/transfers.md): to a named operator, warm or cold, or back to a
queue; and a conference, a second operator or a supervisor joining beside the operator.

An offer is a row (server/db/models.py: CallOffer), settled by conditional UPDATEs, so two
accepts, an accept racing the timeout, or a node that dies in between leave one outcome:

- cold: the first operator leaves at once (answered -> transferred); the target accepts
  (transferred -> answered) or declines, or the offer runs out after ``RING_SECS`` (routing's
  ring time): the call goes back to its queue (transferred -> queued), first in line by its
  age, and routing rings the next operator.
- warm: the first operator stays; the target accepts and joins (a participant: picture, both
  voices, the chat so far); the first then completes (answered -> transferred -> answered, the
  target now the call's operator) or cancels and keeps the call.
- conference: like warm, but nobody leaves; the guest leaves when they choose.

The call's media session is never ended by any of this: one session, one recording.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions import call_offers, participants, routing
from server.actions.access import channels_for
from server.actions.calls import (
    _transition,
    about,
    check_call_for_staff,
    do_transfer,
    staff_peer,
    state_of,
)
from server.actions.queue import operator_standings, people_of, summary_of
from server.actions.queue_position import queue_changed
from server.actions.staff_sessions import StaffContext
from server.actions.wall import wall_changed
from server.core.errors import AppError, ErrorCode
from server.core.events import (
    CallSummary,
    QueueCallAdded,
    TransferOfferEvent,
    TransferUpdateEvent,
)
from server.core.services import Services
from server.db.models import (
    Call,
    CallOffer,
    CallState,
    Channel,
    OfferKind,
    OfferState,
    Role,
    User,
)

log = logging.getLogger("lifeline.transfers")

# Who takes a call handed on by name: those who answer calls; a conference may also add a
# supervisor (who then speaks on the call, as after a barge-in).
ANSWERING_ROLES = frozenset({Role.OPERATOR, Role.INTERNAL_SECURITY})
GUEST_ROLES = ANSWERING_ROLES | {Role.SUPERVISOR}

SYSTEM_OFFER_EXPIRED = "system:transfer-expired"


@dataclass(frozen=True)
class Target:
    """Someone a call may be handed to, as the transfer dialog lists them."""

    username: str
    role: str
    state: str  # available, ringing, in_call, wrap_up, away, offline


@dataclass(frozen=True)
class Offered:
    offer_id: int | None  # None: handed back to a queue, no one named
    call: CallSummary


def offer_timer(offer_id: int) -> str:
    """The timer that settles an offer nobody took (tests wait for it to be set)."""
    return f"transfer-offer:{offer_id}"


# --- whom to -----------------------------------------------------------------------------------


async def _states(services: Services, user_ids: set[int]) -> dict[int, str]:
    """Each of these staff members' state as routing and the wall see it (available, ringing,
    in_call, wrap_up, away, offline: server/actions/queue.py), and ``ringing`` too for one a
    call is offered to by name now."""
    states: dict[int, str] = {}
    for role in GUEST_ROLES:
        for standing in await operator_standings(services, role):
            if standing.user.id in user_ids:
                states[standing.user.id] = standing.state.state
    async with services.db.session() as session:
        offered = (
            await session.exec(
                select(CallOffer.to_user_id).where(
                    col(CallOffer.to_user_id).in_(list(user_ids)),
                    col(CallOffer.state) == OfferState.OFFERED,
                )
            )
        ).all()
    for user_id in offered:
        if states.get(user_id) == "available":
            states[user_id] = "ringing"
    return states


async def targets_for(services: Services, staff: StaffContext, call_id: str) -> list[Target]:
    """The people this call may be handed to (the dialog's list): active accounts whose role
    sees the call's channel, each with their state; only the available may be chosen."""
    call = await check_call_for_staff(services, call_id, staff)
    async with services.db.session() as session:
        users = (
            await session.exec(
                select(User)
                .where(col(User.disabled).is_(False), col(User.role).in_(list(GUEST_ROLES)))
                .order_by(col(User.username))
            )
        ).all()
    users = [u for u in users if call.channel in channels_for(u.role) and u.id != staff.user_id]
    states = await _states(services, {u.id for u in users if u.id is not None})
    return [
        Target(username=u.username, role=u.role, state=states.get(u.id or 0, "offline"))
        for u in users
    ]


def queues_for(staff: StaffContext) -> list[str]:
    """The queues this role may hand a call back to: the channels it sees."""
    return [channel.value for channel in Channel if channel.value in channels_for(staff.role)]


async def _check_target(
    services: Services,
    session: AsyncSession,
    call: Call,
    staff: StaffContext,
    username: str,
    kind: OfferKind,
) -> User:
    user = (await session.exec(select(User).where(col(User.username) == username))).first()
    if user is None or user.id is None:
        raise AppError(ErrorCode.TARGET_NOT_FOUND, "No such operator")
    if user.disabled:
        raise AppError(ErrorCode.TARGET_DISABLED, "That account is disabled")
    roles = GUEST_ROLES if kind == OfferKind.CONFERENCE else ANSWERING_ROLES
    if user.role not in roles or call.channel not in channels_for(user.role):
        raise AppError(ErrorCode.TARGET_FORBIDDEN, "That account may not take this call")
    if user.id == staff.user_id:
        raise AppError(ErrorCode.TARGET_FORBIDDEN, "The call is yours already")
    state = (await _states(services, {user.id})).get(user.id, "offline")
    if state == "offline":
        raise AppError(ErrorCode.TARGET_OFFLINE, "That operator has no console open")
    if state != "available":
        raise AppError(ErrorCode.TARGET_BUSY, f"That operator is not available ({state})")
    return user


def _check_note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise AppError(ErrorCode.INVALID, f"A note of at most {MAX_NOTE_CHARS} characters")
    return note


# As the offer's column and the console's payload allow.
MAX_NOTE_CHARS = 255
# The transition row's reason column.
MAX_REASON_CHARS = 255


def _reason(to: str, note: str) -> str:
    """The transition's reason: whom to, and the note (cut to the column; the offer row and
    the audit entry keep it whole)."""
    return (f"to {to}: {note}" if note else f"to {to}")[:MAX_REASON_CHARS]


# --- offering ----------------------------------------------------------------------------------


async def do_offer(
    services: Services,
    *,
    staff: StaffContext,
    call_id: str,
    kind: OfferKind,
    target_user: str | None = None,
    target_channel: str | None = None,
    note: str = "",
) -> Offered:
    """Hand the call on: to ``target_user`` (warm, cold, conference) or back to
    ``target_channel``'s queue (always cold). Only the call's own operator may; one offer of a
    call at a time."""
    note = _check_note(note)
    call = await check_call_for_staff(services, call_id, staff, must_own=True)
    if call.operator_id != staff.user_id:
        raise AppError(ErrorCode.NOT_YOUR_CALL, "This call is another operator's")
    if call.state != CallState.ANSWERED:
        raise AppError(ErrorCode.CALL_CHANGED, "The call is not live with you now")
    async with services.db.session() as session:
        if await call_offers.open_offer_of(session, call.id) is not None:
            raise AppError(ErrorCode.OFFER_PENDING, "A transfer of this call is open already")
    if target_user is None:
        channel = target_channel or call.channel
        if channel not in queues_for(staff):
            raise AppError(ErrorCode.TARGET_FORBIDDEN, "No such queue for your role")
        if kind != OfferKind.COLD:
            raise AppError(ErrorCode.INVALID, "A call goes back to a queue cold")
        summary = await do_transfer(
            services,
            call_id=call.id,
            staff=staff,
            note=note,
            channel=channel if channel != call.channel else None,
        )
        return Offered(offer_id=None, call=summary)
    if target_channel is not None:
        raise AppError(ErrorCode.INVALID, "A named operator or a queue, not both")
    return await _offer_to(services, staff, call, kind, target_user, note)


async def _offer_to(
    services: Services, staff: StaffContext, call: Call, kind: OfferKind, username: str, note: str
) -> Offered:
    now = services.clock.now()
    expires = now + timedelta(seconds=services.settings.RING_SECS)
    audit = services.audit
    async with audit.transaction() as session:
        target = await _check_target(services, session, call, staff, username, kind)
        assert target.id is not None
        if kind == OfferKind.COLD:
            left = await session.exec(
                update(Call)
                .where(
                    col(Call.id) == call.id,
                    col(Call.state) == CallState.ANSWERED,
                    col(Call.operator_id) == staff.user_id,
                )
                .values(state=CallState.TRANSFERRED, operator_id=None, answered_at=None)
            )
            if left.rowcount != 1:
                raise AppError(ErrorCode.CALL_CHANGED, "The call is not yours to transfer now")
            await _transition(
                session,
                call.id,
                CallState.ANSWERED,
                CallState.TRANSFERRED,
                staff.username,
                now,
                _reason(target.username, note),
            )
            await participants.left(session, call.id, staff.user_id, now)
        offer = CallOffer(
            call_id=call.id,
            kind=kind,
            from_user_id=staff.user_id,
            to_user_id=target.id,
            note=note,
            state=OfferState.OFFERED,
            created_at=now,
            expires_at=expires,
        )
        session.add(offer)
        await session.flush()
        assert offer.id is not None
        await audit.record(
            session,
            actor=staff.username,
            action="call_offered",
            subject=f"call:{call.id}",
            data={"offer": offer.id, "kind": kind, "to": target.username, "note": note},
        )
        fresh = await session.get(Call, call.id)
        assert fresh is not None
        await session.refresh(fresh)
    offer_id = offer.id
    summary = await summary_of(services, fresh)
    notifier = services.notifier
    await notifier.to_staff(
        target.id,
        TransferOfferEvent(
            offer_id=offer_id,
            kind=kind,
            call=summary,
            by=staff.username,
            note=note,
            expires_at=expires,
        ),
    )
    if kind == OfferKind.COLD:
        await services.media.remove_subscriber(call.id, staff_peer(staff.user_id))
        await notifier.to_call(call.id, await state_of(services, call.id))
        await notifier.to_call(call.id, await people_of(services, fresh))
        wall_changed(services, call.channel)
        queue_changed(services, call.channel)
        await _freed(services, staff.user_id, call.channel)
    arm_offer_timer(services, offer_id, services.settings.RING_SECS)
    return Offered(offer_id=offer_id, call=summary)


def arm_offer_timer(services: Services, offer_id: int, seconds: float) -> None:
    services.background.later(
        services.clock,
        max(seconds, 0.0),
        lambda: expire_offer(services, offer_id),
        name=offer_timer(offer_id),
    )


# --- the target's answer -----------------------------------------------------------------------


async def _offer_for(session: AsyncSession, offer_id: int, staff: StaffContext) -> CallOffer:
    """The offer, if it was made to this staff member: another's does not exist for them."""
    offer = await session.get(CallOffer, offer_id)
    if offer is None or offer.to_user_id != staff.user_id:
        raise AppError(ErrorCode.OFFER_NOT_FOUND, "No such offer for you")
    return offer


async def do_accept_offer(services: Services, *, staff: StaffContext, offer_id: int) -> CallSummary:
    """The target takes the call: cold, it is theirs; warm or conference, they join it."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        offer = await _offer_for(session, offer_id, staff)
        if offer.state != OfferState.OFFERED or offer.expires_at <= now:
            raise AppError(ErrorCode.OFFER_GONE, "This offer was settled or has run out")
        if not await call_offers.settle(
            session, offer_id, OfferState.ACCEPTED, now, to_user_id=staff.user_id
        ):
            raise AppError(ErrorCode.OFFER_GONE, "This offer was settled or has run out")
        kind = OfferKind(offer.kind)
        if kind == OfferKind.COLD:
            taken = await session.exec(
                update(Call)
                .where(col(Call.id) == offer.call_id, col(Call.state) == CallState.TRANSFERRED)
                .values(state=CallState.ANSWERED, operator_id=staff.user_id, answered_at=now)
            )
            if taken.rowcount != 1:
                raise AppError(ErrorCode.CALL_GONE, "The call has ended")
            await call_offers.settle(
                session, offer_id, OfferState.COMPLETED, now, was=(OfferState.ACCEPTED,)
            )
            await _transition(
                session,
                offer.call_id,
                CallState.TRANSFERRED,
                CallState.ANSWERED,
                staff.username,
                now,
            )
        else:
            call = await session.get(Call, offer.call_id)
            if call is None or call.state != CallState.ANSWERED:
                raise AppError(ErrorCode.CALL_GONE, "The call has ended")
        await participants.joined(session, offer.call_id, staff.user_id, staff.role, kind, now)
        await audit.record(
            session,
            actor=staff.username,
            action="call_offer_accepted",
            subject=f"call:{offer.call_id}",
            data={"offer": offer_id, "kind": kind},
        )
        call = await session.get(Call, offer.call_id)
        assert call is not None
        await session.refresh(call)
        offerer = await session.get(User, offer.from_user_id)
    about(services, call.channel, call.id)
    await _tell(services, offer, OfferState.ACCEPTED, staff.username, offerer)
    notifier = services.notifier
    if kind == OfferKind.COLD:
        await notifier.to_call(call.id, await state_of(services, call.id))
        wall_changed(services, call.channel)
        queue_changed(services, call.channel)
    await notifier.to_call(call.id, await people_of(services, call))
    _taken(services, staff.user_id, call.channel)
    return await summary_of(services, call)


def _taken(services: Services, user_id: int, channel: str) -> None:
    """On a call now: routing rings them no more, and their console says so (in the
    background: the accept's answer does not wait for routing)."""
    services.background.spawn(
        routing.do_answered(services, user_id, channel), name=f"routing-taken:{user_id}"
    )


async def _freed(services: Services, user_id: int, channel: str) -> None:
    """Off the call they were on (handed on, or a guest who left): their console and the wall
    show them available again, and routing may ring them (in the background)."""

    async def tell() -> None:
        await routing.tell_operator(services, user_id, channel)
        routing.route_soon(services)

    services.background.spawn(tell(), name=f"routing-freed:{user_id}")
    wall_changed(services, channel)


async def do_decline_offer(services: Services, *, staff: StaffContext, offer_id: int) -> None:
    """The target says no: a cold call goes back to its queue; a warm one stays where it is."""
    async with services.db.session() as session:
        offer = await _offer_for(session, offer_id, staff)
    await _settle_unanswered(services, offer, OfferState.DECLINED, staff.username)


async def expire_offer(services: Services, offer_id: int) -> None:
    """The offer's time ran out (its timer, on any node that set it, or the start-up sweep)."""
    async with services.db.session() as session:
        offer = await session.get(CallOffer, offer_id)
    if offer is None or offer.state != OfferState.OFFERED:
        return
    try:
        await _settle_unanswered(services, offer, OfferState.EXPIRED, SYSTEM_OFFER_EXPIRED)
    except AppError as refused:  # taken or declined a moment before: nothing left to do
        if refused.code != ErrorCode.OFFER_GONE:
            raise


async def _settle_unanswered(
    services: Services, offer: CallOffer, new: OfferState, actor: str
) -> None:
    assert offer.id is not None
    now = services.clock.now()
    audit = services.audit
    back_in_queue = False
    async with audit.transaction() as session:
        if not await call_offers.settle(session, offer.id, new, now):
            raise AppError(ErrorCode.OFFER_GONE, "This offer was settled already")
        if offer.kind == OfferKind.COLD:
            back = await session.exec(
                update(Call)
                .where(col(Call.id) == offer.call_id, col(Call.state) == CallState.TRANSFERRED)
                .values(state=CallState.QUEUED)
            )
            back_in_queue = back.rowcount == 1
            if back_in_queue:
                await _transition(
                    session,
                    offer.call_id,
                    CallState.TRANSFERRED,
                    CallState.QUEUED,
                    actor,
                    now,
                    f"{new}: {offer.note}" if offer.note else str(new),
                )
        await audit.record(
            session,
            actor=actor,
            action=f"call_offer_{new}",
            subject=f"call:{offer.call_id}",
            data={"offer": offer.id, "kind": offer.kind},
        )
        call = await session.get(Call, offer.call_id)
        offerer = await session.get(User, offer.from_user_id)
        target = await session.get(User, offer.to_user_id)
    assert call is not None
    about(services, call.channel, call.id)
    await _tell(services, offer, new, actor, offerer, target)
    if back_in_queue:
        await session_refresh(services, call)
        summary = await summary_of(services, call)
        await services.notifier.to_queue(call.channel, QueueCallAdded(call=summary))
        await services.notifier.to_call(call.id, await state_of(services, call.id))
        wall_changed(services, call.channel)
        queue_changed(services, call.channel)
        routing.route_soon(services)  # back in the queue: it rings the next operator


async def session_refresh(services: Services, call: Call) -> None:
    """``call`` as stored now (its state moved in another transaction)."""
    async with services.db.session() as session:
        fresh = await session.get(Call, call.id)
    if fresh is not None:
        call.state = fresh.state
        call.operator_id = fresh.operator_id


async def _tell(
    services: Services,
    offer: CallOffer,
    state: OfferState,
    by: str,
    offerer: User | None,
    target: User | None = None,
) -> None:
    """The offering operator's and the target's consoles hear how the offer went."""
    if target is None:
        async with services.db.session() as session:
            target = await session.get(User, offer.to_user_id)
    assert offer.id is not None
    event = TransferUpdateEvent(
        offer_id=offer.id,
        call_id=offer.call_id,
        kind=OfferKind(offer.kind),
        state=state,
        by=by,
        to=target.username if target is not None else "",
    )
    await services.notifier.to_staff(offer.from_user_id, event)
    await services.notifier.to_staff(offer.to_user_id, event)


# --- the first operator's answer to a warm transfer ----------------------------------------


async def do_complete(services: Services, *, staff: StaffContext, call_id: str) -> CallSummary:
    """A warm transfer's target has joined: the first operator leaves and the call is theirs
    (answered -> transferred -> answered: the transitions name both)."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        offer = await call_offers.open_offer_of(session, call_id)
        if (
            offer is None
            or offer.id is None
            or offer.from_user_id != staff.user_id
            or offer.kind != OfferKind.WARM
        ):
            raise AppError(ErrorCode.OFFER_NOT_FOUND, "No warm transfer of yours to complete")
        if offer.state != OfferState.ACCEPTED:
            raise AppError(ErrorCode.OFFER_PENDING, "The target has not joined yet")
        target = await session.get(User, offer.to_user_id)
        assert target is not None
        moved = await session.exec(
            update(Call)
            .where(
                col(Call.id) == call_id,
                col(Call.state) == CallState.ANSWERED,
                col(Call.operator_id) == staff.user_id,
            )
            .values(operator_id=offer.to_user_id, answered_at=now)
        )
        if moved.rowcount != 1 or not await call_offers.settle(
            session, offer.id, OfferState.COMPLETED, now, was=(OfferState.ACCEPTED,)
        ):
            raise AppError(ErrorCode.CALL_CHANGED, "The call changed meanwhile")
        reason = _reason(target.username, offer.note)
        await _transition(
            session, call_id, CallState.ANSWERED, CallState.TRANSFERRED, staff.username, now, reason
        )
        await _transition(
            session, call_id, CallState.TRANSFERRED, CallState.ANSWERED, target.username, now
        )
        await participants.left(session, call_id, staff.user_id, now)
        await audit.record(
            session,
            actor=staff.username,
            action="call_transferred",
            subject=f"call:{call_id}",
            data={"offer": offer.id, "kind": offer.kind, "to": target.username, "note": offer.note},
        )
        call = await session.get(Call, call_id)
        assert call is not None
        await session.refresh(call)
    about(services, call.channel, call.id)
    await services.media.remove_subscriber(call_id, staff_peer(staff.user_id))
    await _tell(services, offer, OfferState.COMPLETED, staff.username, None, target)
    notifier = services.notifier
    await notifier.to_call(call_id, await state_of(services, call_id))
    await notifier.to_call(call_id, await people_of(services, call))
    wall_changed(services, call.channel)
    queue_changed(services, call.channel)
    _taken(services, target.id or 0, call.channel)
    await _freed(services, staff.user_id, call.channel)
    return await summary_of(services, call)


async def do_cancel(services: Services, *, staff: StaffContext, call_id: str) -> None:
    """The first operator keeps the call: the offer is withdrawn, and a target who had joined
    leaves it."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        offer = await call_offers.open_offer_of(session, call_id)
        if offer is None or offer.id is None or offer.from_user_id != staff.user_id:
            raise AppError(ErrorCode.OFFER_NOT_FOUND, "No open transfer of yours to cancel")
        if offer.kind == OfferKind.COLD:
            raise AppError(ErrorCode.OFFER_GONE, "A cold transfer has left you already")
        joined = offer.state == OfferState.ACCEPTED  # read before the UPDATE refreshes it
        if not await call_offers.settle(
            session, offer.id, OfferState.CANCELLED, now, was=call_offers.OPEN_OFFER_STATES
        ):
            raise AppError(ErrorCode.OFFER_GONE, "This offer was settled meanwhile")
        if joined:
            await participants.left(session, call_id, offer.to_user_id, now)
        await audit.record(
            session,
            actor=staff.username,
            action="call_offer_cancelled",
            subject=f"call:{call_id}",
            data={"offer": offer.id, "kind": offer.kind},
        )
        call = await session.get(Call, call_id)
        assert call is not None
    if joined:
        await services.media.remove_subscriber(call_id, staff_peer(offer.to_user_id))
    await _tell(services, offer, OfferState.CANCELLED, staff.username, None)
    await services.notifier.to_call(call_id, await people_of(services, call))
    if joined:
        await _freed(services, offer.to_user_id, call.channel)


async def do_leave(services: Services, *, staff: StaffContext, call_id: str) -> None:
    """A conference's guest (or a warm transfer's target before completion) leaves the call."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        call = await session.get(Call, call_id)
        if call is None or call.operator_id == staff.user_id:
            raise AppError(ErrorCode.NOT_YOUR_CALL, "End or transfer your own call instead")
        if not await participants.is_present(session, call_id, staff.user_id):
            raise AppError(ErrorCode.CALL_NOT_FOUND, "You are not on this call")
        await participants.left(session, call_id, staff.user_id, now)
        offer = await call_offers.open_offer_of(session, call_id)
        if offer is not None and offer.id is not None and offer.to_user_id == staff.user_id:
            await call_offers.settle(
                session, offer.id, OfferState.CANCELLED, now, was=(OfferState.ACCEPTED,)
            )
        await audit.record(
            session,
            actor=staff.username,
            action="call_left",
            subject=f"call:{call_id}",
            data={"role": staff.role},
        )
    about(services, call.channel, call.id)
    await services.media.remove_subscriber(call_id, staff_peer(staff.user_id))
    if offer is not None and offer.to_user_id == staff.user_id:
        await _tell(services, offer, OfferState.CANCELLED, staff.username, None)
    await services.notifier.to_call(call_id, await people_of(services, call))
    await _freed(services, staff.user_id, call.channel)


# --- after a restart ---------------------------------------------------------------------------


async def open_offers_for(services: Services, staff: StaffContext) -> list[TransferOfferEvent]:
    """The offers waiting for this staff member (a console that reloads shows them again)."""
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(CallOffer, User.username)
                .join(User, col(User.id) == col(CallOffer.from_user_id))
                .where(
                    col(CallOffer.to_user_id) == staff.user_id,
                    col(CallOffer.state) == OfferState.OFFERED,
                )
                .order_by(col(CallOffer.id))
            )
        ).all()
        calls = {offer.call_id: await session.get(Call, offer.call_id) for offer, _ in rows}
    events = []
    for offer, by in rows:
        call = calls[offer.call_id]
        assert offer.id is not None and call is not None
        events.append(
            TransferOfferEvent(
                offer_id=offer.id,
                kind=OfferKind(offer.kind),
                call=await summary_of(services, call),
                by=by,
                note=offer.note,
                expires_at=offer.expires_at,
            )
        )
    return events


async def rearm_open_offers(services: Services) -> None:
    """At a node's start: every offer still waiting gets a timer (one past its time settles at
    once), so a node that died with an offer out strands no call. Two nodes both arming one
    settle it once: the UPDATE is conditional."""
    now = services.clock.now()
    async with services.db.session() as session:
        waiting = (
            await session.exec(
                select(CallOffer.id, CallOffer.expires_at).where(
                    col(CallOffer.state) == OfferState.OFFERED
                )
            )
        ).all()
    for offer_id, expires_at in waiting:
        assert offer_id is not None
        arm_offer_timer(services, offer_id, _seconds_until(expires_at, now))


def _seconds_until(moment: datetime, now: datetime) -> float:
    return (moment - now).total_seconds()
