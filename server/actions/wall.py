"""The supervisor's wall: what it is sent when it opens, and the updates pushed to it after.

A wall opens with everything from the database (the live calls, the operators, today's figures);
after a reconnect it opens again, so it always rebuilds from the record. Between, anything that
changes the operators or the figures (a call's transition, a console coming or going) pushes a
``WallUpdateEvent`` to the walls of that channel. Nothing is computed while no wall watches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from server.actions.access import channels_for, check_sees_wall
from server.actions.queue import live_calls, operator_states
from server.actions.staff_sessions import StaffContext
from server.actions.wall_figures import today_figures
from server.core.events import CallSummary, OperatorState, WallFigures, WallUpdateEvent
from server.core.services import Services
from server.db.models import Channel, Role

# The role whose consoles each channel's wall shows.
OPERATOR_ROLE_OF_CHANNEL = {
    Channel.POLICE: Role.OPERATOR,
    Channel.INTERNAL_SECURITY: Role.INTERNAL_SECURITY,
}


def wall_presence(channel: str) -> str:
    """The walls open on a channel, on every node: whether there is anyone to compute for."""
    return f"wall:{channel}"


@dataclass(frozen=True)
class WallView:
    calls: list[CallSummary]
    operators: list[OperatorState]
    figures: list[WallFigures]
    target_secs: float


async def do_open_wall(services: Services, staff: StaffContext, connection: str) -> WallView:
    """A wall (re)opens: counted as watching its channels, and given all it shows."""
    watched = check_sees_wall(staff.role)
    channels = sorted(channels_for(staff.role))
    for channel in channels:
        await services.presence.join(wall_presence(channel), connection)
    return WallView(
        calls=await live_calls(services, staff.role),
        operators=await operator_states(services, watched),
        figures=[await today_figures(services, channel) for channel in channels],
        target_secs=services.settings.ANSWER_TARGET_SECS,
    )


async def renew_wall(services: Services, role: str, connection: str) -> None:
    """Still open (a Redis TTL would otherwise lapse)."""
    for channel in channels_for(role):
        await services.presence.join(wall_presence(channel), connection)


async def do_close_wall(services: Services, role: str, connection: str) -> None:
    for channel in channels_for(role):
        await services.presence.leave(wall_presence(channel), connection)


async def watched(services: Services, channel: str) -> bool:
    return await services.presence.count(wall_presence(channel)) > 0


async def push_update(services: Services, channel: str) -> None:
    """The channel's operators and figures as they are now, to its walls (none: nothing)."""
    if not await watched(services, channel):
        return
    event = WallUpdateEvent(
        channel=channel,
        operators=await operator_states(services, OPERATOR_ROLE_OF_CHANNEL[Channel(channel)]),
        figures=await today_figures(services, channel),
    )
    await services.notifier.to_wall(channel, event)


def wall_changed(services: Services, channel: str) -> None:
    """Something the walls show changed: pushed in the background, so the action that changed
    it (an accept, say) does not wait for the figures."""
    services.background.spawn(push_update(services, channel), name=f"wall:{channel}")


NEW_DAY_TIMER = "wall-new-day"


def seconds_to_next_day(now: datetime, time_zone: str) -> float:
    """Until the next local midnight in ``time_zone`` (a day of 23 or 25 hours included)."""
    zone = ZoneInfo(time_zone)
    tomorrow = now.astimezone(zone).date() + timedelta(days=1)
    midnight = datetime.combine(tomorrow, time(0), tzinfo=zone)
    return max(0.0, (midnight - now).total_seconds())


def schedule_new_day(services: Services) -> None:
    """At each local midnight (``TIME_ZONE``) every channel's walls get the new day's figures:
    a quiet night must not leave yesterday's on the wall until the first call. Each node pushes
    to the walls it serves: an update is idempotent, so two nodes' pushes do no harm."""

    async def round_() -> None:
        for channel in Channel:
            await push_update(services, channel.value)
        schedule_new_day(services)

    seconds = seconds_to_next_day(services.clock.now(), services.settings.TIME_ZONE)
    services.background.later(services.clock, seconds + 1.0, round_, name=NEW_DAY_TIMER)


def channels_of_role(role: str) -> list[str]:
    """The channels whose walls show this role's consoles."""
    return [c for c, r in OPERATOR_ROLE_OF_CHANNEL.items() if r == role]
