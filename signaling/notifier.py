"""The notifier over Socket.IO: rooms per call and per queue, on the citizen and console
namespaces.

Actions call it only after the event is stored (a failed broadcast loses nothing, since every
client catches up from the database by sequence number when it reconnects), so a delivery
failure is logged, never raised into the action that stored the event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import socketio

from server.actions.queue import console_session_presence
from server.core.events import ServerEvent, SessionEndedEvent, SessionEndReason
from server.core.ports import Presence

log = logging.getLogger("lifeline.signaling")

CITIZEN_NS = "/citizen"
CONSOLE_NS = "/console"
THREAD_NS = "/thread"
REPORTS_ROOM = "reports"


def call_room(call_id: str) -> str:
    return f"call:{call_id}"


def thread_room(thread_id: str) -> str:
    return f"thread:{thread_id}"


def queue_room(channel: str) -> str:
    return f"queue:{channel}"


def staff_room(user_id: int) -> str:
    """One staff member's consoles: a transfer offered to them by name, their own state and
    the calls that ring them (docs/routing.md) go here."""
    return f"staff:{user_id}"


def wall_room(channel: str) -> str:
    """The walls open on a channel: its thumbnails and figures go to them only."""
    return f"wall:{channel}"


class SocketIONotifier:
    """``server.core.ports.Notifier`` over the node's Socket.IO server (in-process or Redis)."""

    def __init__(self, sio: socketio.AsyncServer, presence: Presence) -> None:
        self._sio = sio
        self._presence = presence

    async def _emit(self, event: ServerEvent, room: str, namespace: str) -> None:
        try:
            await self._sio.emit(
                "event", event.model_dump(mode="json"), room=room, namespace=namespace
            )
        except Exception:
            # A call's room by its kind only: it may be an internal-security call's.
            shown = (
                "call"
                if room.startswith(call_room(""))
                else "thread"
                if room.startswith(thread_room(""))
                else room
            )
            log.exception("broadcast failed", extra={"room": shown, "type": event.type})

    async def to_citizen(self, call_id: str, event: ServerEvent) -> None:
        await self._emit(event, call_room(call_id), CITIZEN_NS)

    async def to_call_watchers(self, call_id: str, event: ServerEvent) -> None:
        await self._emit(event, call_room(call_id), CONSOLE_NS)

    async def to_call(self, call_id: str, event: ServerEvent) -> None:
        await self.to_citizen(call_id, event)
        await self.to_call_watchers(call_id, event)

    async def to_own_consoles(self, event: ServerEvent) -> None:
        try:
            await self._sio.emit(
                "event", event.model_dump(mode="json"), namespace=CONSOLE_NS, ignore_queue=True
            )
        except Exception:
            log.exception("telling this node's consoles failed", extra={"type": event.type})

    async def to_queue(self, channel: str, event: ServerEvent) -> None:
        await self._emit(event, queue_room(channel), CONSOLE_NS)

    async def to_staff(self, user_id: int, event: ServerEvent) -> None:
        await self._emit(event, staff_room(user_id), CONSOLE_NS)

    async def to_report_desks(self, event: ServerEvent) -> None:
        await self._emit(event, REPORTS_ROOM, CONSOLE_NS)

    async def to_wall(self, channel: str, event: ServerEvent) -> None:
        await self._emit(event, wall_room(channel), CONSOLE_NS)

    async def to_thread(self, thread_id: str, event: ServerEvent) -> None:
        await self._emit(event, thread_room(thread_id), THREAD_NS)

    async def end_staff_sessions(
        self, session_ids: Sequence[int], reason: SessionEndReason
    ) -> None:
        """A socket on another node is told and closed through the manager (Redis) too."""
        ended = SessionEndedEvent(reason=reason).model_dump(mode="json")
        for session_id in session_ids:
            for sid in await self._presence.members(console_session_presence(session_id)):
                try:
                    await self._sio.emit("event", ended, to=sid, namespace=CONSOLE_NS)
                    await self._sio.disconnect(sid, namespace=CONSOLE_NS)
                except Exception:
                    log.exception("closing a revoked session's socket failed", extra={"sid": sid})
