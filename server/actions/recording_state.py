"""A call recorded or not: what its media node reports when the recording volume runs low and
when space comes back (media/disk_space.py).

The state is kept on the call (``calls.recording_paused_at``), so a console or a wall that opens
later sees it in the call's summary, and every change is entered in the chain
(``recording_paused``, ``recording_resumed``): an investigator sees why a recording has a gap.
The call itself goes on either way.
"""

from __future__ import annotations

import logging

from server.actions.queue import LIVE_STATES, summary_of
from server.core.events import QueueCallUpdated
from server.core.media_rpc import RecordingState
from server.core.services import Services
from server.db.models import Call

log = logging.getLogger("lifeline.recording")


async def do_recording_state(
    services: Services, state: RecordingState, *, media_node: str | None = None
) -> bool:
    """Keep and tell a call's recording paused or resumed; False when nothing changed (a
    report sent again, a call gone)."""
    node = media_node or services.settings.NODE_ID
    action = "recording_resumed" if state.recording else "recording_paused"
    async with services.audit.transaction() as session:
        call = await session.get(Call, state.call_id)
        if call is None or (call.recording_paused_at is None) == state.recording:
            return False
        call.recording_paused_at = None if state.recording else services.clock.now()
        session.add(call)
        await services.audit.record(
            session,
            actor="system:recorder",
            action=action,
            subject=f"call:{call.id}",
            data={
                "reason": state.reason,
                "segment": state.segment,
                "free_bytes": state.free_bytes,
                "min_free_bytes": state.min_free_bytes,
                "media_node": node,
            },
        )
    log.warning(
        "call not recording" if not state.recording else "call recording again",
        extra={
            "call_id": state.log_as or state.call_id,
            "reason": state.reason,
            "free_bytes": state.free_bytes,
            "media_node": node,
        },
    )
    if call.state in LIVE_STATES:
        summary = await summary_of(services, call)
        await services.notifier.to_queue(call.channel, QueueCallUpdated(call=summary))
    return True
