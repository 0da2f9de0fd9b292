"""Row 3, location fan-out: citizens send a fix a second, every console receives it.

Ours: the real server (``python -m server run``, SQLite in a fresh DATA_DIR): each fix is
stored (``do_store_location``, per-call sequence number) before it is broadcast to the queue
room. Baseline: a bare python-socketio server broadcasting the same event, nothing stored.
The consoles run in several processes of their own; their CPU is reported, so a saturated
client (which would inflate both latencies) shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.common import Child, Row, child_process, cpu_percent, cpu_sample, pct, row
from bench.server_proc import add_staff, running_server, sign_in, start_call

CONNECT_TIMEOUT_SECS = 30.0
CLIENT_EXIT_TIMEOUT_SECS = 60.0
DRAIN_SECS = 1.5
BASELINE = "bare python-socketio broadcast, no storage"


@dataclass
class Fanout:
    deliveries: int
    expected: int
    latencies_ms: list[float]
    server_cpu_percent: float
    max_client_cpu_percent: float


@contextlib.asynccontextmanager
async def _citizens(url: str, tokens: list[str]) -> AsyncIterator[list[socketio.AsyncClient]]:
    async with aiohttp.ClientSession() as http:
        clients: list[socketio.AsyncClient] = []
        try:
            for token in tokens:
                sio = socketio.AsyncClient(reconnection=False, http_session=http)
                await sio.connect(
                    url,
                    namespaces=["/citizen"],
                    transports=["websocket"],
                    auth={"token": token, "last_seq": 0},
                    headers={"Origin": url},
                    wait_timeout=CONNECT_TIMEOUT_SECS,
                )
                clients.append(sio)
            yield clients
        finally:
            await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)


async def _send_fixes(citizens: list[socketio.AsyncClient], secs: int) -> int:
    """Each citizen sends one fix a second, the citizens spread over the second."""
    start = time.monotonic()

    async def one(index: int, sio: socketio.AsyncClient) -> int:
        sent = 0
        for tick in range(secs):
            due = start + tick + index / len(citizens)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            fix = {
                "lat": 52.2297,
                "lon": 21.0122,
                "accuracy": 15.0,
                "timestamp": time.time() * 1000,
            }
            await sio.emit("location", fix, namespace="/citizen")
            sent += 1
        return sent

    return sum(await asyncio.gather(*(one(i, c) for i, c in enumerate(citizens))))


async def _run(
    url: str, server_pid: int, cookie: str, tokens: list[str], consoles: int, procs: int, secs: int
) -> Fanout:
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        outs = [Path(tmp) / f"clients-{i}.json" for i in range(procs)]
        async with contextlib.AsyncExitStack() as stack:
            clients: list[Child] = []
            for i, out in enumerate(outs):
                share = consoles // procs + (1 if i < consoles % procs else 0)
                args = ["-m", "bench.fanout_clients", "--url", url, "--clients", str(share)]
                clients.append(
                    await stack.enter_async_context(
                        child_process(
                            [*args, "--cookie", cookie, "--out", str(out)],
                            ready_keys=["ready"],
                            stdin=True,
                        )
                    )
                )
            connected = sum(int(c.ready["ready"]) for c in clients)
            async with _citizens(url, tokens) as citizens:
                before = [cpu_sample(server_pid), *(cpu_sample(c.pid) for c in clients)]
                sent = await _send_fixes(citizens, secs)
                await asyncio.sleep(DRAIN_SECS)
                after = [cpu_sample(server_pid), *(cpu_sample(c.pid) for c in clients)]
            for child in clients:
                assert child.process.stdin is not None
                child.process.stdin.write(b"stop\n")
                await child.process.stdin.drain()
            await asyncio.wait_for(
                asyncio.gather(*(c.process.wait() for c in clients)), CLIENT_EXIT_TIMEOUT_SECS
            )
        latencies: list[float] = []
        for out in outs:
            latencies += json.loads(out.read_text())["latencies_ms"]
    cpus = [cpu_percent(b, a) for b, a in zip(before, after, strict=True)]
    return Fanout(len(latencies), sent * connected, latencies, cpus[0], max(cpus[1:]))


async def fanout_rows(tmp: Path, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    consoles, procs = (50, 1) if quick else (1000, 4)
    citizens = 2 if quick else 10  # 10 x 1,000 = MEDIA-NOTES' 10,000 deliveries/s
    secs = 3 if quick else 15
    async with running_server(tmp / "fanout") as server:
        await add_staff(server, "benchop", "operator")
        # Consoles share one staff session: the server resolves it on every connect anyway.
        cookie = await sign_in(server, "benchop")
        tokens = []
        async with aiohttp.ClientSession() as http:
            for _ in range(citizens):
                tokens.append((await start_call(http, server))[1])
        ours = await _run(server.base, server.child.pid, cookie, tokens, consoles, procs, secs)
    async with child_process(["-m", "bench.bare_sio"], ready_keys=["url"]) as bare:
        fake_tokens = [f"bench-citizen-{i:08d}-token" for i in range(citizens)]
        base = await _run(bare.ready["url"], bare.pid, "", fake_tokens, consoles, procs, secs)
    label = f"{consoles} consoles, {citizens} citizens at 1/s"
    rows = [
        row(
            f"fan-out p50 ({label})",
            pct(ours.latencies_ms, 50),
            pct(base.latencies_ms, 50),
            "ms",
            BASELINE,
        ),
        row(
            f"fan-out p99 ({label})",
            pct(ours.latencies_ms, 99),
            pct(base.latencies_ms, 99),
            "ms",
            BASELINE,
        ),
        row(
            "fan-out deliveries received",
            100.0 * ours.deliveries / max(1, ours.expected),
            100.0 * base.deliveries / max(1, base.expected),
            "%",
            BASELINE,
        ),
    ]
    details = {
        side: {
            "deliveries": result.deliveries,
            "expected": result.expected,
            "server_cpu_percent": round(result.server_cpu_percent, 1),
            "max_client_process_cpu_percent": round(result.max_client_cpu_percent, 1),
            "media_calls_live": 0,
        }
        for side, result in (("ours", ours), ("baseline", base))
    }
    return rows, details
