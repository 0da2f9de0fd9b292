"""A media node in its own process, the one row 1 measures: our MediaHub or the naive relay.

``python -m bench.media_node --kind ours|naive --dir DIR`` serves a minimal signaling API on
loopback (offers as plain SDP over HTTP) and prints ``url: http://127.0.0.1:PORT``. Nothing
but media runs in the process, so its /proc CPU and RSS are the media path's.

* ``POST /calls/{call}/citizen``: the caller's offer, answered (opens the call, recording on);
* ``POST /calls/{call}/subscribers/{sub}``: a receiving console's offer, answered;
* ``POST /calls/{call}/end``: closes the call; JSON of frames received and recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import signal
from pathlib import Path
from typing import Protocol

from aiohttp import web

from bench.common import LOOPBACK
from bench.naive_relay import NaiveRelay
from media.hub import ClosedSegment, MediaHub
from server.clock import SystemClock

SEGMENT_SECS = 60.0  # the server's default RECORDING_SEGMENT_SECS


class Node(Protocol):
    async def citizen_offer(self, call_id: str, sdp: str) -> str: ...
    async def subscriber_offer(self, call_id: str, subscriber_id: str, sdp: str) -> str: ...
    async def end_call(self, call_id: str) -> dict[str, int]: ...
    async def close(self) -> None: ...


class OurNode:
    """The MediaHub as the server wires it (recording on), minus the database row per segment:
    the segment's file is hashed again in a thread to stand in for the server's bookkeeping."""

    def __init__(self, recordings_dir: Path) -> None:
        self.hub = MediaHub(
            recordings_dir=recordings_dir,
            ice_servers=[],
            media_addresses=[LOOPBACK],
            peer_networks=[],
            on_segment_closed=self._segment_closed,
            segment_secs=SEGMENT_SECS,
            clock=SystemClock(),
        )

    async def _segment_closed(self, segment: ClosedSegment) -> None:
        await asyncio.to_thread(lambda: hashlib.sha256(segment.path.read_bytes()).hexdigest())

    async def citizen_offer(self, call_id: str, sdp: str) -> str:
        return await self.hub.citizen_offer(call_id, sdp)

    async def subscriber_offer(self, call_id: str, subscriber_id: str, sdp: str) -> str:
        return await self.hub.subscriber_offer(call_id, subscriber_id, sdp, talk=False)

    async def end_call(self, call_id: str) -> dict[str, int]:
        received = (
            self.hub.stats(call_id)["citizen"]["video_received"]
            if self.hub.has_session(call_id)
            else 0
        )
        segments = await self.hub.end_call(call_id)
        return {
            "video_received": received,
            "video_recorded": sum(s.video_frames for s in segments),
            "audio_recorded": sum(s.audio_frames for s in segments),
        }

    async def close(self) -> None:
        await self.hub.close()


NODE_KEY = web.AppKey("node", Node)


async def _citizen(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    answer = await node.citizen_offer(request.match_info["call"], await request.text())
    return web.Response(text=answer)


async def _subscriber(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    answer = await node.subscriber_offer(
        request.match_info["call"], request.match_info["sub"], await request.text()
    )
    return web.Response(text=answer)


async def _end(request: web.Request) -> web.Response:
    return web.json_response(await request.app[NODE_KEY].end_call(request.match_info["call"]))


def create_node_app(node: Node) -> web.Application:
    app = web.Application()
    app[NODE_KEY] = node

    async def lifetime(app: web.Application) -> object:
        yield
        await app[NODE_KEY].close()

    app.cleanup_ctx.append(lifetime)  # type: ignore[arg-type]
    app.router.add_post("/calls/{call}/citizen", _citizen)
    app.router.add_post("/calls/{call}/subscribers/{sub}", _subscriber)
    app.router.add_post("/calls/{call}/end", _end)
    return app


async def _serve(kind: str, directory: Path) -> None:
    node: Node = OurNode(directory) if kind == "ours" else NaiveRelay(directory, [LOOPBACK])
    runner = web.AppRunner(create_node_app(node), access_log=None)
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


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_node")
    parser.add_argument("--kind", choices=["ours", "naive"], required=True)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(_serve(args.kind, args.dir))


if __name__ == "__main__":
    main()
