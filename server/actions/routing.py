"""Automatic distribution (ROUTING_MODE=auto, docs/routing.md): a waiting call rings the
longest-idle available operator who speaks the caller's language (none does: the longest-idle
available one), for RING_SECS; unanswered, it rings the next and the first is set away with a
note; declined, it passes on at once.

The ring lives in the database, on the call (``ringing_operator_id``, ``ring_until``), never in
a node's memory: it is set and ended only by conditional UPDATEs, and a unique index allows one
ring per operator. Every node sweeps each ROUTING_SWEEP_SECS of its clock (due rings end, the
waiting calls are offered), so two nodes never ring two operators for one call and a node that
dies mid-ring strands nothing. A round also runs at once when a call is queued and when an
operator becomes available.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.access import check_may_answer
from server.actions.queue import Standing, operator_standings, summary_of
from server.actions.staff_sessions import StaffContext
from server.actions.wall import OPERATOR_ROLE_OF_CHANNEL, wall_changed
from server.core.errors import AppError, ErrorCode
from server.core.events import OperatorStatusEvent, QueueCallUpdated
from server.core.services import Services
from server.db.models import (
    Call,
    CallDecline,
    CallOffer,
    CallState,
    Channel,
    OfferState,
    OperatorStatus,
    User,
)

log = logging.getLogger("lifeline.routing")

SYSTEM_ROUTING = "system:routing"
ROUTING_TIMER = "routing-sweep"

# What an operator may set on the console: "ready" ends a wrap-up (it is "available").
SETTABLE_STATES = ("available", "away", "ready")
MAX_NOTE_CHARS = 120


def auto(services: Services) -> bool:
    return services.settings.ROUTING_MODE == "auto"


def schedule_routing(services: Services) -> None:
    """The node's sweep, each ROUTING_SWEEP_SECS of its clock (none in manual mode)."""
    if not auto(services):
        return

    async def round_() -> None:
        try:
            await do_route(services)
        except Exception:
            log.exception("routing sweep failed")  # tried again at the next round
        schedule_routing(services)

    services.background.later(
        services.clock, services.settings.ROUTING_SWEEP_SECS, round_, name=ROUTING_TIMER
    )


def route_soon(services: Services) -> None:
    """Something routing waits for happened (a call queued, an operator available): a round
    now, in the background, so the action that caused it does not wait for it."""
    if auto(services):
        services.background.spawn(_route(services), name="routing")


async def _route(services: Services) -> None:
    await do_route(services)


async def do_route(services: Services) -> int:
    """One round: due rings end (their operator set away), then each waiting call that rings
    nobody is offered. Returns how many calls were rung."""
    if not auto(services):
        return 0
    await _end_due_rings(services)
    rung = 0
    for channel in Channel:
        rung += await _offer_channel(services, channel)
    return rung


async def _offer_channel(services: Services, channel: Channel) -> int:
    async with services.db.session() as session:
        waiting = (
            await session.exec(
                select(Call)
                .where(
                    col(Call.state) == CallState.QUEUED,
                    col(Call.channel) == channel.value,
                    col(Call.ringing_operator_id).is_(None),
                )
                .order_by(col(Call.created_at))
            )
        ).all()
        if not waiting:
            return 0
        declined = set(
            (
                await session.exec(
                    select(CallDecline.call_id, CallDecline.user_id).where(
                        col(CallDecline.call_id).in_([call.id for call in waiting])
                    )
                )
            ).all()
        )
        # A transfer offered to them by name waits for their answer: they are not rung meanwhile.
        offered = set(
            (
                await session.exec(
                    select(CallOffer.to_user_id).where(col(CallOffer.state) == OfferState.OFFERED)
                )
            ).all()
        )
    # Marked calls (flooding, suspected abuse) after the others, each group oldest first.
    waiting = sorted(waiting, key=lambda call: bool(call.marks))
    standings = await operator_standings(services, OPERATOR_ROLE_OF_CHANNEL[channel])
    free = sorted(
        (s for s in standings if s.state.state == "available" and s.user.id not in offered),
        key=lambda s: (s.idle_since or datetime.min.replace(tzinfo=UTC), s.user.id or 0),
    )
    rung = 0
    for call in waiting:
        if not free:
            break
        candidates = [s for s in free if (call.id, s.user.id) not in declined]
        speakers = [s for s in candidates if call.language in s.state.skills]
        others = [s for s in candidates if s not in speakers]
        for standing in speakers + others:
            if await _ring(services, call, standing):
                free.remove(standing)
                rung += 1
                break
    return rung


async def _ring(services: Services, call: Call, standing: Standing) -> bool:
    """Ring one operator for one call: one conditional UPDATE (the call still waits, rings
    nobody); the unique index refuses a second ring of the same operator from another node."""
    user = standing.user
    now = services.clock.now()
    until = now + timedelta(seconds=services.settings.RING_SECS)
    audit = services.audit
    try:
        async with audit.transaction() as session:
            result = await session.exec(
                update(Call)
                .where(
                    col(Call.id) == call.id,
                    col(Call.state) == CallState.QUEUED,
                    col(Call.ringing_operator_id).is_(None),
                )
                .values(ringing_operator_id=user.id, ring_until=until)
            )
            if result.rowcount != 1:
                return False
            await audit.record(
                session,
                actor=SYSTEM_ROUTING,
                action="call_ring_offered",
                subject=f"call:{call.id}",
                data={
                    "operator": user.username,
                    "language": call.language,
                    "speaks": call.language in standing.state.skills,
                    "ring_secs": services.settings.RING_SECS,
                },
            )
    except IntegrityError:
        return False  # another node rang this operator meanwhile
    await _ring_changed(services, call.id, call.channel, user.id or 0)
    return True


async def _end_due_rings(services: Services) -> None:
    now = services.clock.now()
    async with services.db.session() as session:
        due = (
            await session.exec(
                select(Call.id, Call.channel, Call.ringing_operator_id).where(
                    col(Call.state) == CallState.QUEUED,
                    col(Call.ringing_operator_id).is_not(None),
                    col(Call.ring_until) <= now,
                )
            )
        ).all()
    for call_id, channel, operator_id in due:
        if operator_id is not None:
            await _missed(services, call_id, channel, operator_id, now)


async def _missed(
    services: Services, call_id: str, channel: str, operator_id: int, now: datetime
) -> None:
    """A ring ran out: ended by the one node whose conditional UPDATE wins; its operator is set
    away with a note ("missed a call at HH:MM", the centre's time), so nobody rings an empty
    desk again until they say they are back."""
    audit = services.audit
    at = now.astimezone(ZoneInfo(services.settings.TIME_ZONE)).strftime("%H:%M")
    async with audit.transaction() as session:
        if not await _end_ring(session, call_id, operator_id, col(Call.ring_until) <= now):
            return
        user = await session.get(User, operator_id)
        assert user is not None
        await _set_status(session, operator_id, "away", f"missed a call at {at}", now, missed=True)
        await audit.record(
            session,
            actor=SYSTEM_ROUTING,
            action="call_ring_missed",
            subject=f"call:{call_id}",
            data={"operator": user.username},
        )
        await audit.record(
            session,
            actor=SYSTEM_ROUTING,
            action="operator_status_changed",
            subject=f"user:{user.username}",
            data={"state": "away", "note": f"missed a call at {at}"},
        )
    await _ring_changed(services, call_id, channel, operator_id)


async def _end_ring(
    session: AsyncSession, call_id: str, operator_id: int, *also: ColumnElement[bool]
) -> bool:
    """End the ring of ``call_id`` if it still rings ``operator_id`` (and ``also`` holds): one
    conditional UPDATE, so of two nodes ending it, one does."""
    result = await session.exec(
        update(Call)
        .where(
            col(Call.id) == call_id,
            col(Call.state) == CallState.QUEUED,
            col(Call.ringing_operator_id) == operator_id,
            *also,
        )
        .values(ringing_operator_id=None, ring_until=None)
    )
    return bool(result.rowcount == 1)


async def _ring_changed(services: Services, call_id: str, channel: str, operator_id: int) -> None:
    """The queue (consoles, walls) sees who the call rings now; the operator their state."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is not None and call.state == CallState.QUEUED:
        summary = await summary_of(services, call)
        await services.notifier.to_queue(channel, QueueCallUpdated(call=summary))
    await tell_operator(services, operator_id, channel)
    wall_changed(services, channel)


async def do_wrap_up(services: Services, operator_id: int, channel: str) -> None:
    """A call of theirs ended: the operator is told they are in wrap-up, and again when it
    ends (WRAP_UP_SECS on the clock, unless they press Ready first), when a round offers them
    the next call."""
    await tell_operator(services, operator_id, channel)
    wrap_secs = services.settings.WRAP_UP_SECS
    if wrap_secs <= 0:
        route_soon(services)
        return

    async def ended() -> None:
        await tell_operator(services, operator_id, channel)
        wall_changed(services, channel)
        await do_route(services)

    services.background.later(services.clock, wrap_secs, ended, name=f"wrap-up:{operator_id}")


async def tell_operator(services: Services, operator_id: int, channel: str) -> None:
    """The operator's consoles get the state they are in now."""
    role = OPERATOR_ROLE_OF_CHANNEL[Channel(channel)]
    for standing in await operator_standings(services, role):
        if standing.user.id == operator_id:
            await services.notifier.to_staff(
                operator_id, OperatorStatusEvent(status=standing.state)
            )


async def _set_status(
    session: AsyncSession,
    user_id: int,
    state: str,
    note: str,
    now: datetime,
    *,
    missed: bool = False,
) -> None:
    status = await session.get(OperatorStatus, user_id)
    if status is None:
        status = OperatorStatus(user_id=user_id, state=state, note=note, since=now)
    status.state, status.note, status.since = state, note, now
    status.missed_at = now if missed else None
    session.add(status)


# --- what the operator does ---------------------------------------------------------------------


def check_status(state: str, note: str) -> tuple[str, str]:
    """A state the operator may set (available, away, ready) and, away, an optional short note
    of printable characters."""
    if state not in SETTABLE_STATES:
        raise AppError(
            ErrorCode.INVALID_OPERATOR_STATE,
            f"Unknown state; use one of {', '.join(SETTABLE_STATES)}",
        )
    text = " ".join(note.split())
    if len(text) > MAX_NOTE_CHARS or not text.isprintable():
        raise AppError(
            ErrorCode.INVALID_OPERATOR_STATE,
            f"A note is at most {MAX_NOTE_CHARS} printable characters",
        )
    return ("away" if state == "away" else "available"), (text if state == "away" else "")


async def do_set_status(
    services: Services, staff: StaffContext, *, state: str, note: str = ""
) -> None:
    """The operator says they are available, away (with an optional reason), or ready after a
    wrap-up. Away ends a ring they have (it passes on); available rings them at once if a call
    waits."""
    check_may_answer(staff.role)
    stored, text = check_status(state, note)
    now = services.clock.now()
    audit = services.audit
    released: list[tuple[str, str]] = []
    async with audit.transaction() as session:
        await _set_status(session, staff.user_id, stored, text, now)
        if stored == "away":
            released = list(
                (
                    await session.exec(
                        select(Call.id, Call.channel).where(
                            col(Call.ringing_operator_id) == staff.user_id
                        )
                    )
                ).all()
            )
            await session.exec(
                update(Call)
                .where(col(Call.ringing_operator_id) == staff.user_id)
                .values(ringing_operator_id=None, ring_until=None)
            )
        await audit.record(
            session,
            actor=staff.username,
            action="operator_status_changed",
            subject=f"user:{staff.username}",
            data={"state": state, **({"note": text} if text else {})},
        )
    for call_id, channel in released:
        await _ring_changed(services, call_id, channel, staff.user_id)
    for channel in _channels_of(staff.role):
        await tell_operator(services, staff.user_id, channel)
        wall_changed(services, channel)
    route_soon(services)


async def do_decline(services: Services, staff: StaffContext, call_id: str) -> None:
    """The operator turns down a call that rings them: it rings the next at once, and not them
    again (they may still pick it from the queue)."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        if not await _end_ring(session, call_id, staff.user_id):
            raise AppError(ErrorCode.NOT_RINGING, "This call does not ring you")
        if await session.get(CallDecline, (call_id, staff.user_id)) is None:
            session.add(CallDecline(call_id=call_id, user_id=staff.user_id, at=now))
        await audit.record(
            session,
            actor=staff.username,
            action="call_ring_declined",
            subject=f"call:{call_id}",
        )
        call = await session.get(Call, call_id)
        assert call is not None
    await _ring_changed(services, call_id, call.channel, staff.user_id)
    route_soon(services)


async def do_status(services: Services, staff: StaffContext) -> OperatorStatusEvent | None:
    """The operator's own state now (a console asks when it connects)."""
    for channel in _channels_of(staff.role):
        role = OPERATOR_ROLE_OF_CHANNEL[channel]
        for standing in await operator_standings(services, role):
            if standing.user.id == staff.user_id:
                return OperatorStatusEvent(status=standing.state)
    return None


def _channels_of(role: str) -> list[Channel]:
    return [channel for channel, r in OPERATOR_ROLE_OF_CHANNEL.items() if r == role]


async def do_answered(services: Services, user_id: int, channel: str) -> None:
    """An operator answered a call: they are told they are in it, and one who took it by hand
    stops being rung for any other."""
    await tell_operator(services, user_id, channel)
    async with services.db.session() as session:
        rung = (
            await session.exec(
                select(Call.id, Call.channel).where(col(Call.ringing_operator_id) == user_id)
            )
        ).all()
    for call_id, rung_channel in rung:
        async with services.db.session() as session:
            ended = await _end_ring(session, call_id, user_id)
            await session.commit()
        if not ended:
            continue
        await _ring_changed(services, call_id, rung_channel, user_id)
    if rung:
        route_soon(services)
