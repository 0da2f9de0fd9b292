"""Admission control: a node refuses NEW media sessions before its quality degrades.

aiortc has no back-pressure: overload shows as growing latency, audio loss and memory, never as
a refusal (docs/media.md). So the node watches three signals, the event loop's lag (every
coroutine's latency, Socket.IO's included), the process's CPU, and the whole machine's CPU, and
says no to a new call's media above any threshold. The machine's share matters when other
processes (another media worker, a backup) starve this one: its own CPU then stays low while
its calls already degrade. The call still queues and its chat works; in scale-out another
node can take the media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from server.core.media_rpc import RefusalCause

log = logging.getLogger(__name__)

SAMPLE_EVERY_SECS = 0.1
CPU_WINDOW_SECS = 1.0
# Weight of the newest lag sample: smooths one slow tick, follows a lasting overload in ~1 s.
LAG_SMOOTHING = 0.2


PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Load:
    loop_lag_ms: float
    cpu_percent: float
    host_cpu_percent: float = 0.0


def host_cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of every CPU since boot, from /proc/stat; None where there is none.

    In a container this is the host's CPUs, not the container's quota: set the threshold for
    the machine the node really shares.
    """
    try:
        fields = PROC_STAT.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user and nice
    return total - idle, total


class Admission:
    """Samples the loop's lag, the process's and the machine's CPU; ``admit()`` says whether a
    new session fits.

    ``max_cpu_percent`` is of one core (a Python process uses about one);
    ``max_host_cpu_percent`` of all the machine's cores together.
    """

    def __init__(
        self,
        *,
        max_loop_lag_ms: float,
        max_cpu_percent: float,
        max_host_cpu_percent: float = float("inf"),
        guaranteed_sessions: int = 0,
        sustained_secs: float = 0.0,
    ) -> None:
        self.max_loop_lag_ms = max_loop_lag_ms
        self.max_cpu_percent = max_cpu_percent
        self.max_host_cpu_percent = max_host_cpu_percent
        # Below this many sessions a node always admits: its share of the calls is what it was
        # measured to carry, and a refusal there would turn a caller away from an idle node
        # because a browser or a backup beside it spiked the machine for a second.
        self.guaranteed_sessions = guaranteed_sessions
        # A signal refuses only once it has stayed over its threshold this long.
        self.sustained_secs = sustained_secs
        self._over_since: dict[RefusalCause, float] = {}
        self._lag_ms = 0.0
        self._cpu_percent = 0.0
        self._host_cpu_percent = 0.0
        self._task: asyncio.Task[None] | None = None
        # New sessions refused since the start, by the first signal over its threshold: what
        # the media node reports (LoadReport.refused) and its node exports.
        self.refused: Counter[RefusalCause] = Counter()

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
        return Load(
            round(self._lag_ms, 1), round(self._cpu_percent, 1), round(self._host_cpu_percent, 1)
        )

    def fits(self, sessions: int = 0) -> bool:
        """Whether a new session would be admitted now (nothing logged: a load report asks)."""
        return sessions < self.guaranteed_sessions or self._over(self.load) is None

    def _signals(self, load: Load) -> list[RefusalCause]:
        """The signals over their thresholds in this sample."""
        over: list[RefusalCause] = []
        if load.loop_lag_ms > self.max_loop_lag_ms:
            over.append("loop_lag")
        if load.cpu_percent > self.max_cpu_percent:
            over.append("cpu")
        if load.host_cpu_percent > self.max_host_cpu_percent:
            over.append("host_cpu")
        return over

    def _over(self, load: Load) -> RefusalCause | None:
        """The first signal over its threshold for the whole sustained window, if any."""
        now = time.monotonic()
        for cause in self._signals(load):
            since = self._over_since.get(cause)
            lasted = since is not None and now - since >= self.sustained_secs
            if self.sustained_secs <= 0 or lasted:
                return cause
        return None

    def _track(self) -> None:
        """After each sample: since when each signal has been over its threshold."""
        over = set(self._signals(self.load))
        now = time.monotonic()
        for cause in over:
            self._over_since.setdefault(cause, now)
        for cause in set(self._over_since) - over:
            del self._over_since[cause]

    def admit(self, sessions: int = 0) -> bool:
        """Whether a new session is taken, with ``sessions`` already on this node."""
        if sessions < self.guaranteed_sessions:
            return True
        load = self.load
        cause = self._over(load)
        if cause is not None:
            self.refused[cause] += 1
            log.warning(
                "media session refused: node overloaded",
                extra={
                    "cause": cause,
                    "loop_lag_ms": load.loop_lag_ms,
                    "cpu_percent": load.cpu_percent,
                    "host_cpu_percent": load.host_cpu_percent,
                },
            )
        return cause is None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        cpu_started, wall_started = time.process_time(), loop.time()
        host_started = host_cpu_times()
        while True:
            before = loop.time()
            await asyncio.sleep(SAMPLE_EVERY_SECS)
            lag_ms = max(0.0, (loop.time() - before - SAMPLE_EVERY_SECS) * 1000)
            self._lag_ms += LAG_SMOOTHING * (lag_ms - self._lag_ms)
            self._track()
            now = loop.time()
            if now - wall_started >= CPU_WINDOW_SECS:
                cpu_now = time.process_time()
                self._cpu_percent = 100 * (cpu_now - cpu_started) / (now - wall_started)
                cpu_started, wall_started = cpu_now, now
                host_now = host_cpu_times()
                if host_now is not None and host_started is not None:
                    busy = host_now[0] - host_started[0]
                    total = host_now[1] - host_started[1]
                    if total > 0:
                        self._host_cpu_percent = 100 * busy / total
                host_started = host_now
