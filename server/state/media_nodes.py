"""Which media nodes are alive and how loaded: what placing a call's media chooses from.

In-process for the embedded mode; a Redis hash for scale-out, so every node places calls on
any node's media workers. Each media node reports its load every second, stamped with the
clock's wall time; an entry older than ``STALE_SECS`` on that clock is a dead media node and is
never listed. The clock is the services' one, so a test moves a ``FrozenClock`` past the limit
instead of sleeping. (Which live node takes a call is a rule: server/actions/media.py.)
"""

from __future__ import annotations

import json
from dataclasses import asdict

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.core.clock import Clock
from server.core.outages import Outages, reason_of
from server.core.ports import Heard, MediaNode

STALE_SECS = 5.0
REDIS_KEY = "lifeline:media-nodes"
PART = "media-node registry"


def home_channel(bus_channel: str, node_id: str) -> str:
    """The pub/sub channel a node's Socket.IO listener subscribes to besides the bus itself:
    Redis drops the subscription the moment the node's process dies (its socket closes), so
    the others see a killed node within a report, not after three missed ones. Nothing is
    published on it."""
    return f"{bus_channel}:home:{node_id}"


def _fresh(node: MediaNode, now: float) -> bool:
    return now - node.seen <= STALE_SECS


class LocalMediaNodes:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._nodes: dict[str, MediaNode] = {}

    async def report(self, node: MediaNode) -> None:
        self._nodes[node.id] = node

    async def remove(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def alive(self) -> list[MediaNode]:
        now = self._clock.now().timestamp()
        return [n for n in self._nodes.values() if _fresh(n, now)]

    async def last_seen(self) -> dict[str, Heard] | None:
        return {node.id: Heard(node.seen) for node in self._nodes.values()}


class RedisMediaNodes:
    """The registry in Redis; this node's own media nodes also in memory, which is what calls
    are placed on while Redis does not answer (video keeps starting, on this node's workers)."""

    def __init__(self, redis: Redis, clock: Clock, outages: Outages, *, bus_channel: str) -> None:
        self._redis = redis
        self._bus_channel = bus_channel
        self._clock = clock
        self._outages = outages
        self._local = LocalMediaNodes(clock)

    def _failed(self, exc: Exception) -> None:
        self._outages.failed("redis", PART, reason_of(exc))

    async def report(self, node: MediaNode) -> None:
        await self._local.report(node)
        try:
            await self._redis.hset(REDIS_KEY, node.id, json.dumps(asdict(node)))
        except (RedisError, OSError) as exc:
            self._failed(exc)
        else:
            self._outages.answered("redis", PART)

    async def remove(self, node_id: str) -> None:
        await self._local.remove(node_id)
        try:
            await self._redis.hdel(REDIS_KEY, node_id)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def alive(self) -> list[MediaNode]:
        try:
            raw = await self._redis.hgetall(REDIS_KEY)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return await self._local.alive()
        self._outages.answered("redis", PART)
        nodes = [MediaNode(**json.loads(value)) for value in raw.values()]
        now = self._clock.now().timestamp()
        stale = [node.id for node in nodes if not _fresh(node, now)]
        if stale:  # a media node that died without saying goodbye
            try:
                await self._redis.hdel(REDIS_KEY, *stale)
            except (RedisError, OSError) as exc:
                self._failed(exc)
        return [node for node in nodes if _fresh(node, now)]

    async def last_seen(self) -> dict[str, Heard] | None:
        try:
            raw = await self._redis.hgetall(REDIS_KEY)
            nodes = [MediaNode(**json.loads(value)) for value in raw.values()]
            homes = sorted({node.home for node in nodes})
            counts = (
                await self._redis.pubsub_numsub(
                    *(home_channel(self._bus_channel, home) for home in homes)
                )
                if homes
                else []
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._outages.answered("redis", PART)
        listening = {home for home, (_, count) in zip(homes, counts, strict=True) if count > 0}
        return {node.id: Heard(node.seen, node.home in listening) for node in nodes}
