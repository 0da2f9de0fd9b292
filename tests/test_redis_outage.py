"""Redis away never stops call-taking: a call starts, its chat is stored, its video flows, the
console works; ``/readyz`` and the metric say the node works on its own view; once Redis answers
again the limits and presence are shared through it again.

The Redis here is a redis-server of the test's own, on a port of its own, stopped and started
again by the test; the database is the mode's (SQLite or PostgreSQL).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlmodel import select

from config import Settings
from server.actions.queue import operator_states
from server.core.clock import FrozenClock
from server.db.models import ChatMessage
from server.http.keys import OUTAGES_KEY, SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from signaling.namespace import RECHECK_SECS
from tests.media_peers import citizen_peer, wait_until
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client

MEDIA_TIMEOUT_SECS = 20.0


class OwnRedis:
    """A redis-server on a free loopback port, without persistence, that a test may stop."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self._directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        assert self._process is not None
        self._process.terminate()
        self._process.wait(10)
        self._process = None

    def keys(self, pattern: str) -> list[str]:
        client = redis.Redis(port=self.port, decode_responses=True)
        return sorted(str(k) for k in client.keys(pattern))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server._process is not None:
        server.stop()


@pytest.fixture
def settings(settings: Settings, own_redis: OwnRedis) -> Settings:
    """The suite's settings, with the test's own Redis (whatever the mode's is)."""
    return settings.model_copy(update={"REDIS_URL": own_redis.url})


async def test_with_redis_stopped_a_call_starts_and_its_chat_is_stored(
    client: Client, operator: Client, own_redis: OwnRedis, clock: FrozenClock
) -> None:
    assert client.app is not None
    outages = client.app[OUTAGES_KEY]
    async with console(operator) as desk:
        own_redis.stop()
        started = await start_call(client)  # the rate limit counts in memory: no 500
        call_id = started["call_id"]
        assert outages.is_down("redis", "rate limits")
        async with citizen(client, started["token"]) as phone:
            added = await desk.next_event("queue.call_added")
            assert added["call"]["call_id"] == call_id
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            said = await phone.call("chat", {"client_id": "c-0000001", "body": "Help, a fight"})
            assert said["ok"], said
            heard = await desk.next_event("chat.message", sender="citizen")
            assert heard["body"] == "Help, a fight"

            # The picture too: the media node is placed from this node's own registry.
            hub = client.app[MEDIA_HUB_KEY]
            assert hub is not None
            peer = await citizen_peer(answer_via(phone))
            try:
                await wait_until(
                    lambda: hub.stats(call_id)["citizen"]["video_received"] > 10,
                    MEDIA_TIMEOUT_SECS,
                    "the citizen's video at the server with Redis away",
                )
            finally:
                await peer.close()

            ready = await client.get("/readyz")
            assert ready.status == 200  # still taking calls: a balancer must keep it
            body = await ready.json()
            assert body["status"] == "degraded" and body["degraded"] == ["redis"]
            metrics = await (await client.get("/metrics")).text()
            assert 'lifeline_degraded{store="redis"} 1.0' in metrics
            assert outages.is_down("redis", "presence")
            # The wall's operator list: this node's view, not an error.
            states = await operator_states(client.app[SERVICES_KEY], "operator")
            assert {s.username: s.state for s in states} == {"olga": "in_call"}

            own_redis.start()  # back, empty (it kept nothing)
            await start_call(client)
            assert not outages.is_down("redis", "rate limits")
            assert own_redis.keys("LIMITS*"), "the limits count in Redis again"
            # The next re-check renews every connected socket's presence: in Redis again.
            clock.advance(RECHECK_SECS)
            await client.app[SERVICES_KEY].background.drain()
            assert any(call_id in key for key in own_redis.keys("lifeline:presence:*"))
            assert not outages.is_down("redis", "presence")
    ready = await client.get("/readyz")
    assert (await ready.json())["status"] == "ok"

    async with client.app[SERVICES_KEY].db.session() as session:
        chats = (await session.exec(select(ChatMessage))).all()
    assert [m.body for m in chats] == ["Help, a fight"]
