"""The frozen clock: time moves only when told, and timers fire then, in order."""

from __future__ import annotations

import asyncio

import pytest

from server.core.clock import FrozenClock

# One pass: no store.
pytestmark = pytest.mark.one_pass


def test_timers_fire_in_order_when_time_passes_them() -> None:
    clock = FrozenClock()
    fired: list[tuple[str, float]] = []
    clock.call_later(5, lambda: fired.append(("five", clock.monotonic())))
    clock.call_later(1, lambda: fired.append(("one", clock.monotonic())))
    cancelled = clock.call_later(3, lambda: fired.append(("three", clock.monotonic())))
    cancelled.cancel()
    clock.advance(4.9)
    assert fired == [("one", 1.0)]
    assert clock.pending() == 1
    clock.advance(0.1)
    assert fired == [("one", 1.0), ("five", 5.0)]
    assert clock.monotonic() == 5.0 and clock.pending() == 0


async def test_a_sleeper_wakes_when_the_clock_passes_its_time() -> None:
    clock = FrozenClock()
    start = clock.now()
    sleeper = asyncio.create_task(clock.sleep(10))
    await clock.until_pending()
    clock.advance(9)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.advance(1)
    await asyncio.wait_for(sleeper, 1)
    assert (clock.now() - start).total_seconds() == 10
