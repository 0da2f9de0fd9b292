"""Rate limits never stop an emergency call because Redis is away: they fall back to the node's
own memory, still counting, and go back to Redis when it answers."""

from __future__ import annotations

import logging
import socket

import pytest

from server.core.errors import AppError
from server.core.outages import Outages
from server.state.ratelimit import RateLimits, parse_rules

# One pass: Redis servers of its own.
pytestmark = pytest.mark.one_pass


def _dead_redis_url() -> str:
    """A loopback port nothing listens on (taken, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_with_redis_away_the_limits_count_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    limits = RateLimits(_dead_redis_url(), Outages())
    rules = parse_rules("2/minute")
    try:
        with caplog.at_level(logging.WARNING, "lifeline.outages"):
            await limits.hit(rules, "calls", "10.0.0.1")
            await limits.hit(rules, "calls", "10.0.0.1")
        assert limits.degraded
        assert [r.message for r in caplog.records].count(
            "redis does not answer (rate limits)"
        ) == 1  # said once, not per request
        with pytest.raises(AppError) as refused:
            await limits.hit(rules, "calls", "10.0.0.1")
        assert refused.value.code.value == "rate_limited"
        assert await limits.has_room(rules[0], "calls", "10.0.0.2")
    finally:
        await limits.close()
