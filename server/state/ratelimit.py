"""Rate limits per client (abuse of emergency lines is real), in memory or in Redis by mode."""

from __future__ import annotations

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from server.core.errors import AppError, ErrorCode


class RateLimits:
    def __init__(self, redis_url: str) -> None:
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy")
            if redis_url
            else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self.storage)

    async def hit(self, rules: list[RateLimitItem], scope: str, key: str) -> None:
        """Count one request of ``key``; refuse it (429) when any rule is exceeded."""
        for rule in rules:
            if not await self._limiter.hit(rule, scope, key):
                raise AppError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many requests: at most {rule} from one client. Call 112 if this is "
                    "an emergency.",
                    data={"headers": {"Retry-After": str(rule.get_expiry())}},
                )

    async def close(self) -> None:
        """Close the Redis connection pool (the library has no close of its own)."""
        if isinstance(self.storage, RedisStorage):
            client = getattr(self.storage.bridge, "storage", None)
            if client is not None:
                await client.aclose()


def parse_rules(text: str) -> list[RateLimitItem]:
    return parse_many(text)
