"""The Socket.IO server, attached to the aiohttp app.

Embedded mode fans out in-process; scale-out mode carries every emit through Redis
(``AsyncRedisManager``) so a client on any node receives it. The websocket transport is the
only one allowed: long-polling would need sticky sessions across nodes.
"""

from __future__ import annotations

import logging

import socketio
from aiohttp import web

from config import Settings

log = logging.getLogger("lifeline.signaling")


def allowed_origins(settings: Settings) -> list[str] | None:
    """Only the deployment's own origin; None lets engine.io compare with the Host header."""
    return [settings.PUBLIC_URL] if settings.PUBLIC_URL else None


def create_sio(settings: Settings) -> socketio.AsyncServer:
    manager = (
        socketio.AsyncRedisManager(settings.REDIS_URL, channel="lifeline-socketio")
        if settings.REDIS_URL
        else None
    )
    kwargs = {"client_manager": manager} if manager is not None else {}
    return socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=allowed_origins(settings),
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
        **kwargs,
    )


def attach(sio: socketio.AsyncServer, app: web.Application) -> None:
    sio.attach(app, socketio_path="socket.io")
