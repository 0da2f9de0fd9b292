"""Row 3, location fan-out: citizens send a fix a second, every console receives it, while
media calls are live on the same server.

Ours: the real server (``python -m server run``, SQLite in a fresh DATA_DIR) carrying 16
answered calls with media (bench/server_peers.py: citizens send the pre-encoded VP8 + Opus
loop, operators receive it and talk back) while each fix is stored (``do_store_location``,
per-call sequence number) before it is broadcast to the queue room. Baseline: a bare
python-socketio server broadcasting the same event, nothing stored, no media.

The consoles are lean clients (bench/fanout_clients.py), several hundred per process; the
CPU of every process is reported (the server's media workers, if it has any, apart), so a
saturated client or server shows beside the latencies it inflates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.common import (
    Child,
    Row,
    ask,
    child_process,
    children_of,
    cpu_percent,
    cpu_percent_of,
    cpu_sample,
    cpu_samples,
    pct,
    row,
)
from bench.server_proc import Server, add_staff, running_server, sign_in, start_call
from config.settings import Settings

CONNECT_TIMEOUT_SECS = 30.0
CLIENT_EXIT_TIMEOUT_SECS = 60.0
CALLS_UP_TIMEOUT_SECS = 300.0  # 16 call setups through the server, each bounded by the peers
MEDIA_REPLY_TIMEOUT_SECS = 120.0
DRAIN_SECS = 1.5
SETTLE_SECS = 2.0
BASELINE = "bare python-socketio broadcast, no storage, no media"
MEDIA_WORKERS = "LIFELINE_MEDIA_WORKERS"


@dataclass(frozen=True)
class FanoutSize:
    consoles: int
    procs: int  # console processes
    citizens: int  # each sends a fix a second
    secs: int
    media_calls: int  # live on our server during the measurement


# 10 citizens x 1,000 consoles = docs/media.md's 10,000 deliveries/s; the 16 calls.
FULL = FanoutSize(consoles=1000, procs=2, citizens=10, secs=15, media_calls=16)
QUICK = FanoutSize(consoles=50, procs=1, citizens=2, secs=3, media_calls=1)


@dataclass
class Fanout:
    deliveries: int
    expected: int
    latencies_ms: list[float]
    server_cpu_percent: float
    server_children: int
    server_children_cpu_percent: float
    server_children_cpu_each: list[float]
    client_cpu_percents: list[float]
    consoles: int
    consoles_open_at_end: int
    media: dict[str, Any] | None


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
    url: str,
    server_pid: int,
    cookie: str,
    tokens: list[str],
    size: FanoutSize,
    media: Child | None = None,
) -> Fanout:
    """Consoles connect, citizens send for ``size.secs``; the media load, if any, measures
    its operators' frame rates over the same window."""
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        outs = [Path(tmp) / f"clients-{i}.json" for i in range(size.procs)]
        async with contextlib.AsyncExitStack() as stack:
            clients: list[Child] = []
            for i, out in enumerate(outs):
                share = size.consoles // size.procs + (1 if i < size.consoles % size.procs else 0)
                args = ["-m", "bench.fanout_clients", "--url", url, "--clients", str(share)]
                # ``--cookie=``: a session token may start with "-", which argparse would
                # take for an option.
                clients.append(
                    await stack.enter_async_context(
                        child_process(
                            [*args, f"--cookie={cookie}", "--out", str(out)],
                            ready_keys=["ready"],
                            stdin=True,
                        )
                    )
                )
            connected = sum(int(c.ready["ready"]) for c in clients)
            async with _citizens(url, tokens) as citizens:
                workers = children_of(server_pid)
                server0 = cpu_samples([server_pid])
                workers0 = cpu_samples(workers)
                clients0 = [cpu_sample(c.pid) for c in clients]
                measuring = (
                    asyncio.create_task(
                        ask(media, {"op": "measure", "secs": size.secs}, MEDIA_REPLY_TIMEOUT_SECS)
                    )
                    if media is not None
                    else None
                )
                sent = await _send_fixes(citizens, size.secs)
                await asyncio.sleep(DRAIN_SECS)
                server1 = cpu_samples([server_pid])
                workers1 = cpu_samples(workers)
                clients1 = [cpu_sample(c.pid) for c in clients]
                measured = await measuring if measuring is not None else None
            for child in clients:
                assert child.process.stdin is not None
                child.process.stdin.write(b"stop\n")
                await child.process.stdin.drain()
            await asyncio.wait_for(
                asyncio.gather(*(c.process.wait() for c in clients)), CLIENT_EXIT_TIMEOUT_SECS
            )
        latencies: list[float] = []
        still_open = 0
        for out in outs:
            written = json.loads(out.read_text())
            latencies += written["latencies_ms"]
            still_open += written["open"]
    if measured is not None and not measured.get("ok"):
        raise RuntimeError(f"the media load failed to measure: {measured.get('error')}")
    return Fanout(
        deliveries=len(latencies),
        expected=sent * connected,
        latencies_ms=latencies,
        server_cpu_percent=cpu_percent_of(server0, server1),
        server_children=len(workers),
        server_children_cpu_percent=cpu_percent_of(workers0, workers1),
        server_children_cpu_each=[
            cpu_percent(workers0[pid], workers1[pid]) for pid in workers0 if pid in workers1
        ],
        client_cpu_percents=[cpu_percent(b, a) for b, a in zip(clients0, clients1, strict=True)],
        consoles=connected,
        consoles_open_at_end=still_open,
        media=measured,
    )


@contextlib.asynccontextmanager
async def _media_calls(server: Server, operator_cookies: list[str]) -> AsyncIterator[Child | None]:
    """One live call per operator, held by a load process of its own (bench/server_peers.py)."""
    if not operator_cookies:
        yield None
        return
    async with child_process(
        ["-m", "bench.server_peers", "--server", server.base], ready_keys=["ready"], stdin=True
    ) as peers:
        up = await ask(peers, {"op": "calls", "operators": operator_cookies}, CALLS_UP_TIMEOUT_SECS)
        if not up.get("ok") or up.get("calls") != len(operator_cookies):
            raise RuntimeError(f"media calls did not come up: {up}")
        try:
            yield peers
        finally:
            with contextlib.suppress(Exception):
                await ask(peers, {"op": "close"}, MEDIA_REPLY_TIMEOUT_SECS)


async def _add_staff(server: Server, names: list[str]) -> list[str]:
    """Accounts added by the CLI, two at a time (two cores), and their session cookies."""
    gate = asyncio.Semaphore(2)

    async def add(name: str) -> None:
        async with gate:
            await add_staff(server, name, "operator")

    await asyncio.gather(*(add(name) for name in names))
    return [await sign_in(server, name) for name in names]


def media_mode(env: Mapping[str, str]) -> str:
    """Which media routing the server ran with: its environment's setting, else the default
    of config/settings.py (read, not assumed), else the in-process hub of before the setting."""
    workers = env.get(MEDIA_WORKERS)
    source = "set"
    if workers is None:
        field = Settings.model_fields.get(MEDIA_WORKERS.removeprefix("LIFELINE_"))
        if field is None:
            return "media in the server process (no MEDIA_WORKERS setting)"
        workers, source = str(field.default), "default"
    where = "in the server process" if workers.strip() == "0" else "in worker processes"
    return f"{MEDIA_WORKERS}={workers} ({source}): media {where}"


async def fanout_rows(
    tmp: Path, quick: bool, server_env: Mapping[str, str] | None = None
) -> tuple[list[Row], dict[str, Any]]:
    """Ours (the real server, calls live) beside the bare broadcast; ``server_env`` is added
    to the real server's environment (e.g. ``LIFELINE_MEDIA_WORKERS``)."""
    size = QUICK if quick else FULL
    extra_env = dict(server_env or {})
    async with running_server(tmp / "fanout", extra_env) as server:
        operators = [f"benchop{i:02d}" for i in range(size.media_calls)]
        # The consoles share one staff session: the server resolves it on every connect anyway.
        cookie, *operator_cookies = await _add_staff(server, ["benchdesk", *operators])
        tokens = []
        async with aiohttp.ClientSession() as http:
            for _ in range(size.citizens):
                tokens.append((await start_call(http, server))[1])
        # Sign-ins hash passwords on the server: let admission control's CPU window (1 s)
        # forget them before the first call's media is offered.
        await asyncio.sleep(SETTLE_SECS)
        async with _media_calls(server, operator_cookies) as media:
            ours = await _run(server.base, server.child.pid, cookie, tokens, size, media)
        mode = media_mode(server.env)
    async with child_process(["-m", "bench.bare_sio"], ready_keys=["url"]) as bare:
        fake_tokens = [f"bench-citizen-{i:08d}-token" for i in range(size.citizens)]
        base = await _run(bare.ready["url"], bare.pid, "", fake_tokens, size)
    label = f"{size.consoles} consoles, {size.citizens} citizens at 1/s"
    video = (ours.media or {}).get("operator_video_fps") or [0.0]
    note = (
        f"ours: {size.media_calls} calls live ({mode}), min operator video {min(video):.1f} fps; "
        f"server CPU {ours.server_cpu_percent + ours.server_children_cpu_percent:.0f}% "
        f"vs {base.server_cpu_percent:.0f}%, busiest console process "
        f"{max(ours.client_cpu_percents):.0f}% vs {max(base.client_cpu_percents):.0f}%"
    )
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
            note=note,
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
        "size": vars(size),
        "ours": {
            **_side_details(ours),
            "media_calls_live": size.media_calls,
            "media_mode": mode,
            "server_env_extra": extra_env,
            "media": _media_details(ours.media),
        },
        "baseline": {**_side_details(base), "media_calls_live": 0},
    }
    return rows, details


def _side_details(result: Fanout) -> dict[str, Any]:
    return {
        "deliveries": result.deliveries,
        "expected": result.expected,
        "consoles": result.consoles,
        "consoles_open_at_end": result.consoles_open_at_end,
        "server_cpu_percent": round(result.server_cpu_percent, 1),
        "server_child_processes": result.server_children,
        "server_children_cpu_percent": round(result.server_children_cpu_percent, 1),
        "server_children_cpu_percent_each": [round(c, 1) for c in result.server_children_cpu_each],
        "client_process_cpu_percent": [round(c, 1) for c in result.client_cpu_percents],
        "max_client_process_cpu_percent": round(max(result.client_cpu_percents), 1),
    }


def _media_details(measured: dict[str, Any] | None) -> dict[str, Any] | None:
    if measured is None:
        return None
    video = measured["operator_video_fps"]
    return {
        "secs": round(measured["secs"], 2),
        "operator_video_fps_min": round(min(video), 2),
        "operator_video_fps_median": round(statistics.median(video), 2),
        "operator_audio_fps_min": round(min(measured["operator_audio_fps"]), 2),
        "citizen_audio_fps_min": round(min(measured["citizen_audio_fps"]), 2),
        "operator_video_fps": [round(f, 2) for f in video],
        "peers_process_cpu_percent": round(measured["peers_cpu_percent"], 1),
        "setup_ms": [round(ms, 1) for ms in measured["setup_ms"]],
        "media_busy_retries": measured["busy_retries"],
    }
