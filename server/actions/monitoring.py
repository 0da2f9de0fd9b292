"""Silent monitor and barge-in: a wall role watches and hears a live call of its channel, and may
speak to it. The caller is never watched without knowing: the people present (operator,
supervisor, and whether the supervisor speaks) go to the caller's page before any media does,
and again at every change; each start and end is in the audit chain.

Who monitors is presence (``monitor:<call>``, one member per wall socket, on every node), so a
closed wall stops counting at once and a node that dies stops counting when its TTL lapses.
"""

from __future__ import annotations

from server.actions.access import WALL_ROLES
from server.actions.calls import check_call_for_staff, staff_peer
from server.actions.queue import barge_presence, monitor_presence, people_of
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.events import PeoplePresentEvent
from server.core.services import Services
from server.db.models import Call, CallState


def _member(staff_user_id: int, connection: str) -> str:
    return f"{staff_user_id}:{connection}"


async def check_monitor(services: Services, staff: StaffContext, call_id: str) -> Call:
    """A live call this wall role may watch: its own channel's (internal security's calls only
    for internal security: for the others they do not exist), answered."""
    if staff.role not in WALL_ROLES:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only supervisors monitor calls")
    call = await check_call_for_staff(services, call_id, staff)
    if call.state != CallState.ANSWERED:
        raise AppError(ErrorCode.CALL_NOT_LIVE, "Only an answered call can be monitored")
    return call


async def is_monitoring(
    services: Services, staff: StaffContext, call_id: str, connection: str
) -> bool:
    members = await services.presence.members(monitor_presence(call_id))
    return _member(staff.user_id, connection) in members


async def _tell(services: Services, call: Call) -> PeoplePresentEvent:
    people = await people_of(services, call)
    await services.notifier.to_call(call.id, people)
    return people


async def do_monitor(
    services: Services, staff: StaffContext, call_id: str, connection: str, *, on: bool
) -> PeoplePresentEvent:
    """Start (the caller is told first) or stop watching a call from this wall socket."""
    member = _member(staff.user_id, connection)
    if on:
        call = await check_monitor(services, staff, call_id)
        await services.presence.join(monitor_presence(call_id), member)
        await _audit(services, staff, call_id, "call_monitor_started")
        return await _tell(services, call)
    call = await check_call_for_staff(services, call_id, staff)
    return await stop_monitoring(services, staff, call, connection)


async def stop_monitoring(
    services: Services, staff: StaffContext, call: Call, connection: str
) -> PeoplePresentEvent:
    member = _member(staff.user_id, connection)
    was = member in await services.presence.members(monitor_presence(call.id))
    await services.presence.leave(barge_presence(call.id), member)
    await services.presence.leave(monitor_presence(call.id), member)
    await services.media.remove_subscriber(call.id, staff_peer(staff.user_id))
    if was:
        await _audit(services, staff, call.id, "call_monitor_ended")
    return await _tell(services, call)


async def do_barge(
    services: Services, staff: StaffContext, call_id: str, connection: str, *, on: bool
) -> PeoplePresentEvent:
    """The monitoring supervisor's voice to the caller and the operator, or silent again."""
    call = await check_monitor(services, staff, call_id)
    member = _member(staff.user_id, connection)
    if not await is_monitoring(services, staff, call_id, connection):
        raise AppError(ErrorCode.NOT_MONITORING, "Monitor the call first")
    if on:
        # The caller is told before the voice can reach them.
        await services.presence.join(barge_presence(call_id), member)
        await _tell(services, call)
    await services.media.barge(call_id, staff_peer(staff.user_id), on=on)
    if not on:
        await services.presence.leave(barge_presence(call_id), member)
    await _audit(services, staff, call_id, "call_barge_in" if on else "call_barge_out")
    return await _tell(services, call)


async def renew_monitoring(
    services: Services, staff_user_id: int, call_ids: list[str], connection: str
) -> None:
    """Still watching (a Redis TTL would otherwise lapse)."""
    member = _member(staff_user_id, connection)
    for call_id in call_ids:
        if member in await services.presence.members(monitor_presence(call_id)):
            await services.presence.join(monitor_presence(call_id), member)
        if member in await services.presence.members(barge_presence(call_id)):
            await services.presence.join(barge_presence(call_id), member)


async def do_wall_left(
    services: Services, staff_user_id: int, username: str, call_ids: list[str], connection: str
) -> None:
    """A wall socket closed: whatever it watched, it watches no more."""
    member = _member(staff_user_id, connection)
    for call_id in call_ids:
        if member not in await services.presence.members(monitor_presence(call_id)):
            continue
        # In the chain before it stops counting: whoever sees it gone finds it recorded.
        async with services.audit.transaction() as session:
            await services.audit.record(
                session, actor=username, action="call_monitor_ended", subject=f"call:{call_id}"
            )
        await services.presence.leave(barge_presence(call_id), member)
        await services.presence.leave(monitor_presence(call_id), member)
        await services.media.remove_subscriber(call_id, staff_peer(staff_user_id))
        async with services.db.session() as session:
            call = await session.get(Call, call_id)
        if call is not None:
            await _tell(services, call)


async def _audit(services: Services, staff: StaffContext, call_id: str, action: str) -> None:
    async with services.audit.transaction() as session:
        await services.audit.record(
            session, actor=staff.username, action=action, subject=f"call:{call_id}"
        )
