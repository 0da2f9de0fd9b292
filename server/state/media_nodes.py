"""Which media nodes are alive and how loaded: where a new call's media goes.

In-process for the embedded mode; a Redis hash for scale-out, so every node places calls on
any node's media workers. Each media node reports its load every second; an entry older than
``STALE_SECS`` is a dead media node and is never chosen.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from redis.asyncio import Redis

from server.core.ports import MediaNode

STALE_SECS = 5.0
REDIS_KEY = "lifeline:media-nodes"


def _fresh(node: MediaNode) -> bool:
    return time.time() - node.seen <= STALE_SECS


class LocalMediaNodes:
    def __init__(self) -> None:
        self._nodes: dict[str, MediaNode] = {}

    async def report(self, node: MediaNode) -> None:
        self._nodes[node.id] = node

    async def remove(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)

    async def alive(self) -> list[MediaNode]:
        return [node for node in self._nodes.values() if _fresh(node)]


class RedisMediaNodes:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def report(self, node: MediaNode) -> None:
        await self._redis.hset(REDIS_KEY, node.id, json.dumps(asdict(node)))

    async def remove(self, node_id: str) -> None:
        await self._redis.hdel(REDIS_KEY, node_id)

    async def alive(self) -> list[MediaNode]:
        raw = await self._redis.hgetall(REDIS_KEY)
        nodes = [MediaNode(**json.loads(value)) for value in raw.values()]
        stale = [node.id for node in nodes if not _fresh(node)]
        if stale:  # a media node that died without saying goodbye
            await self._redis.hdel(REDIS_KEY, *stale)
        return [node for node in nodes if _fresh(node)]


def placement_order(nodes: list[MediaNode], home: str) -> list[MediaNode]:
    """Admitting nodes first, this node's own before others' (no hop over the bus), then the
    least loaded."""
    return sorted(nodes, key=lambda n: (not n.admit, n.home != home, n.sessions, n.id))
