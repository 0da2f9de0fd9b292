"""Console Socket.IO clients for the fan-out row, in their own process.

``python -m bench.fanout_clients --url U --clients N --out FILE [--cookie C]`` connects N
``/console`` clients (websocket, same-origin, the staff cookie), prints ``ready: N``, records
every location event's receipt time until a line arrives on stdin, then writes the latencies
(ms, receipt minus the citizen's own timestamp, both wall clock on this machine) to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.common import LOOPBACK

CONNECT_BATCH = 25
CONNECT_TIMEOUT_SECS = 30.0
MAX_RUN_SECS = 600.0


@lru_cache(maxsize=4096)
def _sent_at(measured_at: str) -> float:
    return datetime.fromisoformat(measured_at).timestamp()


async def _run(url: str, count: int, cookie: str, out: Path) -> None:
    received: list[tuple[str, float]] = []
    clients: list[socketio.AsyncClient] = []
    headers = {"Origin": url}
    if cookie:
        headers["Cookie"] = f"lifeline_session={cookie}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:

        def on_event(data: dict[str, Any]) -> None:
            if data.get("type") == "location":
                received.append((data["measured_at"], time.time()))

        async def connect_one() -> None:
            sio = socketio.AsyncClient(reconnection=False, http_session=http)
            sio.on("event", on_event, namespace="/console")
            await sio.connect(
                url,
                namespaces=["/console"],
                transports=["websocket"],
                headers=headers,
                wait_timeout=CONNECT_TIMEOUT_SECS,
            )
            clients.append(sio)

        for start in range(0, count, CONNECT_BATCH):
            batch = min(CONNECT_BATCH, count - start)
            await asyncio.gather(*(connect_one() for _ in range(batch)))
        print(f"ready: {len(clients)}", flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.readline(), MAX_RUN_SECS)
        latencies = [round((at - _sent_at(sent)) * 1000, 3) for sent, at in received]
        payload = json.dumps({"clients": len(clients), "latencies_ms": latencies})
        await asyncio.to_thread(out.write_text, payload)
        await asyncio.gather(*(sio.disconnect() for sio in clients), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--cookie", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.url.startswith(f"http://{LOOPBACK}:"):
        parser.error("loopback only")
    asyncio.run(_run(args.url, min(args.clients, 2000), args.cookie, args.out))


if __name__ == "__main__":
    main()
