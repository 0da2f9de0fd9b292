"""Who is connected where: in-process for the embedded mode, Redis (with TTLs) for scale-out.

A citizen whose page reloads is away for a second; a citizen who closed the tab is gone. The
call is abandoned only when no connection of that citizen exists on any node for a while.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.core.outages import Outages, reason_of

T = TypeVar("T")
PART = "presence"

# A dead node's members vanish after this; a live node re-joins its sockets well within it
# (every PRESENCE_REFRESH_SECS of the clock), so a connected member never expires.
PRESENCE_TTL_SECS = 120


class LocalPresence:
    def __init__(self) -> None:
        self._members: defaultdict[str, set[str]] = defaultdict(set)

    async def join(self, key: str, member: str) -> None:
        self._members[key].add(member)

    async def leave(self, key: str, member: str) -> None:
        members = self._members.get(key)
        if members is not None:
            members.discard(member)
            if not members:
                del self._members[key]

    async def count(self, key: str) -> int:
        return len(self._members.get(key, ()))

    async def members(self, key: str) -> set[str]:
        return set(self._members.get(key, ()))


class RedisPresence:
    """A Redis set per key; its TTL is renewed on every join, so a dead node's members expire.

    This node's own joins are kept in memory as well: when Redis does not answer, presence is
    this node's view (a caller connected to another node then looks away), never an error that
    would stop a call or a console.
    """

    def __init__(self, redis: Redis, outages: Outages) -> None:
        self._redis = redis
        self._outages = outages
        self._local = LocalPresence()

    async def _shared(self, work: Callable[[], Awaitable[T]], local: T) -> T:
        try:
            result = await work()
        except (RedisError, OSError) as exc:
            self._outages.failed("redis", PART, reason_of(exc))
            return local
        self._outages.answered("redis", PART)
        return result

    async def join(self, key: str, member: str) -> None:
        await self._local.join(key, member)
        name = f"lifeline:presence:{key}"

        async def add() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(name, member)
                pipe.expire(name, PRESENCE_TTL_SECS)
                await pipe.execute()

        await self._shared(add, None)

    async def leave(self, key: str, member: str) -> None:
        await self._local.leave(key, member)

        async def remove() -> None:
            await self._redis.srem(f"lifeline:presence:{key}", member)

        await self._shared(remove, None)

    async def count(self, key: str) -> int:
        async def count() -> int:
            return int(await self._redis.scard(f"lifeline:presence:{key}"))

        return await self._shared(count, await self._local.count(key))

    async def members(self, key: str) -> set[str]:
        async def members() -> set[str]:
            raw = await self._redis.smembers(f"lifeline:presence:{key}")
            return {m.decode() if isinstance(m, bytes) else str(m) for m in raw}

        return await self._shared(members, await self._local.members(key))
