"""Socket.IO is attached with the mode's client manager, and refuses foreign origins, the
default namespace and events that pose as its own."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import pytest
import socketio

from server.actions.calls import citizen_presence
from server.core.events import CallStateEvent
from server.http.keys import SERVICES_KEY
from server.node import SIO_KEY
from tests import stores
from tests.sockets import citizen, start_call
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

    started = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        sid = phone.sio.get_sid("/citizen")
        state = CallStateEvent(call_id=started["call_id"], state="queued", at=datetime.now(UTC))
        await server.emit("event", state.model_dump(mode="json"), to=sid, namespace="/citizen")
        assert (await phone.next_event("call.state"))["call_id"] == started["call_id"]


async def test_the_default_namespace_is_refused(client: Client) -> None:
    """Only our namespaces take connections: "/" would take anyone, with no token."""
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                _url(client),
                transports=["websocket"],
                headers={"Origin": _url(client)},
                wait_timeout=EVENT_TIMEOUT_SECS,
            )
        assert not sio.connected
        await sio.eio.disconnect()  # the refused namespace leaves the Engine.IO link open


async def test_a_client_sent_disconnect_event_changes_nothing(client: Client) -> None:
    """A page emitting "disconnect" as an event is refused: the server does not take it for the
    caller leaving (no presence change, no abandon timer), and the socket goes on."""
    started = await start_call(client)
    assert client.app is not None
    presence = client.app[SERVICES_KEY].presence
    background = client.app[SERVICES_KEY].background
    abandon = f"abandon:{started['call_id']}"
    async with citizen(client, started["token"]) as phone:
        reply = await phone.call("disconnect", {})
        assert reply["error"]["code"] == "unknown_event"
        assert (await phone.next_error())["event"] == "disconnect"
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"
        assert await presence.count(citizen_presence(started["call_id"])) == 1
        assert background.scheduled(abandon) == 0  # no abandon timer was started
    await background.until_scheduled(abandon)  # the real disconnect, by contrast, starts one


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
