"""Rate limits per client (abuse of emergency lines is real), in memory or in Redis by mode.

A limit must never be what stops an emergency call: when Redis does not answer, the limits fall
back to this node's own memory (each node then counts only what it sees, which is looser, not
stricter), report the outage (server/core/outages.py), and go back to Redis once it answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from server.core.errors import AppError, ErrorCode
from server.core.outages import Outages

PART = "rate limits"
# A Redis that hangs (a dead host, not a refused port) must not hold a call's start for long.
REDIS_TIMEOUT_SECS = 1.0

Check = Callable[[MovingWindowRateLimiter, RateLimitItem, str, str], Awaitable[bool]]


class RateLimits:
    def __init__(self, redis_url: str, outages: Outages) -> None:
        self._shared: Storage | None = (
            RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT_SECS,
                socket_connect_timeout=REDIS_TIMEOUT_SECS,
            )
            if redis_url
            else None
        )
        self._local = MemoryStorage()
        self._shared_limiter = (
            MovingWindowRateLimiter(self._shared) if self._shared is not None else None
        )
        self._local_limiter = MovingWindowRateLimiter(self._local)
        self._outages = outages

    @property
    def degraded(self) -> bool:
        """Counting in this node's memory because Redis does not answer."""
        return self._outages.is_down("redis", PART)

    async def _apply(self, check: Check, rule: RateLimitItem, scope: str, key: str) -> bool:
        if self._shared_limiter is not None:
            try:
                allowed = await check(self._shared_limiter, rule, scope, key)
            except StorageError as exc:
                self._outages.failed("redis", PART, repr(exc.storage_error))
            else:
                self._outages.answered("redis", PART)
                return allowed
        return await check(self._local_limiter, rule, scope, key)

    async def hit(self, rules: list[RateLimitItem], scope: str, key: str) -> None:
        """Count one request of ``key``; refuse it (429) when any rule is exceeded."""
        for rule in rules:
            if not await self._apply(_hit, rule, scope, key):
                raise AppError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many requests: at most {rule} from one client. Call 112 if this is "
                    "an emergency.",
                    data={"headers": {"Retry-After": str(rule.get_expiry())}},
                )

    async def has_room(self, rule: RateLimitItem, scope: str, key: str) -> bool:
        """Whether one more request of ``key`` would pass ``rule``, without counting it."""
        return await self._apply(_test, rule, scope, key)

    async def close(self) -> None:
        """Close the Redis connection pool (the library has no close of its own)."""
        if isinstance(self._shared, RedisStorage):
            client = getattr(self._shared.bridge, "storage", None)
            if client is not None:
                await client.aclose()


async def _hit(limiter: MovingWindowRateLimiter, rule: RateLimitItem, scope: str, key: str) -> bool:
    return await limiter.hit(rule, scope, key)


async def _test(
    limiter: MovingWindowRateLimiter, rule: RateLimitItem, scope: str, key: str
) -> bool:
    return await limiter.test(rule, scope, key)


def parse_rules(text: str) -> list[RateLimitItem]:
    return parse_many(text)
