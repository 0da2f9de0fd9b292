"""The fan-out baseline: a bare python-socketio server broadcasting the same location events.

No storage, no authentication, no media: the citizen's fix becomes the same ``location`` event
(a sequence number from a counter) and goes to every console in the queue room at once.
``python -m bench.bare_sio`` prints ``url: http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import socketio
from aiohttp import web

from bench.common import LOOPBACK

QUEUE_ROOM = "queue:police"


def create_bare_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", transports=["websocket"])
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    seqs: Counter[str] = Counter()  # per app, not per module

    async def console_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await sio.enter_room(sid, QUEUE_ROOM, namespace="/console")

    async def citizen_connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        call_id = str((auth or {}).get("token", sid))[:36]
        await sio.save_session(sid, {"call_id": call_id}, namespace="/citizen")

    async def location(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        call_id = (await sio.get_session(sid, namespace="/citizen"))["call_id"]
        seqs[call_id] += 1
        event = {
            "type": "location",
            "call_id": call_id,
            "seq": seqs[call_id],
            "lat": data["lat"],
            "lon": data["lon"],
            "accuracy": data.get("accuracy"),
            "heading": data.get("heading"),
            "speed": data.get("speed"),
            "measured_at": datetime.fromtimestamp(data["timestamp"] / 1000, UTC).isoformat(),
        }
        await sio.emit("event", event, room=QUEUE_ROOM, namespace="/console")
        return {"ok": True, "seq": seqs[call_id]}

    sio.on("connect", console_connect, namespace="/console")
    sio.on("connect", citizen_connect, namespace="/citizen")
    sio.on("location", location, namespace="/citizen")
    return app


async def _serve() -> None:
    runner = web.AppRunner(create_bare_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"url: http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(_serve())
