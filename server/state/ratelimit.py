"""Rate limits per client (abuse of emergency lines is real), in memory or in Redis by mode.

A limit must never be what stops an emergency call: when Redis does not answer, the limits fall
back to this node's own memory (each node then counts only what it sees, which is looser, not
stricter), report the outage (server/core/outages.py), and go back to Redis once it answers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter, SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from server.core.errors import AppError, ErrorCode
from server.core.outages import Outages

PART = "rate limits"
# A Redis that hangs (a dead host, not a refused port) must not hold a call's start for long.
REDIS_TIMEOUT_SECS = 1.0

Check = Callable[[MovingWindowRateLimiter, RateLimitItem, str, str], Awaitable[bool]]


@dataclass(frozen=True)
class Exceeded:
    """The rule a request would go over, and the seconds until it is worth trying again."""

    rule: RateLimitItem
    retry_after_secs: int


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

    async def take(self, rules: list[RateLimitItem], scope: str, key: str) -> Exceeded | None:
        """Count one request of ``key`` against every rule, unless it would exceed one: then
        nothing is counted, and the rule comes back with the seconds until it has room again
        (its oldest request leaves the window). The caller words the refusal."""
        for rule in rules:
            if not await self.has_room(rule, scope, key):
                reset = [time.time() + rule.get_expiry()]
                await self._apply(_reset_into(reset), rule, scope, key)
                return Exceeded(rule, max(1, math.ceil(reset[0] - time.time())))
        await self.hit(rules, scope, key)
        return None

    async def take_amount(
        self, rules: list[RateLimitItem], scope: str, key: str, amount: int
    ) -> Exceeded | None:
        """``take`` for an amount (bytes): counted in a sliding-window counter, one counter
        however large the amount (a moving window keeps an entry per unit); an amount that
        would exceed a rule is not counted, and the wait given is the rule's window."""

        def check(amount: int, test: bool) -> Check:
            async def apply(
                limiter: MovingWindowRateLimiter, rule: RateLimitItem, scope: str, key: str
            ) -> bool:
                counter = SlidingWindowCounterRateLimiter(limiter.storage)
                if test:
                    return await counter.test(rule, scope, key, cost=amount)
                return await counter.hit(rule, scope, key, cost=amount)

            return apply

        for rule in rules:
            if not await self._apply(check(amount, test=True), rule, scope, key):
                return Exceeded(rule, rule.get_expiry())
        for rule in rules:
            if not await self._apply(check(amount, test=False), rule, scope, key):
                return Exceeded(rule, rule.get_expiry())  # another request took the room
        return None

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


def _reset_into(box: list[float]) -> Check:
    """A check that reads when the rule's window next has room into ``box``."""

    async def stats(
        limiter: MovingWindowRateLimiter, rule: RateLimitItem, scope: str, key: str
    ) -> bool:
        box[0] = (await limiter.get_window_stats(rule, scope, key)).reset_time
        return True

    return stats


def parse_rules(text: str) -> list[RateLimitItem]:
    return parse_many(text)
