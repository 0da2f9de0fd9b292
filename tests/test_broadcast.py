"""BroadcastManager (signaling/server.py): a broadcast without a task per recipient.

It replaces a branch of python-socketio's own emit and uses its internals, so it is pinned:
another python-socketio or python-engineio version fails here first.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version
from typing import Any

import socketio

from server.core.media_rpc import NAMESPACE, node_room
from server.node import MEDIA_SECRET_KEY, SIO_KEY
from signaling.server import BroadcastManager, broadcast_channel
from tests.sockets import base_url
from tests.staff import Client

WRITTEN_AGAINST = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}


def test_written_against_these_versions() -> None:
    assert {name: version(name) for name in WRITTEN_AGAINST} == WRITTEN_AGAINST


async def test_every_recipient_gets_each_broadcast_once(client: Client) -> None:
    """Five clients in one room (media nodes, the simplest to let in): plain, tuple and empty
    payloads reach each once; a skipped sid gets nothing; a callback emit still answers."""
    assert client.app is not None
    sio = client.app[SIO_KEY]
    assert isinstance(sio.manager, BroadcastManager)  # embedded and Redis managers alike
    received: list[list[tuple[str, Any]]] = [[] for _ in range(5)]
    clients: list[socketio.AsyncClient] = []
    try:
        for index in range(5):
            peer = socketio.AsyncClient(reconnection=False)

            def keep(*args: Any, _i: int = index) -> str:
                received[_i].append(("ping", args))
                return "pong"

            peer.on("ping", keep, namespace=NAMESPACE)
            await peer.connect(
                base_url(client),
                namespaces=[NAMESPACE],
                transports=["websocket"],
                auth={"secret": client.app[MEDIA_SECRET_KEY], "node": "shared"},
                wait_timeout=5,
            )
            clients.append(peer)
        room = node_room("shared")
        skipped = clients[0].get_sid(NAMESPACE)
        await sio.emit("ping", {"n": 1}, room=room, namespace=NAMESPACE)
        await sio.emit("ping", ("a", 2), room=room, namespace=NAMESPACE)
        await sio.emit("ping", None, room=room, namespace=NAMESPACE, skip_sid=skipped)
        reply = await sio.call(
            "ping", {"n": 3}, to=clients[1].get_sid(NAMESPACE), namespace=NAMESPACE
        )
        assert reply == "pong"
        for _ in range(100):
            if sum(len(r) for r in received) == 3 * 5 - 1 + 1:
                break
            await asyncio.sleep(0.02)
        expected = [("ping", ({"n": 1},)), ("ping", ("a", 2)), ("ping", ())]
        assert received[0] == expected[:2]
        assert received[1] == [*expected, ("ping", ({"n": 3},))]
        for later in received[2:]:
            assert later == expected
    finally:
        for peer in clients:
            await peer.disconnect()


def test_deployments_on_one_redis_server_use_channels_of_their_own() -> None:
    """Pub/sub ignores the database number: the channel name carries it."""
    one = broadcast_channel("redis://127.0.0.1:6379/6")
    other = broadcast_channel("redis://127.0.0.1:6379/15")
    assert one != other
    assert broadcast_channel("redis://127.0.0.1:6379") == broadcast_channel("redis://h:1/0")
