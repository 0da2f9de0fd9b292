"""Where events go: rooms per call and per queue, on the citizen and console namespaces.

Called only after the event is stored (DESIGN invariant 2): a failed broadcast loses nothing,
since every client catches up from the database by sequence number when it reconnects.
"""

from __future__ import annotations

import logging

import socketio
from pydantic import BaseModel

from signaling.base import dump

log = logging.getLogger("lifeline.signaling")

CITIZEN_NS = "/citizen"
CONSOLE_NS = "/console"


def call_room(call_id: str) -> str:
    return f"call:{call_id}"


def queue_room(channel: str) -> str:
    return f"queue:{channel}"


async def _emit(sio: socketio.AsyncServer, event: BaseModel, room: str, namespace: str) -> None:
    try:
        await sio.emit("event", dump(event), room=room, namespace=namespace)
    except Exception:
        log.exception("broadcast failed", extra={"room": room})


async def to_citizen(sio: socketio.AsyncServer, call_id: str, event: BaseModel) -> None:
    await _emit(sio, event, call_room(call_id), CITIZEN_NS)


async def to_call_watchers(sio: socketio.AsyncServer, call_id: str, event: BaseModel) -> None:
    """The operator of the call and any supervisor watching it."""
    await _emit(sio, event, call_room(call_id), CONSOLE_NS)


async def to_queue(sio: socketio.AsyncServer, channel: str, event: BaseModel) -> None:
    """Every console that may see this channel's queue."""
    await _emit(sio, event, queue_room(channel), CONSOLE_NS)
