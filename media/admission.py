"""Admission control: a node refuses NEW media sessions before its quality degrades.

aiortc has no back-pressure: overload shows as growing latency, audio loss and memory, never as
a refusal (MEDIA-NOTES.md). So the node watches two signals, the event loop's lag (every
coroutine's latency, Socket.IO's included) and the process's CPU, and says no to a new call's
media above either threshold. The call still queues and its chat works; in scale-out another
node can take the media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

SAMPLE_EVERY_SECS = 0.1
CPU_WINDOW_SECS = 1.0
# Weight of the newest lag sample: smooths one slow tick, follows a lasting overload in ~1 s.
LAG_SMOOTHING = 0.2


@dataclass(frozen=True)
class Load:
    loop_lag_ms: float
    cpu_percent: float


class Admission:
    """Samples the loop's lag and the process's CPU; ``admit()`` says whether a new session fits.

    ``max_cpu_percent`` is of one core (a Python process uses about one).
    """

    def __init__(self, *, max_loop_lag_ms: float, max_cpu_percent: float) -> None:
        self.max_loop_lag_ms = max_loop_lag_ms
        self.max_cpu_percent = max_cpu_percent
        self._lag_ms = 0.0
        self._cpu_percent = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._sample())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def load(self) -> Load:
        return Load(round(self._lag_ms, 1), round(self._cpu_percent, 1))

    def fits(self) -> bool:
        """Whether a new session would be admitted now (nothing logged: a load report asks)."""
        load = self.load
        return load.loop_lag_ms <= self.max_loop_lag_ms and load.cpu_percent <= self.max_cpu_percent

    def admit(self) -> bool:
        ok = self.fits()
        if not ok:
            load = self.load
            log.warning(
                "media session refused: node overloaded",
                extra={"loop_lag_ms": load.loop_lag_ms, "cpu_percent": load.cpu_percent},
            )
        return ok

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        cpu_started, wall_started = time.process_time(), loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(SAMPLE_EVERY_SECS)
            lag_ms = max(0.0, (loop.time() - before - SAMPLE_EVERY_SECS) * 1000)
            self._lag_ms += LAG_SMOOTHING * (lag_ms - self._lag_ms)
            now = loop.time()
            if now - wall_started >= CPU_WINDOW_SECS:
                cpu_now = time.process_time()
                self._cpu_percent = 100 * (cpu_now - cpu_started) / (now - wall_started)
                cpu_started, wall_started = cpu_now, now
