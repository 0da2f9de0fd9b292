"""Time comes from a clock passed in: wall time, monotonic time, sleeps and timers.

Every rule that waits (the abandon grace, a media node's staleness, the keyframe request limit,
ring and wrap-up timers later) asks the clock, so a test moves a ``FrozenClock`` forward and the
timers that fall due fire at once, in order, instead of the test sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall time, timezone-aware UTC: what is stored and shown."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start: for durations and limits, never stored."""
        ...

    async def sleep(self, seconds: float) -> None: ...

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` (a plain function: schedule a task from it for async work) after
        ``seconds``, unless the timer is cancelled first."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, seconds), callback)


@dataclass(order=True)
class _FrozenTimer:
    due: float
    order: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FrozenClock:
    """A clock for tests: it stands still until ``advance`` moves it, and then fires every
    timer and wakes every sleeper that fell due, earliest first."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self._timers: list[_FrozenTimer] = []
        self._order = itertools.count()
        self._timer_set: asyncio.Event | None = None

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not woken.done():
                woken.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await woken
        finally:
            timer.cancel()

    def call_later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        timer = _FrozenTimer(self._elapsed + max(0.0, seconds), next(self._order), callback)
        heapq.heappush(self._timers, timer)
        if self._timer_set is not None:
            self._timer_set.set()
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on; the timers due by then run now, each at its own moment."""
        target = self._elapsed + seconds
        while self._timers and self._timers[0].due <= target:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._elapsed = max(self._elapsed, timer.due)
            timer.callback()
        self._elapsed = target

    def pending(self) -> int:
        """Timers not yet fired nor cancelled (a test can see one was set)."""
        return sum(1 for timer in self._timers if not timer.cancelled)

    async def until_pending(self, count: int = 1) -> None:
        """Wait until ``count`` timers are set: another task (a server handling a disconnect)
        has started one, so the test can move time past it."""
        while self.pending() < count:
            self._timer_set = asyncio.Event()
            await self._timer_set.wait()
