"""A call's life: created, answered, transferred, finished or abandoned. The one home of these
rules, whichever transport asks: ``check_*`` validates and authorises, ``do_*`` writes in one
transaction and then tells the pages through the notifier.

Every state change is an atomic conditional update plus a transition row, so two operators
accepting at once, on one node or two, leave exactly one winner.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from config.settings import LANGUAGES
from server.actions import cad_deliveries, call_offers, call_seal, participants, routing
from server.actions.access import (
    call_log_name,
    caller_address,
    channels_for,
    check_may_answer,
)
from server.actions.queue import (
    LIVE_STATES,
    citizen_presence,
    code_of,
    people_of,
    shown_name,
    summary_of,
)
from server.actions.queue_position import queue_changed
from server.actions.staff_sessions import StaffContext
from server.actions.wall import wall_changed
from server.core.errors import AppError, ErrorCode
from server.core.events import (
    CallMark,
    CallStateEvent,
    CallSummary,
    CitizenPresenceEvent,
    PeoplePresentEvent,
    QueueCallAdded,
    QueueCallRemoved,
    QueueCallUpdated,
    SituationName,
)
from server.core.logs import about_call
from server.core.services import Services
from server.db.models import Call, CallState, CallTransition, Role, User
from server.security.tokens import new_token, token_hash

log = logging.getLogger("lifeline.calls")

SYSTEM_CITIZEN_LEFT = "system:citizen-left"


def staff_peer(user_id: int) -> str:
    """A console's name at the call's media session."""
    return f"staff-{user_id}"


@dataclass(frozen=True)
class NewCall:
    call: Call
    token: str


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


def about(services: Services, channel: str, call_id: str) -> None:
    """This task's log lines name the call from here on, as the logs may name it (an
    internal-security call by its pseudonym, never its id)."""
    about_call(call_log_name(services.pseudonyms, channel, call_id))


async def _last_queued(session: AsyncSession, call_id: str) -> datetime | None:
    """When the call last entered the queue (created, or given back by a transfer)."""
    return (
        await session.exec(
            select(CallTransition.at)
            .where(
                col(CallTransition.call_id) == call_id,
                col(CallTransition.to_state) == CallState.QUEUED,
            )
            .order_by(col(CallTransition.at).desc(), col(CallTransition.id).desc())
            .limit(1)
        )
    ).first()


# --- who may touch a call ----------------------------------------------------------------------


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise AppError(
            ErrorCode.INVALID_LANGUAGE, f"Unknown language; use one of {', '.join(LANGUAGES)}"
        )
    return language


async def call_by_token(services: Services, token: str) -> Call | None:
    async with services.db.session() as session:
        result = await session.exec(select(Call).where(col(Call.token_hash) == token_hash(token)))
        return result.first()


async def check_citizen_call(services: Services, token: str, call_id: str | None = None) -> Call:
    """The live call this citizen token opens (and, given ``call_id``, that it is that call)."""
    call = await call_by_token(services, token) if token else None
    if call is None or (call_id is not None and call.id != call_id):
        raise AppError(ErrorCode.BAD_CALL_TOKEN, "This call's token is needed")
    about(services, call.channel, call.id)
    if call.state not in LIVE_STATES:
        raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
    return call


async def check_live_call(services: Services, call_id: str) -> Call:
    """A call that is still live (queued, ringing or answered), by its id."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    if call.state not in LIVE_STATES:
        raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
    return call


async def check_call_for_staff(
    services: Services, call_id: str, staff: StaffContext, *, must_own: bool = False
) -> Call:
    """The call, if this staff member may see it (and, with ``must_own``, act on it).

    The channel filter is in the query itself: an internal-security call does not exist for
    anyone else, so the answer is the same "not found" as for a call that never was.
    """
    allowed = channels_for(staff.role)
    async with services.db.session() as session:
        call = (
            await session.exec(
                select(Call).where(col(Call.id) == call_id, col(Call.channel).in_(allowed))
            )
        ).first()
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    about(services, call.channel, call.id)
    if must_own and staff.role != Role.SUPERVISOR and call.operator_id != staff.user_id:
        raise AppError(ErrorCode.NOT_YOUR_CALL, "This call is another operator's")
    return call


async def do_note_joined(services: Services, call: Call, staff: StaffContext) -> None:
    """A staff member who is not the call's operator (a supervisor listening in) opened it:
    entered in the chain, so the call's record can say who was present."""
    if call.operator_id == staff.user_id:
        return
    await services.audit.append(
        actor=staff.username,
        action="call_joined",
        subject=f"call:{call.id}",
        data={"role": staff.role, "state": call.state},
    )


async def state_of(services: Services, call_id: str) -> CallStateEvent:
    """The call's state as the citizen's page shows it, with its operator's name."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
        user = await session.get(User, call.operator_id) if call.operator_id is not None else None
    return CallStateEvent(
        call_id=call_id,
        state=call.state,
        operator=user.username if user is not None else None,
        at=services.clock.now(),
        verification_code=code_of(services, call),
        operator_name=shown_name(user) if call.state == CallState.ANSWERED else None,
        operator_badge=user.badge
        if user is not None and call.state == CallState.ANSWERED
        else None,
    )


# --- the life of a call --------------------------------------------------------------------------


async def do_create_call(
    services: Services,
    *,
    channel: str,
    mode: str,
    language: str,
    remote: str,
    marks: Sequence[CallMark] = (),
    situation: SituationName | None = None,
) -> NewCall:
    """A citizen's new call: queued, with its capability token (stored only as a hash); a call
    over the caller's rate limit comes marked (server/actions/call_limits.py), never refused."""
    token = new_token()
    now = services.clock.now()
    call = Call(
        id=str(uuid.uuid4()),
        channel=channel,
        mode=mode,
        language=check_language(language),
        state=CallState.QUEUED,
        token_hash=token_hash(token),
        marks=",".join(marks),
        situation=situation,
        created_at=now,
        caller_away_since=now,  # no page yet: one that never connects is abandoned all the same
    )
    audit = services.audit
    async with audit.transaction() as session:
        session.add(call)
        await session.flush()
        await _transition(session, call.id, None, CallState.QUEUED, "citizen", now)
        await audit.record(
            session,
            actor="citizen",
            action="call_created",
            subject=f"call:{call.id}",
            # A misconduct caller's address only as its keyed hash (actions/access.py).
            data={
                "channel": channel,
                "mode": mode,
                **caller_address(services.pseudonyms, channel, remote),
                **({"marks": list(marks)} if marks else {}),
                **({"situation": situation} if situation else {}),
            },
        )
    about(services, call.channel, call.id)
    log.info("call created", extra={"channel": call.channel, "mode": call.mode})
    services.telemetry.call_created(call.channel)
    summary = await summary_of(services, call)
    await services.notifier.to_queue(call.channel, QueueCallAdded(call=summary))
    wall_changed(services, call.channel)
    queue_changed(services, call.channel)
    routing.route_soon(services)
    return NewCall(call, token)


async def do_accept(services: Services, *, call_id: str, staff: StaffContext) -> CallSummary:
    """Answer a queued call: one conditional UPDATE, so exactly one operator wins. A call that
    rings another operator is theirs to answer while it rings (docs/routing.md)."""
    check_may_answer(staff.role)
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        result = await session.exec(
            update(Call)
            .where(
                col(Call.id) == call_id,
                col(Call.state) == CallState.QUEUED,
                col(Call.channel).in_(channels_for(staff.role)),
                or_(
                    col(Call.ringing_operator_id).is_(None),
                    col(Call.ringing_operator_id) == staff.user_id,
                ),
            )
            .values(
                state=CallState.ANSWERED,
                operator_id=staff.user_id,
                answered_at=now,
                ringing_operator_id=None,
                ring_until=None,
            )
        )
        if result.rowcount != 1:
            current = await session.get(Call, call_id)
            if (
                current is not None
                and current.state == CallState.QUEUED
                and current.channel in channels_for(staff.role)
                and current.ringing_operator_id is not None
            ):
                raise AppError(
                    ErrorCode.CALL_RINGING_ELSEWHERE, "The call is ringing another operator"
                )
            raise AppError(ErrorCode.CALL_GONE, "The call was taken or has ended")
        queued_at = await _last_queued(session, call_id)
        await _transition(
            session, call_id, CallState.QUEUED, CallState.ANSWERED, staff.username, now
        )
        await participants.joined(session, call_id, staff.user_id, staff.role, "answered", now)
        await audit.record(
            session, actor=staff.username, action="call_answered", subject=f"call:{call_id}"
        )
        call = await session.get(Call, call_id)
        assert call is not None
        # The CAD hears of it (docs/cad.md): kept in this transaction, posted once committed.
        cad_post = await cad_deliveries.queue_post(services, session, call, "answered", now)
    cad_deliveries.post_soon(services, cad_post)
    about(services, call.channel, call.id)
    services.telemetry.call_outcome(call.channel, "answered")
    if queued_at is not None:
        services.telemetry.call_waited(call.channel, (now - queued_at).total_seconds())
    notifier = services.notifier
    await notifier.to_queue(
        call.channel, QueueCallRemoved(call_id=call.id, reason="answered", by=staff.username)
    )
    answerer = await summary_of(services, call)
    state = CallStateEvent(
        call_id=call.id,
        state=CallState.ANSWERED,
        operator=staff.username,
        at=now,
        verification_code=code_of(services, call),
        operator_name=answerer.operator_name,
        operator_badge=answerer.operator_badge,
    )
    await notifier.to_call(call.id, state)
    await notifier.to_call(call.id, await people_of(services, call))
    wall_changed(services, call.channel)
    queue_changed(services, call.channel)
    await routing.do_answered(services, staff.user_id, call.channel)
    return answerer


async def do_transfer(
    services: Services,
    *,
    call_id: str,
    staff: StaffContext,
    note: str = "",
    channel: str | None = None,
) -> CallSummary:
    """Give an answered call back to its queue, or to ``channel``'s (answered -> transferred ->
    queued): another operator takes it; its media and recording go on, this operator's media
    leaves the call. Only its own operator may, and no transfer of it may be open meanwhile
    (server/actions/transfers.py checks both before a named queue)."""
    now = services.clock.now()
    audit = services.audit
    moved = {"channel": channel} if channel is not None else {}
    async with audit.transaction() as session:
        if await call_offers.open_offer_of(session, call_id) is not None:
            raise AppError(ErrorCode.OFFER_PENDING, "Settle this call's open transfer first")
        result = await session.exec(
            update(Call)
            .where(
                col(Call.id) == call_id,
                col(Call.state) == CallState.ANSWERED,
                col(Call.operator_id) == staff.user_id,
            )
            .values(state=CallState.QUEUED, operator_id=None, answered_at=None, **moved)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.CALL_CHANGED, "The call is not yours to transfer now")
        await _transition(
            session,
            call_id,
            CallState.ANSWERED,
            CallState.TRANSFERRED,
            staff.username,
            now,
            note,
        )
        await _transition(
            session, call_id, CallState.TRANSFERRED, CallState.QUEUED, staff.username, now
        )
        await participants.left(session, call_id, staff.user_id, now)
        await audit.record(
            session,
            actor=staff.username,
            action="call_transferred",
            subject=f"call:{call_id}",
            data={**({"note": note} if note else {}), **moved} or None,
        )
        call = await session.get(Call, call_id)
        assert call is not None
    about(services, call.channel, call.id)
    services.telemetry.call_outcome(call.channel, "transferred")
    notifier = services.notifier
    state = CallStateEvent(call_id=call.id, state=CallState.TRANSFERRED, at=now)
    await notifier.to_call(call.id, state)
    summary = await summary_of(services, call)
    await notifier.to_queue(call.channel, QueueCallAdded(call=summary))
    await services.media.remove_subscriber(call.id, staff_peer(staff.user_id))
    await notifier.to_call(call.id, await people_of(services, call))
    wall_changed(services, call.channel)
    queue_changed(services, call.channel)
    routing.route_soon(services)
    return summary


async def do_finish(
    services: Services,
    *,
    call_id: str,
    actor: str,
    disposition: str | None = None,
    note: str | None = None,
    only_from: CallState | None = None,
) -> str:
    """End a call everywhere: queued -> abandoned, answered -> ended; the queue, the pages and
    the media (the recording's last segment closes). A call that had ended already only gets
    its disposition recorded. A call that ends is sealed (server/actions/call_seal.py) once its
    media has closed: the caller's receipt. ``only_from``: end it only from that state (a sweep
    that read it a moment ago), else change nothing. Returns the call's state."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        call = await session.get(Call, call_id)
        if call is None:
            raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
        about(services, call.channel, call.id)
        old = call.state
        if only_from is not None and old != only_from:
            return old
        # A call waiting for a transfer's target had been answered: it ends, not abandoned.
        new = {
            CallState.QUEUED: CallState.ABANDONED,
            CallState.ANSWERED: CallState.ENDED,
            CallState.TRANSFERRED: CallState.ENDED,
        }.get(CallState(old))
        if new is not None:
            result = await session.exec(
                update(Call)
                .where(col(Call.id) == call_id, col(Call.state) == old)
                .values(state=new, ended_at=now, ringing_operator_id=None, ring_until=None)
            )
            if result.rowcount != 1:
                raise AppError(ErrorCode.CALL_CHANGED, "The call changed meanwhile; try again")
            await _transition(session, call_id, old, new, actor, now)
            await participants.all_left(session, call_id, now)
            await call_offers.cancel_all(session, call_id, now)
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
        cad_post = (
            await cad_deliveries.queue_post(services, session, call, "ended", now)
            if new == CallState.ENDED
            else None
        )
    if new is not None:
        services.telemetry.call_outcome(
            call.channel, "abandoned" if new == CallState.ABANDONED else "ended"
        )
        notifier = services.notifier
        state = CallStateEvent(call_id=call_id, state=call.state, at=now)
        await notifier.to_call(call_id, state)
        reason = call.state if old == CallState.QUEUED else "ended"
        await notifier.to_queue(
            call.channel, QueueCallRemoved(call_id=call_id, reason=reason, by=actor)
        )
        media = await services.media.end_call(call_id)
        # After the media's answer: its segments are stored by then (server/actions/call_seal.py).
        try:
            await call_seal.do_seal(services, call_id, media)
        except Exception:  # the call has ended all the same; its receipt stays pending
            log.exception("sealing the call failed")
        # Once its last segment is stored: the document posted names every one.
        cad_deliveries.post_soon(services, cad_post)
        wall_changed(services, call.channel)
        queue_changed(services, call.channel)
        if call.operator_id is not None and new == CallState.ENDED:
            await routing.do_wrap_up(services, call.operator_id, call.channel)
        else:
            routing.route_soon(services)
    return call.state


# --- the citizen's page coming and going -----------------------------------------------------


async def people_present(services: Services, call_id: str) -> PeoplePresentEvent:
    """Who is on the call besides the caller now (a page that reconnects asks)."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    return await people_of(services, call)


async def do_citizen_connected(services: Services, call: Call, connection: str) -> None:
    """The first of the citizen's connections (on any node) tells the call's watchers."""
    key = citizen_presence(call.id)
    was_away = await services.presence.count(key) == 0
    await services.presence.join(key, connection)
    if was_away:
        await _set_caller_away(services, call.id, None)
        await services.notifier.to_call_watchers(
            call.id, CitizenPresenceEvent(call_id=call.id, connected=True)
        )
        await _tell_queue_of_presence(services, call.id)


async def _tell_queue_of_presence(services: Services, call_id: str) -> None:
    """The queue and the wall show whether a waiting caller's page is there."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is not None and call.state == CallState.QUEUED:
        summary = await summary_of(services, call)
        await services.notifier.to_queue(call.channel, QueueCallUpdated(call=summary))


async def renew_citizen_presence(services: Services, call_id: str, connection: str) -> None:
    """Still connected: kept present on every node (a Redis TTL would otherwise lapse)."""
    await services.presence.join(citizen_presence(call_id), connection)


async def do_citizen_left(services: Services, call_id: str, connection: str) -> None:
    """The last of the citizen's connections went: the watchers are told, and a queued call
    whose citizen stays away past the grace period is abandoned (a reload is back in a second;
    a closed tab is not)."""
    key = citizen_presence(call_id)
    await services.presence.leave(key, connection)
    if await services.presence.count(key) > 0:
        return
    await _set_caller_away(services, call_id, services.clock.now())
    await services.notifier.to_call_watchers(
        call_id, CitizenPresenceEvent(call_id=call_id, connected=False)
    )
    await _tell_queue_of_presence(services, call_id)

    # The grace on this node's clock; the sweep (server/actions/abandonment.py) is the net
    # under it when the node restarts or dies first.
    services.background.later(
        services.clock,
        services.settings.ABANDON_GRACE_SECS,
        lambda: abandon_if_gone(services, call_id),
        name=f"abandon:{call_id}",
    )


async def _set_caller_away(services: Services, call_id: str, since: datetime | None) -> None:
    """Since when the caller has had no page connected (None: one is), in the database, where
    every node's abandonment sweep reads it."""
    async with services.db.session() as session:
        await session.exec(
            update(Call).where(col(Call.id) == call_id).values(caller_away_since=since)
        )
        await session.commit()


async def abandon_if_gone(services: Services, call_id: str) -> None:
    """A queued call whose citizen is still away is abandoned."""
    if await services.presence.count(citizen_presence(call_id)) > 0:
        return
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is None or call.state != CallState.QUEUED:
        return
    about(services, call.channel, call.id)
    await do_finish(services, call_id=call_id, actor=SYSTEM_CITIZEN_LEFT)
