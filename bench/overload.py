"""The overload row: offer a media node more calls than it can carry, then hold.

Issue target: under overload, admitted calls keep >= 25 fps and memory per call stays bounded.
Ours: the media node (bench/media_node.py, our MediaHub) with admission control on, at the
server's default thresholds (config/settings.py MEDIA_MAX_LOOP_LAG_MS, MEDIA_MAX_CPU_PERCENT).
Baseline: the same node and the same ramp with admission control off: every call is taken.

The ramp offers calls a few at a time, pausing after each step so that admission control's
one-second CPU window and smoothed loop lag see the calls just added; it goes well past what
the media row held at 30 fps (32 calls). Then every admitted call is held: frames per second
at each operator and the probe's latency over the hold, and the node's RSS per admitted call
at the start and the end of it (bounded: it does not grow while nothing is added).
The peers (bench/peers_proc.py) run in their own process; their CPU is reported, since on a
small machine they may saturate before the node does.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import media_file
from bench.common import (
    Child,
    Row,
    ask,
    cpu_percent,
    cpu_sample,
    pct,
    row,
    rss_bytes,
)
from bench.media_load import node_and_peers
from config.settings import Settings

REPLY_TIMEOUT_SECS = 300.0
RSS_EVERY_SECS = 1.0
MIN_FPS = 25.0
BASELINE = "same ramp, admission control off"


@dataclass(frozen=True)
class OverloadSize:
    offered: int  # calls offered in all
    step: int  # offered at once
    settle_secs: float  # after each step: admission control's view catches up
    hold_secs: float
    # RSS at the start of the hold is read this far into it: the allocator's pools fill while
    # new calls run and their first segments rotate (seen: +15 % in 20 s, then flat for
    # minutes, with segments rotating every 5 s), and that warm-up is not growth.
    warmup_secs: float
    # Short segments, so the hold spans several rotations of every call's recording (the
    # server's default is 60 s): a leak per segment would show as growth.
    segment_secs: float


# 64 = twice the 32 calls the media row held at 30 fps, and the most the peers process holds;
# on a quiet 2-core machine 48 calls still ran at 30 fps, so fewer would not overload the node.
FULL = OverloadSize(
    offered=64, step=4, settle_secs=2.0, hold_secs=90.0, warmup_secs=30.0, segment_secs=10.0
)
QUICK = OverloadSize(
    offered=2, step=1, settle_secs=1.0, hold_secs=3.0, warmup_secs=1.0, segment_secs=5.0
)


def default_limits() -> tuple[float, float]:
    """The server's own admission thresholds: loop lag (ms), CPU (% of one core)."""
    fields = Settings.model_fields
    lag = fields["MEDIA_MAX_LOOP_LAG_MS"].default
    cpu = fields["MEDIA_MAX_CPU_PERCENT"].default
    return float(lag), float(cpu)


@dataclass
class Side:
    admission: bool
    offered: int = 0
    admitted: int = 0
    refused: int = 0
    idle_rss_bytes: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    rss_start_bytes: int = 0
    rss_end_bytes: int = 0
    rss_samples_mb: list[float] = field(default_factory=list)
    node_cpu_percent: float = 0.0
    hold: dict[str, Any] = field(default_factory=dict)
    recordings: list[dict[str, int]] = field(default_factory=list)

    def rss_per_call_mb(self, rss: int) -> float:
        return max(0, rss - self.idle_rss_bytes) / max(1, self.admitted) / 1e6

    @property
    def min_fps(self) -> float:
        return min(self.hold.get("video_fps") or [0.0])

    @property
    def p95_ms(self) -> float:
        latencies = self.hold.get("latencies_ms") or []
        return pct(latencies, 95) if latencies else 0.0


async def _node_load(http: aiohttp.ClientSession, node: Child) -> dict[str, Any]:
    async with http.get(f"{node.ready['url']}/load") as reply:
        load: dict[str, Any] = await reply.json()
    return load


async def _sample_rss(node: Child, into: list[float]) -> None:
    while True:
        with contextlib.suppress(OSError):
            into.append(round(rss_bytes(node.pid) / 1e6, 1))
        await asyncio.sleep(RSS_EVERY_SECS)


async def overload_side(size: OverloadSize, limits: tuple[float, float] | None) -> Side:
    """Ramp and hold against one node: admission control at ``limits``, or off (None)."""
    side = Side(admission=limits is not None)
    args = ["--kind", "ours", "--segment-secs", str(size.segment_secs)]
    if limits is not None:
        args += ["--max-loop-lag-ms", str(limits[0]), "--max-cpu-percent", str(limits[1])]
    async with (
        node_and_peers(args) as (node, peers, side.idle_rss_bytes),
        aiohttp.ClientSession() as http,
    ):
        try:
            await _ramp(side, size, node, peers, http)
            await _hold(side, size, node, peers)
        finally:
            with contextlib.suppress(Exception):
                closed = await ask(peers, {"op": "close"}, REPLY_TIMEOUT_SECS)
                side.recordings = closed.get("recordings", [])
    return side


async def _ramp(
    side: Side, size: OverloadSize, node: Child, peers: Child, http: aiohttp.ClientSession
) -> None:
    while side.offered < size.offered:
        count = min(size.step, size.offered - side.offered)
        cpu0 = cpu_sample(node.pid)
        reply = await ask(peers, {"op": "offer", "n": count}, REPLY_TIMEOUT_SECS)
        if not reply.get("ok"):
            raise RuntimeError(f"offering calls failed: {reply.get('error')}")
        side.offered += count
        side.admitted += reply["admitted"]
        side.refused += reply["refused"]
        await asyncio.sleep(size.settle_secs)
        side.steps.append(
            {
                "offered": side.offered,
                "admitted": side.admitted,
                "refused": side.refused,
                "node_cpu_percent": round(cpu_percent(cpu0, cpu_sample(node.pid)), 1),
                "node_rss_mb": round(rss_bytes(node.pid) / 1e6, 1),
                "node_sees": await _node_load(http, node),
            }
        )


async def _hold(side: Side, size: OverloadSize, node: Child, peers: Child) -> None:
    sampler = asyncio.create_task(_sample_rss(node, side.rss_samples_mb))

    async def warm() -> None:
        await asyncio.sleep(size.warmup_secs)
        side.rss_start_bytes = rss_bytes(node.pid)

    warmed = asyncio.create_task(warm())
    try:
        cpu0 = cpu_sample(node.pid)
        measured = await ask(peers, {"op": "measure", "secs": size.hold_secs}, REPLY_TIMEOUT_SECS)
        await warmed
        side.node_cpu_percent = cpu_percent(cpu0, cpu_sample(node.pid))
        side.rss_end_bytes = rss_bytes(node.pid)
    finally:
        for task in (sampler, warmed):
            task.cancel()
        await asyncio.gather(sampler, warmed, return_exceptions=True)
    if not measured.get("ok"):
        raise RuntimeError(f"measuring the hold failed: {measured.get('error')}")
    side.hold = measured


async def overload_rows(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """The overload row, ours (admission at the server's thresholds) beside no admission."""
    await asyncio.to_thread(media_file.ensure_media_file)
    size = QUICK if quick else FULL
    limits = default_limits()
    ours = await overload_side(size, limits)
    base = await overload_side(size, None)
    hold = f"{size.hold_secs:g} s hold"
    rows = [
        row(
            f"overload: calls admitted of {size.offered} offered",
            ours.admitted,
            base.admitted,
            "calls",
            BASELINE,
            note=f"ours refused {ours.refused} (loop lag > {limits[0]:g} ms or CPU > "
            f"{limits[1]:g}%; the most the node saw while ramping: {_peak(ours, 'loop_lag_ms'):g} "
            f"ms, {_peak(ours, 'cpu_percent'):g}%)",
        ),
        row(
            f"overload: min operator fps, admitted calls ({hold})",
            ours.min_fps,
            base.min_fps,
            "fps",
            BASELINE,
            note=f"target >= {MIN_FPS:g}; peers process CPU {_peers_cpu(ours):.0f}% vs "
            f"{_peers_cpu(base):.0f}%, node {ours.node_cpu_percent:.0f}% vs "
            f"{base.node_cpu_percent:.0f}%",
        ),
        row(f"overload: probe p95 latency ({hold})", ours.p95_ms, base.p95_ms, "ms", BASELINE),
        row(
            f"overload: RSS per admitted call, {size.warmup_secs:g} s into the hold",
            ours.rss_per_call_mb(ours.rss_start_bytes),
            base.rss_per_call_mb(base.rss_start_bytes),
            "MB",
            BASELINE,
        ),
        row(
            "overload: RSS per admitted call, end of hold",
            ours.rss_per_call_mb(ours.rss_end_bytes),
            base.rss_per_call_mb(base.rss_end_bytes),
            "MB",
            BASELINE,
        ),
        row(
            f"overload: node RSS, end of hold / {size.warmup_secs:g} s into it",
            100.0 * ours.rss_end_bytes / max(1, ours.rss_start_bytes),
            100.0 * base.rss_end_bytes / max(1, base.rss_start_bytes),
            "%",
            BASELINE,
            note="100 = flat: memory bounded while the calls are held",
        ),
    ]
    details = {
        "size": vars(size),
        "limits": {"max_loop_lag_ms": limits[0], "max_cpu_percent": limits[1]},
        "ours": _details(ours),
        "baseline": _details(base),
    }
    return rows, details


def _peak(side: Side, key: str) -> float:
    """The highest load figure the node reported after any ramp step."""
    return max((float(step["node_sees"][key]) for step in side.steps), default=0.0)


def _peers_cpu(side: Side) -> float:
    return float(side.hold.get("peers_cpu_percent") or 0.0)


def _details(side: Side) -> dict[str, Any]:
    hold = side.hold
    return {
        "admission": side.admission,
        "offered": side.offered,
        "admitted": side.admitted,
        "refused": side.refused,
        "idle_rss_mb": round(side.idle_rss_bytes / 1e6, 1),
        "rss_start_mb": round(side.rss_start_bytes / 1e6, 1),
        "rss_end_mb": round(side.rss_end_bytes / 1e6, 1),
        "rss_samples_mb": side.rss_samples_mb,
        "node_cpu_percent_hold": round(side.node_cpu_percent, 1),
        "steps": side.steps,
        "hold": {
            "secs": hold.get("secs"),
            "video_fps": [round(f, 2) for f in hold.get("video_fps", [])],
            "audio_fps_min": round(min(hold.get("audio_fps") or [0.0]), 2),
            "sent_fps": hold.get("sent_fps"),
            "probe_p50_ms": round(pct(hold.get("latencies_ms") or [], 50), 1),
            "probe_p95_ms": round(side.p95_ms, 1),
            "probe_samples": len(hold.get("latencies_ms") or []),
            "probe_unreadable": hold.get("probe_unreadable"),
            "peers_cpu_percent": hold.get("peers_cpu_percent"),
        },
        # Per admitted call, whole call: frames the citizen sent, the node received, recorded.
        "recordings": side.recordings,
    }
