"""Socket.IO is attached with the mode's client manager, and refuses foreign origins, the
default namespace and events that pose as its own."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import aiohttp
import pytest
import socketio

from config import Settings
from server.actions.calls import citizen_presence
from server.app import create_app
from server.core.events import CallStateEvent
from server.http.keys import SERVICES_KEY
from server.node import SIO_KEY
from tests import stores
from tests.conftest import ClientFactory
from tests.sockets import citizen, connect, start_call
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


async def test_a_spoofed_host_does_not_make_a_foreign_origin_ours(client: Client) -> None:
    """Without PUBLIC_URL, the origin must be the address the connection reached: a page at
    evil.example that sends ``Host: evil.example`` (DNS rebinding does) is still refused."""
    started = await start_call(client)
    spoofed = {"Origin": "http://evil.example", "Host": "evil.example"}
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        refusals: list[object] = []
        sio.on("connect_error", refusals.append, namespace="/citizen")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                _url(client),
                namespaces=["/citizen"],
                transports=["websocket"],
                auth={"token": started["token"], "last_seq": 0},
                headers=spoofed,
                wait_timeout=EVENT_TIMEOUT_SECS,
            )
        assert not sio.connected
        await sio.eio.disconnect()
    assert refusals == [{"message": "Foreign origin", "data": {"code": "foreign_origin"}}]
    async with citizen(client, started["token"]) as phone:  # our own address: accepted
        assert (await phone.call("resume", {}))["ok"]


async def test_a_named_origin_may_connect(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    named = settings.model_copy(update={"ALLOWED_ORIGINS": ["https://lifeline.example"]})
    other = await aiohttp_client(create_app(named))
    started = await start_call(other)
    auth = {"token": started["token"], "last_seq": 0}
    async with connect(
        _url(other), "/citizen", auth=auth, headers={"Origin": "https://lifeline.example"}
    ) as phone:
        assert (await phone.call("resume", {}))["ok"]
    with pytest.raises(socketio.exceptions.ConnectionError):  # its own address is not named
        async with connect(_url(other), "/citizen", auth=auth):
            pass


async def test_malformed_frames_are_dropped_and_said_once(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage written into the websocket before any token: no ERROR, no traceback, one warning
    for the connection, and the connection still works (it can join a namespace after)."""
    started = await start_call(client)
    garbage = ["", "zz", "\x00\x01", "9", "4", "4zzz", "42[", "40/citizen,{bad json", "45-[]",
               "44/citizen,{}", "42", "42[]", "42{}", "42[1]", "4" + "a" * 100]  # fmt: skip
    with caplog.at_level(logging.DEBUG):
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                f"{_url(client)}/socket.io/?EIO=4&transport=websocket",
                headers={"Origin": _url(client)},
            )
            assert (await ws.receive_str()).startswith("0{")  # Engine.IO open
            for frame in garbage:
                await ws.send_str(frame)
            auth = json.dumps({"token": started["token"], "last_seq": 0})
            await ws.send_str(f"40/citizen,{auth}")
            while True:  # events may come first; the namespace's connect answer must come
                reply = await asyncio.wait_for(ws.receive_str(), EVENT_TIMEOUT_SECS)
                if reply.startswith("40/citizen,"):
                    break
            assert '"sid"' in reply
            await ws.close()
    dropped = [r for r in caplog.records if "malformed frame" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].levelno == logging.WARNING
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [r for r in caplog.records if r.exc_info]


async def test_long_polling_is_not_offered(client: Client) -> None:
    """Only websockets: polling would need sticky sessions between nodes."""
    response = await client.get("/socket.io/?EIO=4&transport=polling")
    assert response.status == 400
