"""Marking a call: what the system noticed about it, for the operator and the wall to see.

An emergency line is never closed to a caller by a mechanism meant for abuse: a page flooding
its socket with events, or (later) a caller far over the call-rate limit, is still a call. It
gets a mark, is shown with it and queued after unmarked calls, and a person decides.
"""

from __future__ import annotations

import logging

from server.actions.queue import CALL_MARKS, marks_of, summary_of
from server.actions.queue_position import queue_changed
from server.core.events import CallMark, QueueCallUpdated
from server.core.services import Services
from server.db.models import Call

log = logging.getLogger("lifeline.calls")


async def do_mark_call(
    services: Services, call_id: str, mark: CallMark, *, actor: str, reason: str
) -> bool:
    """Add ``mark`` to a live call, once; audited and shown on every console of its channel.
    False when the call is gone or already has the mark."""
    assert mark in CALL_MARKS
    async with services.audit.transaction() as session:
        call = await session.get(Call, call_id)
        if call is None or mark in marks_of(call):
            return False
        call.marks = ",".join([*marks_of(call), mark])
        session.add(call)
        await services.audit.record(
            session,
            actor=actor,
            action="call_marked",
            subject=f"call:{call.id}",
            data={"mark": mark, "reason": reason},
        )
    log.warning("call marked", extra={"mark": mark, "reason": reason})
    summary = await summary_of(services, call)
    await services.notifier.to_queue(call.channel, QueueCallUpdated(call=summary))
    queue_changed(services, call.channel)  # a marked call moves behind the rest
    return True
