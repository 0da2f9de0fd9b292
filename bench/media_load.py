"""Row 1, calls per node: ramp recorded calls on a media node until quality breaks.

The measured process is a media node alone (``bench.media_node``): our MediaHub, or the naive
relay as the baseline, each in its own process, driven by the same synthetic peers in another
process (``bench.peers_proc``). The server's Socket.IO signaling is not in the loop: it costs
once per call, while the media path costs every frame; the fan-out row runs media next to
Socket.IO in the real server.

A step passes when every operator gets >= 25 fps and the probe's p95 latency is <= 200 ms.
CPU (% of one core, /proc utime+stime of the node) and RSS are read over the step's window.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bench import media_file
from bench.common import (
    Child,
    Row,
    ask,
    child_process,
    cpu_percent,
    cpu_sample,
    pct,
    row,
    rss_bytes,
)

MIN_FPS = 25.0
MAX_P95_MS = 200.0
FULL_RAMP = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32)
QUICK_RAMP = (1,)
REPLY_TIMEOUT_SECS = 300.0  # 32 call setups at worst, each bounded by the peers
BASELINE = "naive aiortc relay: decode, MediaRelay, re-encode, MediaRecorder webm"


@dataclass
class Step:
    calls: int
    min_fps: float
    min_audio_fps: float
    p50_ms: float
    p95_ms: float
    node_cpu_percent: float
    node_rss_bytes: int
    peers_cpu_percent: float
    sent_fps: float
    ok: bool
    error: str = ""


@dataclass
class Ramp:
    kind: str
    idle_rss_bytes: int = 0
    steps: list[Step] = field(default_factory=list)
    recordings: list[dict[str, int]] = field(default_factory=list)

    @property
    def last_good(self) -> Step | None:
        good = None
        for step in self.steps:
            if not step.ok:
                break
            good = step
        return good

    def cpu_per_call(self, step: Step | None) -> float:
        return step.node_cpu_percent / step.calls if step else 0.0

    def rss_per_call_mb(self, step: Step | None) -> float:
        if step is None:
            return 0.0
        return max(0, step.node_rss_bytes - self.idle_rss_bytes) / step.calls / 1e6

    @property
    def recorded_percent(self) -> float:
        sent = sum(r.get("video_sent", 0) for r in self.recordings)
        recorded = sum(r.get("video_recorded", 0) for r in self.recordings)
        return 100.0 * recorded / sent if sent else 0.0


async def _ask(peers: Child, command: dict[str, Any]) -> dict[str, Any]:
    return await ask(peers, command, REPLY_TIMEOUT_SECS)


@asynccontextmanager
async def node_and_peers(node_args: list[str]) -> AsyncIterator[tuple[Child, Child, int]]:
    """A media node (``bench.media_node`` with ``node_args``) in a fresh directory, and the
    peers process pointed at it; with the node's RSS before any call."""
    with tempfile.TemporaryDirectory(prefix="bench-node-") as tmp:
        async with child_process(
            ["-m", "bench.media_node", *node_args, "--dir", tmp], ready_keys=["url"]
        ) as node:
            idle_rss = rss_bytes(node.pid)
            async with child_process(
                ["-m", "bench.peers_proc", "--node", node.ready["url"]],
                ready_keys=["ready"],
                stdin=True,
            ) as peers:
                yield node, peers, idle_rss


async def ramp(kind: str, counts: tuple[int, ...], measure_secs: float) -> Ramp:
    """Start a node of ``kind`` and the peers; raise the call count until a step fails."""
    result = Ramp(kind)
    async with node_and_peers(["--kind", kind]) as (node, peers, result.idle_rss_bytes):
        try:
            for count in counts:
                step = await _step(node, peers, count, measure_secs, measure_secs / 3)
                result.steps.append(step)
                if not step.ok:
                    break
        finally:
            closed = await _ask(peers, {"op": "close"})
            result.recordings = closed.get("recordings", [])
    return result


async def _step(
    node: Child, peers: Child, count: int, measure_secs: float, settle_secs: float
) -> Step:
    up = await _ask(peers, {"op": "calls", "n": count})
    if not up.get("ok"):
        return Step(count, 0, 0, 0, 0, 0, 0, 0, 0, ok=False, error=str(up.get("error")))
    await asyncio.sleep(settle_secs)
    before = cpu_sample(node.pid)
    measured = await _ask(peers, {"op": "measure", "secs": measure_secs})
    after = cpu_sample(node.pid)
    if not measured.get("ok"):
        return Step(count, 0, 0, 0, 0, 0, 0, 0, 0, ok=False, error=str(measured.get("error")))
    latencies = measured["latencies_ms"]
    min_fps = min(measured["video_fps"])
    p95 = pct(latencies, 95) if latencies else float("inf")
    return Step(
        calls=count,
        min_fps=min_fps,
        min_audio_fps=min(measured["audio_fps"]),
        p50_ms=pct(latencies, 50) if latencies else float("inf"),
        p95_ms=p95,
        node_cpu_percent=cpu_percent(before, after),
        node_rss_bytes=rss_bytes(node.pid),
        peers_cpu_percent=measured["peers_cpu_percent"],
        sent_fps=measured["sent_fps"],
        ok=min_fps >= MIN_FPS and p95 <= MAX_P95_MS,
        error="" if latencies else "the probe read no frame",
    )


async def media_rows(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """Row 1 for ours and the baseline; the JSON details hold every step."""
    # Encoded once, before anything is timed (the peers load the same file).
    await asyncio.to_thread(media_file.ensure_media_file)
    counts = QUICK_RAMP if quick else FULL_RAMP
    measure_secs = 2.5 if quick else 6.0
    ours = await ramp("ours", counts, measure_secs)
    base = await ramp("naive", counts, measure_secs)
    rows: list[Row] = []
    good, base_good = ours.last_good, base.last_good
    first, base_first = ours.steps[0] if ours.steps else None, base.steps[0] if base.steps else None
    if not quick:
        rows.append(
            row(
                f"media: recorded calls/node (cap {counts[-1]})",
                good.calls if good else 0,
                base_good.calls if base_good else 0,
                "calls",
                BASELINE,
                note=f">= {MIN_FPS:g} fps at every operator, probe p95 <= {MAX_P95_MS:g} ms",
            )
        )
        rows.append(
            row(
                "media: p95 latency at last good step",
                good.p95_ms if good else 0,
                base_good.p95_ms if base_good else 0,
                "ms",
                BASELINE,
            )
        )
    # At one call both sides are comparable in every run, quick or not.
    if first and base_first:
        rows += [
            row(
                "media: CPU per call (1 call)",
                first.node_cpu_percent,
                base_first.node_cpu_percent,
                "%core",
                BASELINE,
            ),
            row(
                "media: min operator fps (1 call)",
                first.min_fps,
                base_first.min_fps,
                "fps",
                BASELINE,
            ),
            row(
                "media: probe p95 latency (1 call)", first.p95_ms, base_first.p95_ms, "ms", BASELINE
            ),
            row(
                "media: RSS per call (1 call)",
                ours.rss_per_call_mb(first),
                base.rss_per_call_mb(base_first),
                "MB",
                BASELINE,
            ),
        ]
    if not quick and good and base_good:
        rows += [
            row(
                f"media: CPU per call (at {good.calls} vs {base_good.calls})",
                ours.cpu_per_call(good),
                base.cpu_per_call(base_good),
                "%core",
                BASELINE,
            ),
            row(
                f"media: RSS per call (at {good.calls} vs {base_good.calls})",
                ours.rss_per_call_mb(good),
                base.rss_per_call_mb(base_good),
                "MB",
                BASELINE,
            ),
        ]
    rows.append(
        row(
            "media: video frames recorded/sent",
            ours.recorded_percent,
            base.recorded_percent,
            "%",
            BASELINE,
        )
    )
    details = {"ours": _details(ours), "baseline": _details(base)}
    return rows, details


def _details(result: Ramp) -> dict[str, Any]:
    return {
        "kind": result.kind,
        "idle_rss_bytes": result.idle_rss_bytes,
        "steps": [vars(step) for step in result.steps],
        "recordings": result.recordings,
    }
