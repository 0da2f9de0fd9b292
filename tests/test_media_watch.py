"""The wall's "reconnecting" (issue 11, item 2): a call whose media node goes silent, as a node
killed with ``kill -9`` does, is pushed to the wall as media lost within LOST_SECS plus one watch
round of the clock, and as back once the caller's next offer has placed its media on a live
node. The media nodes here are real Socket.IO clients of the media namespace that report load
and answer offers; the clock is frozen, so "silent" is the clock moved on without a report.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import socketio

from config import Settings
from server.actions.media_liveness import HOME_GONE_SECS, LOST_SECS, MediaSilence, media_silence
from server.actions.media_watch import WATCH_SECS
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.media_rpc import LOAD, NAMESPACE
from server.db.models import Call
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_SECRET_KEY, SIO_KEY
from server.state.media_nodes import STALE_SECS
from signaling.server import close_manager
from tests.conftest import ClientFactory
from tests.sockets import Peer, base_url, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in
from tests.test_redis_outage import OwnRedis

OFFER = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Media in media nodes only (no hub in the server), as on a node with workers."""
    return settings.model_copy(update={"MEDIA_WORKERS": 1})


@asynccontextmanager
async def fake_media_node(client: Client, node_id: str) -> AsyncIterator[socketio.AsyncClient]:
    """A media node that answers every caller's offer and reports only when told to."""
    assert client.app is not None
    node = socketio.AsyncClient(reconnection=False)
    node.on("citizen_offer", lambda data: {"ok": True, "sdp": ANSWER}, namespace=NAMESPACE)
    await node.connect(
        base_url(client),
        namespaces=[NAMESPACE],
        transports=["websocket"],
        auth={"secret": client.app[MEDIA_SECRET_KEY], "node": node_id},
        wait_timeout=5,
    )
    try:
        yield node
    finally:
        await node.disconnect()


async def _report(client: Client, node: socketio.AsyncClient, node_id: str) -> None:
    """A load report, once the server has stamped it with the clock's now."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    await node.emit(LOAD, {"sessions": 1, "admit": True}, namespace=NAMESPACE)
    now = services.clock.now().timestamp()
    for _ in range(250):  # until the server has handled the report, not for a time
        seen = await services.media_nodes.last_seen()
        heard = None if seen is None else seen.get(node_id)
        if heard is not None and heard.seen == now:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{node_id}'s report never arrived")


async def _media_node_of(client: Client, call_id: str) -> str | None:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        return call.media_node


async def _update(wall: Peer, call_id: str) -> dict[str, Any]:
    while True:
        event = await wall.next_event("queue.call_updated")
        if event["call"]["call_id"] == call_id:
            return event["call"]


def _on_wall(reply: dict[str, Any], call_id: str) -> dict[str, Any]:
    [call] = [c for c in reply["calls"] if c["call_id"] == call_id]
    return call


async def test_a_silent_media_nodes_calls_show_reconnecting_until_placed_anew(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    supervisor = await another_browser(client)
    await sign_in(supervisor, await add_account(client, "sara", "supervisor"), clock)
    started = await start_call(client)
    call_id = started["call_id"]
    async with (
        fake_media_node(client, "w.m1") as first,
        fake_media_node(client, "w.m2") as second,
        citizen(client, started["token"]) as phone,
        console(operator) as desk,
        console(supervisor) as wall,
    ):
        answer = await phone.call("media_offer", {"type": "offer", "sdp": OFFER})
        assert answer["ok"] and answer["sdp"] == ANSWER, answer
        assert await _media_node_of(client, call_id) == "w.m1"  # the first of two idle nodes
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        shown = await wall.call("wall", {})
        assert _on_wall(shown, call_id)["media_lost"] is False

        # w.m1 falls silent; w.m2 goes on reporting. Within LOST_SECS nothing is said.
        clock.advance(LOST_SECS - WATCH_SECS)
        await _report(client, second, "w.m2")
        assert _on_wall(await wall.call("wall", {}), call_id)["media_lost"] is False
        # One watch round past LOST_SECS, the wall is told, and a wall opened now sees it too.
        clock.advance(2 * WATCH_SECS + 0.01)
        lost = await _update(wall, call_id)
        assert lost["media_lost"] is True and lost["state"] == "answered"
        assert _on_wall(await wall.call("wall", {}), call_id)["media_lost"] is True
        await _report(client, second, "w.m2")

        # Past the registry's own limit, the caller's next offer places the media on w.m2 and
        # the next round tells the wall the call is back.
        clock.advance(STALE_SECS - LOST_SECS)
        await _report(client, second, "w.m2")
        answer = await phone.call("media_offer", {"type": "offer", "sdp": OFFER})
        assert answer["ok"], answer
        assert await _media_node_of(client, call_id) == "w.m2"
        clock.advance(WATCH_SECS)
        back = await _update(wall, call_id)
        assert back["media_lost"] is False
        assert first.connected  # silent, not gone: nothing but the clock said it was lost
    await supervisor.close()


async def test_a_media_node_heard_again_takes_the_badge_back(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """A node that was only slow (a report two seconds late) costs a flicker on the wall and
    nothing else: the call's media stays where it is."""
    supervisor = await another_browser(client)
    await sign_in(supervisor, await add_account(client, "sara", "supervisor"), clock)
    started = await start_call(client)
    call_id = started["call_id"]
    async with (
        fake_media_node(client, "w.m1") as node,
        citizen(client, started["token"]) as phone,
        console(supervisor) as wall,
    ):
        assert (await phone.call("media_offer", {"type": "offer", "sdp": OFFER}))["ok"]
        await wall.call("wall", {})
        clock.advance(LOST_SECS + WATCH_SECS + 0.01)
        assert (await _update(wall, call_id))["media_lost"] is True
        await _report(client, node, "w.m1")
        clock.advance(WATCH_SECS)
        assert (await _update(wall, call_id))["media_lost"] is False
        assert await _media_node_of(client, call_id) == "w.m1"
    await supervisor.close()


async def test_media_in_this_very_process_is_never_lost_and_no_registry_means_no_verdict(
    client: Client, clock: FrozenClock
) -> None:
    """With MEDIA_WORKERS=0 (the embedded default) a call's media is in the node's own
    process: never lost while the node runs, whatever the registry holds."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    node_id = services.settings.NODE_ID
    in_process = replace(
        services, settings=services.settings.model_copy(update={"MEDIA_WORKERS": 0})
    )
    assert not (await media_silence(in_process)).lost(node_id)
    assert (await media_silence(services)).lost(node_id)  # with workers: not a media node
    assert not (await media_silence(services)).lost(None)  # a call with no media yet
    assert not MediaSilence(frozenset(), known=False).lost("w.m1")  # registry away


async def test_a_media_node_whose_home_process_is_gone_is_lost_after_one_missed_report(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path, clock: FrozenClock
) -> None:
    """Two nodes on a Redis of the test's own; a media node reports through node A. Node B
    counts it lost after three missed reports while A's process lives (a slow node), but after
    one once A's subscription to the bus is gone, which is what Redis does the moment a killed
    process's socket closes (here A's manager is closed instead of the process killed)."""
    redis_server = OwnRedis(tmp_path)
    redis_server.start()
    try:
        shared = settings.model_copy(update={"REDIS_URL": redis_server.url})
        node_a = await aiohttp_client(create_app(shared.model_copy(update={"NODE_ID": "a"}), clock))
        node_b = await aiohttp_client(create_app(shared.model_copy(update={"NODE_ID": "b"}), clock))
        assert node_a.app is not None and node_b.app is not None
        services_b = node_b.app[SERVICES_KEY]
        async with fake_media_node(node_a, "a.m1") as media_node:
            await _report(node_a, media_node, "a.m1")

            async def home_listening() -> bool | None:
                seen = await services_b.media_nodes.last_seen()
                return None if seen is None else seen["a.m1"].home_listening

            for _ in range(250):  # A's listener subscribes once its first socket connected
                if await home_listening():
                    break
                await asyncio.sleep(0.02)
            assert await home_listening() is True
            clock.advance(HOME_GONE_SECS + 0.01)
            assert not (await media_silence(services_b)).lost("a.m1")  # late, home alive

            await close_manager(node_a.app[SIO_KEY])  # what kill -9 does to A's subscription
            assert await home_listening() is False
            assert (await media_silence(services_b)).lost("a.m1")
            assert HOME_GONE_SECS + 0.01 < LOST_SECS  # lost sooner than a silence alone is
    finally:
        redis_server.stop()
