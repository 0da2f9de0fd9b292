"""Heavy work on a fixed number of threads, with a bounded line in front of them.

Decoding an uploaded image costs memory in proportion to its pixels (a 50-megapixel PNG of
150 KB takes ~200 MB while it is open), and that memory is not given back to the system at
once. One thread per request let a burst of such uploads decode all at once and took a node
to gigabytes; here at most ``workers`` jobs run, the rest wait in line (urgent work, a caller's
photo, ahead of the rest), and a job that would make the line longer than ``max_waiting`` or
that waited ``max_wait_secs`` is refused (503) instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode

T = TypeVar("T")


@dataclass(order=True)
class _Waiter:
    urgency: int  # 0 first
    order: int
    turn: asyncio.Future[None] = field(compare=False)


class WorkPool:
    """``workers`` threads shared by the node, and the line that waits for them."""

    def __init__(
        self,
        clock: Clock,
        *,
        workers: int,
        max_waiting: int,
        max_wait_secs: float,
        name: str,
    ) -> None:
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._free = workers
        self._line: list[_Waiter] = []
        self._order = itertools.count()
        self._max_waiting = max_waiting
        self._max_wait_secs = max_wait_secs
        self._closed = False
        self.workers = workers

    @property
    def running(self) -> int:
        """Jobs on a thread now."""
        return self.workers - self._free

    @property
    def waiting(self) -> int:
        """Jobs in line for a thread."""
        return sum(1 for waiter in self._line if not waiter.turn.done())

    async def run(self, work: Callable[[], T], *, urgent: bool = False) -> T:
        """``work()`` on one of the threads, once one is free; 503 if the line is too long or
        the wait too long. A cancelled caller frees its thread only when the work ends: the
        memory is held until then."""
        await self._take_turn(urgent)
        try:
            job = self._executor.submit(work)
        except RuntimeError:  # shut down under us
            self._release()
            raise self._busy() from None
        loop = asyncio.get_running_loop()

        def done(_job: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the node stopped
                loop.call_soon_threadsafe(self._release)

        job.add_done_callback(done)
        return await asyncio.wrap_future(job)

    async def _take_turn(self, urgent: bool) -> None:
        if self._closed:
            raise self._busy()
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        if self.waiting >= self._max_waiting:
            raise self._busy()
        if len(self._line) > 2 * self._max_waiting:  # drop those that stopped waiting
            self._line = [waiter for waiter in self._line if not waiter.turn.done()]
            heapq.heapify(self._line)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._line, _Waiter(0 if urgent else 1, next(self._order), turn))

        def too_long() -> None:
            if not turn.done():
                turn.set_exception(self._busy())

        timer = self._clock.call_later(self._max_wait_secs, too_long)
        try:
            await turn
        except asyncio.CancelledError:
            # The turn may have been handed over just before the cancellation: pass it on.
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._release()
            raise
        finally:
            timer.cancel()

    def _release(self) -> None:
        """A thread is free: the first live waiter takes it, or it stays free."""
        while self._line:
            waiter = heapq.heappop(self._line)
            if not waiter.turn.done():
                waiter.turn.set_result(None)
                return
        self._free += 1

    def _busy(self) -> AppError:
        retry = max(1, math.ceil(self._max_wait_secs))
        return AppError(
            ErrorCode.UPLOADS_BUSY,
            "The server is busy with other uploads: send it again in a moment",
            data={"headers": {"Retry-After": str(retry)}},
        )

    def close(self) -> None:
        """Refuse what waits and what comes; the jobs running finish on their threads."""
        self._closed = True
        for waiter in self._line:
            if not waiter.turn.done():
                waiter.turn.set_exception(self._busy())
        self._line.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
