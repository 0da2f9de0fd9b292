"""Work an action starts and does not wait for (an abandon check when a timer fires): kept so
the node can cancel and await all of it on shutdown, and so a failure is logged, not lost."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from server.core.clock import Clock, Timer
from server.core.logs import forget_context

log = logging.getLogger("lifeline.background")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[int, tuple[str, Timer]] = {}
        self._scheduled = asyncio.Event()
        self._closed = False

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """``work`` runs outside the request or call that started it (a socket's recheck,
        started by the first socket, is about every socket): its log lines name a call only
        when it says which (server/core/logs.py: about_call)."""
        context = contextvars.copy_context()
        context.run(forget_context)
        task = asyncio.get_running_loop().create_task(work, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def later(
        self,
        clock: Clock,
        seconds: float,
        work: Callable[[], Coroutine[Any, Any, None]],
        *,
        name: str,
    ) -> Timer:
        """Start ``work()`` after ``seconds`` of the clock's time (not if closed by then)."""
        key = 0

        def fire() -> None:
            self._timers.pop(key, None)
            if not self._closed:
                self.spawn(work(), name=name)

        timer = clock.call_later(seconds, fire)
        key = id(timer)
        self._timers[key] = (name, timer)
        self._scheduled.set()
        return timer

    def scheduled(self, name: str) -> int:
        """How many timers of this name wait to fire (tests: one was set, or none)."""
        return sum(1 for timer_name, _ in self._timers.values() if timer_name == name)

    async def until_scheduled(self, name: str) -> None:
        """Wait until a timer of this name is set (by another task: a server handling a
        disconnect), so a test can move the clock past it."""
        while not self.scheduled(name):
            self._scheduled.clear()
            await self._scheduled.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def close(self) -> None:
        self._closed = True
        for _name, timer in list(self._timers.values()):
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the work started so far (tests: after moving the clock)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
