"""The waiting caller's place in the queue, told to their page whenever the queue changes.

The place is computed from the database the way ``live_calls`` orders the consoles' queue
(unmarked calls first, each group oldest first), so every node gives the same answer. A marked
call gets no number: its page just says it waits. The time waited counts from the call's last
entry into the queue (a transfer puts it back).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import col, func, select

from server.actions.queue import marks_of
from server.core.events import QueuePositionEvent
from server.core.services import Services
from server.db.models import Call, CallState, CallTransition


async def queue_positions(services: Services, channel: str) -> list[QueuePositionEvent]:
    """Every waiting call of the channel with its place, in queue order."""
    async with services.db.session() as session:
        calls = (
            await session.exec(
                select(Call)
                .where(col(Call.state) == CallState.QUEUED, col(Call.channel) == channel)
                .order_by(col(Call.created_at), col(Call.id))
            )
        ).all()
        entered: dict[str, datetime] = {}
        if calls:
            rows = await session.exec(
                select(CallTransition.call_id, func.max(CallTransition.at))
                .where(
                    col(CallTransition.call_id).in_([call.id for call in calls]),
                    col(CallTransition.to_state) == CallState.QUEUED,
                )
                .group_by(col(CallTransition.call_id))
            )
            entered = {call_id: at for call_id, at in rows.all()}
    now = services.clock.now()
    ordered = sorted(calls, key=lambda call: bool(marks_of(call)))
    events = []
    place = 0
    for call in ordered:
        since = entered.get(call.id, call.created_at)
        if since.tzinfo is None:
            since = since.replace(tzinfo=now.tzinfo)
        position = None
        if not marks_of(call):
            place += 1
            position = place
        events.append(
            QueuePositionEvent(
                call_id=call.id,
                position=position,
                waited_secs=max(0.0, (now - since).total_seconds()),
            )
        )
    return events


async def position_of_call(services: Services, call_id: str) -> QueuePositionEvent | None:
    """This call's place (None unless it waits): what a page that (re)connects is told."""
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    if call is None or call.state != CallState.QUEUED:
        return None
    for event in await queue_positions(services, call.channel):
        if event.call_id == call.id:
            return event
    return None


async def push_positions(services: Services, channel: str) -> None:
    """Each waiting caller of the channel, on whatever node their page is, gets their place."""
    for event in await queue_positions(services, channel):
        await services.notifier.to_citizen(event.call_id, event)


def queue_changed(services: Services, channel: str) -> None:
    """A call joined, left or moved in the queue: the places are told in the background, so
    the action that changed it (an accept, say) does not wait for them."""
    services.background.spawn(push_positions(services, channel), name=f"queue-places:{channel}")
