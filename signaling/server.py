"""The Socket.IO server, attached to the aiohttp app.

Embedded mode fans out in-process; scale-out mode carries every emit through Redis
(``AsyncRedisManager``) so a client on any node receives it. The websocket transport is the
only one allowed: long-polling would need sticky sessions across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import socketio
from aiohttp import web

from config import Settings

log = logging.getLogger("lifeline.signaling")


class ClosingRedisManager(socketio.AsyncRedisManager):
    """python-socketio's Redis manager leaves its listener task and connections open at
    shutdown; a node that stops (and every test) must close them."""

    def _redis_connect(self) -> None:
        if self.redis is None:
            super()._redis_connect()
            return
        # Reuse the client (redis-py's pool reconnects by itself): the library makes a new one
        # on every (re)connect and drops the old one with its connection still open. A new
        # pubsub opens no connection until the listener subscribes with it.
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def close(self) -> None:
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for name in ("pubsub", "redis"):
            resource = getattr(self, name, None)
            if resource is not None:
                await resource.aclose()


async def close_manager(sio: socketio.AsyncServer) -> None:
    if isinstance(sio.manager, ClosingRedisManager):
        await sio.manager.close()


def allowed_origins(settings: Settings) -> list[str] | None:
    """Only the deployment's own origin; None lets engine.io compare with the Host header."""
    return [settings.PUBLIC_URL] if settings.PUBLIC_URL else None


def create_sio(settings: Settings) -> socketio.AsyncServer:
    manager = (
        ClosingRedisManager(settings.REDIS_URL, channel="lifeline-socketio")
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
