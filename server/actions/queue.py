"""The queue as consoles and the wall see it: live calls with their operator, the operator they
ring and their last position, and what each operator is doing (available, ringing, in a call,
wrap-up, away, offline: docs/routing.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import get_args

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions import participants
from server.actions.access import channels_for
from server.actions.media_liveness import MediaSilence, media_silence
from server.actions.staff_sessions import StaffContext
from server.actions.users import skills_of
from server.core.events import (
    CallMark,
    CallSummary,
    OperatorState,
    PeoplePresentEvent,
    PresentRole,
    SituationName,
)
from server.core.services import Services
from server.db.models import (
    Call,
    CallOffer,
    CallParticipant,
    CallState,
    CallTransition,
    Channel,
    LocationSample,
    OperatorStatus,
    Role,
    StaffSession,
    User,
)
from server.security.call_code import verification_code

# What the system may notice about a call, in the order the queue shows them.
CALL_MARKS: tuple[CallMark, ...] = ("suspected_abuse", "flooding")

# "What is happening?": every situation a caller may name, in the order the page offers them.
SITUATIONS: tuple[SituationName, ...] = get_args(SituationName)

# The states of a call still going on: in the queue, answered, or offered by name to another
# operator after its first left (a cold transfer, server/actions/transfers.py).
LIVE_STATES = (CallState.QUEUED, CallState.ANSWERED, CallState.TRANSFERRED)


def citizen_presence(call_id: str) -> str:
    """The caller's page(s) of a call, on every node."""
    return f"citizen:{call_id}"


def monitor_presence(call_id: str) -> str:
    """The wall sockets monitoring a call (server/actions/monitoring.py), on every node."""
    return f"monitor:{call_id}"


def barge_presence(call_id: str) -> str:
    """Those of them speaking to the call."""
    return f"barge:{call_id}"


async def people_of(services: Services, call: Call) -> PeoplePresentEvent:
    """Who is on the call besides the caller, as the caller's page shows it: its operator once
    answered, a second operator or a supervisor who joined it (a warm transfer, a conference:
    server/actions/participants.py), a supervisor while one monitors (and whether they
    speak)."""
    roles: list[PresentRole] = []
    if call.state == CallState.ANSWERED and call.operator_id is not None:
        roles.append("operator")
        async with services.db.session() as session:
            joined = await participants.present(session, call.id)
        roles.extend(
            "supervisor" if guest.role == Role.SUPERVISOR else "operator"
            for guest in joined
            if guest.user_id != call.operator_id
        )
    if await services.presence.count(monitor_presence(call.id)) > 0:
        roles.append("supervisor")
    speaking: list[PresentRole] = []
    if await services.presence.count(barge_presence(call.id)) > 0:
        speaking.append("supervisor")
    return PeoplePresentEvent(call_id=call.id, roles=roles, speaking=speaking)


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


def shown_name(user: User | None) -> str | None:
    """How a caller is told who answered: the display name set on /admin, else the username."""
    if user is None:
        return None
    return user.display_name or user.username


def code_of(services: Services, call: Call) -> list[str]:
    """An answered call's three words (the caller's language); none while it waits or after."""
    if call.state != CallState.ANSWERED:
        return []
    return verification_code(services.pseudonyms, call.id, call.language)


async def _summarize(
    services: Services, session: AsyncSession, call: Call, silence: MediaSilence
) -> CallSummary:
    """The queue's view of a call: with its operator's name and its latest position."""
    last = await last_location(session, call.id)
    operator = None
    user = await session.get(User, call.operator_id) if call.operator_id is not None else None
    if user is not None:
        operator = user.username
    rung = None
    if call.ringing_operator_id is not None:
        rung = await session.get(User, call.ringing_operator_id)
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
        situation=situation_of(call),
        verification_code=code_of(services, call),
        operator_name=shown_name(user),
        operator_badge=user.badge if user is not None else None,
        transfer_note=await _transfer_note(session, call),
        ringing=rung.username if rung is not None else None,
        ring_until=call.ring_until if rung is not None else None,
        recording_paused_at=call.recording_paused_at,
        media_lost=call.state in LIVE_STATES and silence.lost(call.media_node),
    )


async def _transfer_note(session: AsyncSession, call: Call) -> str | None:
    """A waiting call's note from the transfer that put it there: its last offer's (a named
    target who did not take it), else the hand-back's own (the transition's reason)."""
    if call.state not in (CallState.QUEUED, CallState.TRANSFERRED):
        return None
    offer = (
        await session.exec(
            select(CallOffer.note)
            .where(col(CallOffer.call_id) == call.id)
            .order_by(col(CallOffer.id).desc())
            .limit(1)
        )
    ).first()
    if offer:
        return offer
    handed = (
        await session.exec(
            select(CallTransition.reason)
            .where(
                col(CallTransition.call_id) == call.id,
                col(CallTransition.to_state) == CallState.TRANSFERRED,
            )
            .order_by(col(CallTransition.id).desc())
            .limit(1)
        )
    ).first()
    return handed or None


async def summary_of(
    services: Services, call: Call, silence: MediaSilence | None = None
) -> CallSummary:
    """``silence``: the media nodes' as already read for a round of many calls."""
    if silence is None:
        silence = await media_silence(services)
    async with services.db.session() as session:
        summary = await _summarize(services, session, call, silence)
    return await with_caller_presence(services, summary)


async def with_caller_presence(services: Services, summary: CallSummary) -> CallSummary:
    connected = await services.presence.count(citizen_presence(summary.call_id)) > 0
    return summary.model_copy(update={"caller_connected": connected})


def situation_of(call: Call) -> SituationName | None:
    """The call's situation as the pages show it (a value no longer offered shows as none)."""
    return call.situation if call.situation in SITUATIONS else None


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
        silence = await media_silence(services)
        summaries = [await _summarize(services, session, call, silence) for call in calls]
    summaries = [await with_caller_presence(services, summary) for summary in summaries]
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


@dataclass(frozen=True)
class Standing:
    """One operator as routing and the wall see them: the state shown, and since when they are
    idle (available): the later of signing in, setting themselves available, and the end of
    their last call or of its wrap-up. The longest idle is rung first."""

    user: User
    state: OperatorState
    idle_since: datetime | None


async def operator_standings(services: Services, role: str) -> list[Standing]:
    """Each active account of ``role``, by username (docs/routing.md): ``in_call`` (answering
    one, since it answered), ``offline`` (no console open on any node; since its session was
    last seen), ``ringing`` (a call rings them), then what they set after their last call
    (``available``, or ``away`` with a note), else ``wrap_up`` for WRAP_UP_SECS after it, else
    what they set before it (none: available)."""
    now = services.clock.now()
    wrap_secs = services.settings.WRAP_UP_SECS
    async with services.db.session() as session:
        users = (
            await session.exec(
                select(User)
                .where(col(User.role) == role, col(User.disabled).is_(False))
                .order_by(col(User.username))
            )
        ).all()
        ids = [user.id for user in users]
        answering = {
            operator_id: (call_id, answered_at)
            for operator_id, call_id, answered_at in (
                await session.exec(
                    select(Call.operator_id, Call.id, Call.answered_at).where(
                        col(Call.state) == CallState.ANSWERED, col(Call.operator_id).in_(ids)
                    )
                )
            ).all()
        }
        # On a call without holding it: a warm transfer's target, a conference's second
        # operator (docs/transfers.md); in that call as far as routing is concerned.
        guests = {
            user_id: (call_id, joined_at)
            for user_id, call_id, joined_at in (
                await session.exec(
                    select(CallParticipant.user_id, Call.id, CallParticipant.joined_at)
                    .join(Call, col(Call.id) == col(CallParticipant.call_id))
                    .where(
                        col(CallParticipant.user_id).in_(ids),
                        col(CallParticipant.left_at).is_(None),
                        col(Call.state).in_(LIVE_STATES),
                    )
                )
            ).all()
        }
        ringing = {
            operator_id: (call_id, until)
            for operator_id, call_id, until in (
                await session.exec(
                    select(Call.ringing_operator_id, Call.id, Call.ring_until).where(
                        col(Call.state) == CallState.QUEUED,
                        col(Call.ringing_operator_id).in_(ids),
                    )
                )
            ).all()
        }
        last_ended = dict(
            (
                await session.exec(
                    select(Call.operator_id, func.max(Call.ended_at))
                    .where(col(Call.operator_id).in_(ids))
                    .group_by(col(Call.operator_id))
                )
            ).all()
        )
        sessions = {
            user_id: (created, seen)
            for user_id, created, seen in (
                await session.exec(
                    select(
                        StaffSession.user_id,
                        func.max(StaffSession.created_at),
                        func.max(StaffSession.last_seen_at),
                    )
                    .where(col(StaffSession.user_id).in_(ids))
                    .group_by(col(StaffSession.user_id))
                )
            ).all()
        }
        statuses = {
            status.user_id: status
            for status in (
                await session.exec(
                    select(OperatorStatus).where(col(OperatorStatus.user_id).in_(ids))
                )
            ).all()
        }
    standings: list[Standing] = []
    for user in users:
        uid = user.id or 0
        signed_in, seen = sessions.get(uid, (None, None))
        shown = OperatorState(
            username=user.username, state="offline", skills=skills_of(user.skills)
        )
        idle_since = None
        if uid in answering or uid in guests:
            call_id, answered_at = answering.get(uid) or guests[uid]
            shown = shown.model_copy(
                update={"state": "in_call", "since": answered_at, "call_id": call_id}
            )
        elif await services.presence.count(console_presence(uid)) == 0:
            shown = shown.model_copy(update={"since": _aware(seen) if seen else None})
        elif uid in ringing:
            call_id, until = ringing[uid]
            since = (
                _aware(until) - timedelta(seconds=services.settings.RING_SECS) if until else None
            )
            shown = shown.model_copy(
                update={"state": "ringing", "since": since, "call_id": call_id, "until": until}
            )
        else:
            status = statuses.get(uid)
            last = last_ended.get(uid)
            ended = _aware(last) if last is not None else None
            set_after = status is not None and (ended is None or _aware(status.since) >= ended)
            wrap_end = ended + timedelta(seconds=wrap_secs) if ended and wrap_secs > 0 else None
            if not set_after and wrap_end is not None and wrap_end > now:
                shown = shown.model_copy(
                    update={"state": "wrap_up", "since": ended, "until": wrap_end}
                )
            elif status is not None and status.state == "away":
                shown = shown.model_copy(
                    update={
                        "state": "away",
                        "since": _aware(status.since),
                        "note": status.note,
                        "missed_at": status.missed_at,
                    }
                )
            else:
                moments = [m for m in (signed_in, ended, wrap_end) if m is not None]
                if status is not None:
                    moments.append(status.since)
                idle_since = max((_aware(m) for m in moments), default=None)
                shown = shown.model_copy(update={"state": "available", "since": idle_since})
        standings.append(Standing(user=user, state=shown, idle_since=idle_since))
    return standings


async def operator_states(services: Services, role: str) -> list[OperatorState]:
    """What the wall shows of each operator of ``role`` (operator_standings)."""
    return [standing.state for standing in await operator_standings(services, role)]


def _aware(moment: datetime) -> datetime:
    """An aggregate's datetime (SQLite returns MAX() of a column as text-born naive): UTC."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
