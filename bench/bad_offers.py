"""One bad SDP offer a second during live calls (issue 11's hostile input): the other calls'
frame rate at their operators and the media node's loop lag, beside the same calls in the
seconds before, with no bad offers.

The bad offers come from a caller's socket of a call of their own, as a hostile page would
send them: garbage, an offer with hundreds of candidates, an attribute line without its value,
codecs nobody speaks, one as large as the event allows. Each must be refused (never
``internal``), and that socket must stay connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.common import Row, ask, child_process, pct, row
from bench.server_proc import Server, add_staff, running_server, sign_in, start_call

CALLS_UP_TIMEOUT_SECS = 300.0
MEDIA_REPLY_TIMEOUT_SECS = 120.0
LAG_SAMPLE_SECS = 0.25
LAG_RE = re.compile(r"^lifeline_media_loop_lag_seconds\{[^}]*\} ([0-9.eE+-]+)$", re.MULTILINE)

_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
_AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\na=mid:0\r\na=rtcp-mux\r\n"
_ICE = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=setup:actpass\r\n"
_PRINT = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
BAD_OFFERS = [
    "this is not an offer at all",
    _HEAD + _AUDIO + "a=rtpmap:111 opus/48000/2\r\n" + _ICE + _PRINT
    + "".join(f"a=candidate:{i} 1 udp 1 127.0.0.1 {1024 + i} typ host\r\n" for i in range(400)),
    _HEAD + _AUDIO + "a=extmap\r\na=rtpmap:111 opus/48000/2\r\n" + _ICE + _PRINT,
    _HEAD + _AUDIO + "a=rtpmap:111 nonsense/1/1\r\n" + _ICE + _PRINT,
    _HEAD + _AUDIO + "a=rtpmap:111 opus/48000/2\r\n" + _ICE,  # no fingerprint
    _HEAD + ("a=x-padding:" + "z" * 1000 + "\r\n") * 60,
]  # fmt: skip


async def _operators(server: Server, count: int) -> list[str]:
    gate = asyncio.Semaphore(2)

    async def add(name: str) -> None:
        async with gate:
            await add_staff(server, name, "operator")

    names = [f"bad-offers-op{i}" for i in range(count)]
    await asyncio.gather(*(add(name) for name in names))
    return [await sign_in(server, name) for name in names]


async def _lag_samples(
    http: aiohttp.ClientSession, server: Server, stop: asyncio.Event
) -> list[float]:
    """The media nodes' loop-lag gauge (ms, the worst node), every quarter second."""
    samples: list[float] = []
    while not stop.is_set():
        async with http.get(f"{server.base}/metrics") as reply:
            values = [float(v) * 1000 for v in LAG_RE.findall(await reply.text())]
        if values:
            samples.append(max(values))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LAG_SAMPLE_SECS)
    return samples


async def _bad_offers(
    server: Server, http: aiohttp.ClientSession, stop: asyncio.Event
) -> dict[str, Any]:
    """A caller of a call of their own sends one bad offer a second until ``stop``."""
    _call_id, token = await start_call(http, server)
    sio = socketio.AsyncClient(reconnection=False, http_session=http)
    await sio.connect(
        server.base,
        namespaces=["/citizen"],
        transports=["websocket"],
        auth={"token": token, "last_seq": 0},
        headers={"Origin": server.base},
    )
    codes: Counter[str] = Counter()
    sent = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            offer = {"type": "offer", "sdp": BAD_OFFERS[sent % len(BAD_OFFERS)]}
            reply = await sio.call("media_offer", offer, namespace="/citizen", timeout=20)
            sent += 1
            codes["accepted" if reply.get("ok") else reply.get("error", {}).get("code", "?")] += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, 1.0 - (time.monotonic() - started)))
        connected = sio.connected
    finally:
        await sio.disconnect()
    return {"sent": sent, "codes": dict(codes), "still_connected": connected}


async def _phase(
    peers: Any, server: Server, http: aiohttp.ClientSession, secs: float, bad: bool
) -> tuple[dict[str, Any], list[float], dict[str, Any] | None]:
    stop = asyncio.Event()
    lags = asyncio.create_task(_lag_samples(http, server, stop))
    offers = asyncio.create_task(_bad_offers(server, http, stop)) if bad else None
    measured = await ask(peers, {"op": "measure", "secs": secs}, MEDIA_REPLY_TIMEOUT_SECS)
    stop.set()
    sent = await offers if offers is not None else None
    if not measured.get("ok"):
        raise RuntimeError(f"the calls failed to measure: {measured.get('error')}")
    return measured, await lags, sent


async def bad_offer_rows(tmp: Path, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    calls, secs = (2, 4.0) if quick else (16, 30.0)
    async with running_server(tmp / "bad-offers") as server:
        cookies = await _operators(server, calls)
        async with (
            aiohttp.ClientSession() as http,
            child_process(
                ["-m", "bench.server_peers", "--server", server.base],
                ready_keys=["ready"],
                stdin=True,
            ) as peers,
        ):
            up = await ask(peers, {"op": "calls", "operators": cookies}, CALLS_UP_TIMEOUT_SECS)
            if not up.get("ok") or up.get("calls") != calls:
                raise RuntimeError(f"the calls did not come up: {up}")
            before, lag_before, _ = await _phase(peers, server, http, secs, bad=False)
            during, lag_during, offers = await _phase(peers, server, http, secs, bad=True)
            await ask(peers, {"op": "close"}, MEDIA_REPLY_TIMEOUT_SECS)
    assert offers is not None
    label = f"bad offers 1/s beside {calls} calls"
    baseline = f"the same {calls} calls the {secs:.0f} s before, no bad offers"
    rows = [
        row(f"{label}: min operator fps", min(during["operator_video_fps"]),
            min(before["operator_video_fps"]), "fps", baseline),
        row(f"{label}: media loop lag p99 (gauge)", pct(lag_during, 99), pct(lag_before, 99),
            "ms", baseline),
    ]  # fmt: skip
    details = {
        "offers": offers,
        "internal_refusals": offers["codes"].get("internal", 0),
        "lag_samples": [len(lag_before), len(lag_during)],
        "mean_fps": [
            sum(before["operator_video_fps"]) / calls,
            sum(during["operator_video_fps"]) / calls,
        ],
    }
    return rows, details
