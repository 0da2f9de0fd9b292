"""The queue as consoles and the wall see it: live calls with their operator and last position,
and what each operator is doing (in a call, available on any node, offline)."""

from __future__ import annotations

from typing import Literal

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.access import channels_for
from server.actions.staff_sessions import StaffContext
from server.core.events import CallMark, CallSummary, OperatorState
from server.core.services import Services
from server.db.models import Call, CallState, Channel, LocationSample, User

# What the system may notice about a call, in the order the queue shows them.
CALL_MARKS: tuple[CallMark, ...] = ("suspected_abuse", "flooding")

# The states of a call still going on: in the queue or answered.
LIVE_STATES = (CallState.QUEUED, CallState.ANSWERED)


def console_presence(user_id: int) -> str:
    return f"console:{user_id}"


def console_session_presence(session_id: int) -> str:
    """The console sockets of one staff session, on every node: what a revocation closes."""
    return f"console-session:{session_id}"


async def last_location(session: AsyncSession, call_id: str) -> LocationSample | None:
    return (
        await session.exec(
            select(LocationSample)
            .where(col(LocationSample.call_id) == call_id)
            .order_by(col(LocationSample.seq).desc())
            .limit(1)
        )
    ).first()


async def _summarize(session: AsyncSession, call: Call) -> CallSummary:
    """The queue's view of a call: with its operator's name and its latest position."""
    last = await last_location(session, call.id)
    operator = None
    if call.operator_id is not None:
        user = await session.get(User, call.operator_id)
        operator = user.username if user else None
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
        marks=marks_of(call),
    )


async def summary_of(services: Services, call: Call) -> CallSummary:
    async with services.db.session() as session:
        return await _summarize(session, call)


def marks_of(call: Call) -> list[CallMark]:
    return [m for m in CALL_MARKS if m in call.marks.split(",")]


async def live_calls(services: Services, role: str) -> list[CallSummary]:
    """Queued and answered calls of the channels this role may see: unmarked ones first, each
    group oldest first (a marked call is demoted, never dropped)."""
    allowed = channels_for(role)
    async with services.db.session() as session:
        calls = (
            await session.exec(
                select(Call)
                .where(col(Call.state).in_(LIVE_STATES), col(Call.channel).in_(allowed))
                .order_by(col(Call.created_at))
            )
        ).all()
        summaries = [await _summarize(session, call) for call in calls]
    return sorted(summaries, key=lambda summary: bool(summary.marks))


async def do_console_connected(services: Services, staff: StaffContext, connection: str) -> None:
    """Also each time the node renews its sockets' presence (a TTL in Redis)."""
    await services.presence.join(console_presence(staff.user_id), connection)
    await services.presence.join(console_session_presence(staff.session_id), connection)


async def do_console_left(
    services: Services, user_id: int, session_id: int, connection: str
) -> None:
    await services.presence.leave(console_presence(user_id), connection)
    await services.presence.leave(console_session_presence(session_id), connection)


async def operator_states(services: Services, role: str) -> list[OperatorState]:
    """Each active account of ``role``: ``in_call`` (answering one), ``available`` (a console
    open, on any node), or ``offline``."""
    async with services.db.session() as session:
        users = (
            await session.exec(
                select(User)
                .where(col(User.role) == role, col(User.disabled).is_(False))
                .order_by(col(User.username))
            )
        ).all()
        busy = set(
            (
                await session.exec(
                    select(Call.operator_id).where(col(Call.state) == CallState.ANSWERED)
                )
            ).all()
        )
    states: list[OperatorState] = []
    for user in users:
        if user.id in busy:
            state: Literal["in_call", "available", "offline"] = "in_call"
        elif await services.presence.count(console_presence(user.id or 0)) > 0:
            state = "available"
        else:
            state = "offline"
        states.append(OperatorState(username=user.username, state=state))
    return states


async def queued_by_channel(services: Services) -> dict[str, int]:
    """How many calls wait in each channel's queue now, every channel named (0 included): the
    whole deployment's, from the database, the same on every node."""
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(Call.channel, func.count())
                .where(col(Call.state) == CallState.QUEUED)
                .group_by(col(Call.channel))
            )
        ).all()
    counts = {channel.value: 0 for channel in Channel}
    counts.update({channel: int(count) for channel, count in rows})
    return counts
