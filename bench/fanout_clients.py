"""Console clients for the fan-out row, many per process, lean enough not to be the bottleneck.

``python -m bench.fanout_clients --url U --clients N --out FILE [--cookie C]`` connects N
``/console`` sockets (websocket transport, same origin, the staff cookie), prints ``ready: N``,
records every location event's receipt time until a line arrives on stdin, then writes the
latencies (ms, receipt minus the citizen's own timestamp, both wall clock on this machine) to
FILE, with how many sockets were still connected.

Each socket is a minimal Engine.IO v4 / Socket.IO v5 client over aiohttp's websocket, not
python-socketio's ``AsyncClient``: a thousand of those spent more CPU decoding than the server
spent sending, and a saturated client inflates both sides' latencies. This one speaks only what
a console needs: the open packet, the namespace connect (``40/console,{auth}``), answering ping
``2`` with pong ``3``, and ``42/console,["event",{...}]``, read just far enough to take the
location's ``measured_at``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import LOOPBACK

CONNECT_BATCH = 25
CONNECT_TIMEOUT_SECS = 30.0
MAX_RUN_SECS = 600.0
NAMESPACE = "/console"
EVENT_PREFIX = f"42{NAMESPACE},"
MEASURED_AT = '"measured_at":"'
LOCATION = '"type":"location"'


class ConnectRefused(RuntimeError):
    """The server answered the namespace connect with a CONNECT_ERROR (``44``)."""


@lru_cache(maxsize=4096)
def _sent_at(measured_at: str) -> float:
    return datetime.fromisoformat(measured_at).timestamp()


def measured_at(text: str) -> str | None:
    """The ``measured_at`` of a ``42/console,["event",{"type":"location",...}]`` packet.

    A substring search, not a JSON parse: python-socketio encodes with compact separators, so
    the key and its value sit together; anything else falls back to json.loads.
    """
    if not text.startswith(EVENT_PREFIX) or LOCATION not in text:
        return None
    start = text.find(MEASURED_AT)
    if start >= 0:
        start += len(MEASURED_AT)
        end = text.find('"', start)
        if end > start:
            return text[start:end]
    try:
        name, data = json.loads(text[len(EVENT_PREFIX) :])[:2]
    except (ValueError, TypeError):
        return None
    if name == "event" and isinstance(data, dict) and data.get("type") == "location":
        return str(data["measured_at"])
    return None


def socket_url(url: str) -> str:
    """The Engine.IO websocket endpoint of a server's base URL."""
    base = url.rstrip("/").replace("http://", "ws://", 1)
    return f"{base}/socket.io/?EIO=4&transport=websocket"


class LeanConsole:
    """One ``/console`` socket: connects, answers pings, logs location receipts."""

    def __init__(self, received: list[tuple[str, float]]) -> None:
        self._received = received
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.open = False

    async def connect(
        self,
        http: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        auth: dict[str, Any] | None = None,
    ) -> None:
        ws = await http.ws_connect(socket_url(url), headers=headers, autoping=True, compress=0)
        self._ws = ws
        opened = await ws.receive_str()
        if not opened.startswith("0"):
            raise RuntimeError(f"expected the Engine.IO open packet, got {opened[:80]!r}")
        await ws.send_str(f"40{NAMESPACE}," + (json.dumps(auth) if auth else ""))
        while True:
            reply = await ws.receive_str()
            if reply == "2":
                await ws.send_str("3")
            elif reply.startswith(f"40{NAMESPACE},"):
                break
            elif reply.startswith(f"44{NAMESPACE},"):
                raise ConnectRefused(reply[len(f"44{NAMESPACE},") :])
            else:
                raise RuntimeError(f"unexpected packet before connect: {reply[:80]!r}")
        self.open = True
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        received = self._received
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                text: str = message.data
                if text == "2":
                    await ws.send_str("3")
                elif (sent := measured_at(text)) is not None:
                    received.append((sent, time.time()))
                elif text.startswith(("41", "1")):  # namespace or Engine.IO disconnect
                    break
        finally:
            self.open = False

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(aiohttp.ClientError, ConnectionError, RuntimeError):
                await self._ws.send_str(f"41{NAMESPACE},")
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def _run(url: str, count: int, cookie: str, out: Path) -> None:
    received: list[tuple[str, float]] = []
    consoles: list[LeanConsole] = []
    headers = {"Origin": url}
    if cookie:
        headers["Cookie"] = f"lifeline_session={cookie}"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_SECS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def connect_one() -> None:
            console = LeanConsole(received)
            await asyncio.wait_for(console.connect(http, url, headers), CONNECT_TIMEOUT_SECS)
            consoles.append(console)

        try:
            for start in range(0, count, CONNECT_BATCH):
                batch = min(CONNECT_BATCH, count - start)
                await asyncio.gather(*(connect_one() for _ in range(batch)))
            # Every socket is up: its objects need no more GC passes (they cost ms each).
            gc.freeze()
            print(f"ready: {len(consoles)}", flush=True)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.readline(), MAX_RUN_SECS)
            latencies = [round((at - _sent_at(sent)) * 1000, 3) for sent, at in received]
            still_open = sum(1 for c in consoles if c.open)
            payload = json.dumps(
                {"clients": len(consoles), "open": still_open, "latencies_ms": latencies}
            )
            await asyncio.to_thread(out.write_text, payload)
        finally:
            await asyncio.gather(*(c.close() for c in consoles), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout_clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--cookie", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.url.startswith(f"http://{LOOPBACK}:"):
        parser.error("loopback only")
    asyncio.run(_run(args.url, min(args.clients, 5000), args.cookie, args.out))


if __name__ == "__main__":
    main()
