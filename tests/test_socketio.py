"""Socket.IO is attached with the mode's client manager, and refuses foreign origins."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import socketio

from server.node import SIO_KEY
from tests import stores
from tests.staff import Client

EVENT_TIMEOUT_SECS = 5.0


def _url(client: Client) -> str:
    return str(client.make_url("/")).rstrip("/")


async def test_an_emit_reaches_a_client(client: Client) -> None:
    """In scale-out mode this goes through Redis (the AsyncRedisManager) and back."""
    assert client.app is not None
    server = client.app[SIO_KEY]
    expected_manager = socketio.AsyncRedisManager if stores.SCALE_OUT else socketio.AsyncManager
    assert isinstance(server.manager, expected_manager)
    assert isinstance(server.manager, socketio.AsyncRedisManager) == stores.SCALE_OUT

    received: asyncio.Queue[Any] = asyncio.Queue()
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("hello", received.put_nowait)
    await sio.connect(_url(client), transports=["websocket"], headers={"Origin": _url(client)})
    try:
        sid = sio.get_sid()
        await server.emit("hello", {"n": 1}, to=sid)
        assert await asyncio.wait_for(received.get(), EVENT_TIMEOUT_SECS) == {"n": 1}
    finally:
        await sio.disconnect()


async def test_a_foreign_origin_is_refused(client: Client) -> None:
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                _url(client), transports=["websocket"], headers={"Origin": "https://evil.example"}
            )
        assert not sio.connected


async def test_long_polling_is_not_offered(client: Client) -> None:
    """Only websockets: polling would need sticky sessions between nodes."""
    response = await client.get("/socket.io/?EIO=4&transport=polling")
    assert response.status == 400
