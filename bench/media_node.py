"""A media node in its own process, the one row 1 measures: our MediaHub or the naive relay.

``python -m bench.media_node --kind ours|naive --dir DIR`` serves a minimal signaling API on
loopback (offers as plain SDP over HTTP) and prints ``url: http://127.0.0.1:PORT``. Nothing
but media runs in the process, so its /proc CPU and RSS are the media path's.

* ``POST /calls/{call}/citizen``: the caller's offer, answered (opens the call, recording on);
* ``POST /calls/{call}/subscribers/{sub}``: a receiving console's offer, answered;
* ``POST /calls/{call}/end``: closes the call; JSON of frames received and recorded;
* ``GET /load``: the loop lag and CPU admission control sees, and the number of sessions.

``--max-loop-lag-ms`` and ``--max-cpu-percent`` (ours only) turn admission control on: an offer
it refuses is answered 503. Without them the same sampler runs, for the ``/load`` figures, but
the hub admits every call.
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
from media.admission import Admission
from media.hub import MediaHub
from server.core.clock import SystemClock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment

SEGMENT_SECS = 60.0  # the server's default RECORDING_SEGMENT_SECS


class Node(Protocol):
    async def citizen_offer(self, call_id: str, sdp: str) -> str: ...
    async def subscriber_offer(self, call_id: str, subscriber_id: str, sdp: str) -> str: ...
    async def end_call(self, call_id: str) -> dict[str, int]: ...
    async def close(self) -> None: ...


class OurNode:
    """The MediaHub as the server wires it (recording on), minus the database row per segment:
    the segment's file is hashed again in a thread to stand in for the server's bookkeeping."""

    def __init__(
        self,
        recordings_dir: Path,
        admission: Admission | None = None,
        segment_secs: float = SEGMENT_SECS,
    ) -> None:
        self.hub = MediaHub(
            recordings_dir=recordings_dir,
            ice_servers=[],
            media_addresses=[LOOPBACK],
            peer_networks=[f"{LOOPBACK}/32"],
            on_segment_closed=self._segment_closed,
            segment_secs=segment_secs,
            clock=SystemClock(),
            admission=admission,
        )
        self.calls: set[str] = set()  # calls with a session: the ones admitted

    async def _segment_closed(self, segment: ClosedSegment) -> None:
        await asyncio.to_thread(lambda: hashlib.sha256(segment.path.read_bytes()).hexdigest())

    async def citizen_offer(self, call_id: str, sdp: str) -> str:
        answer = await self.hub.citizen_offer(call_id, sdp)
        self.calls.add(call_id)
        return answer

    async def subscriber_offer(self, call_id: str, subscriber_id: str, sdp: str) -> str:
        return await self.hub.subscriber_offer(call_id, subscriber_id, sdp, talk=False)

    async def end_call(self, call_id: str) -> dict[str, int]:
        received = (
            self.hub.stats(call_id)["citizen"]["video_received"]
            if self.hub.has_session(call_id)
            else 0
        )
        segments = await self.hub.end_call(call_id)
        self.calls.discard(call_id)
        return {
            "video_received": received,
            "video_recorded": sum(s.video_frames for s in segments),
            "audio_recorded": sum(s.audio_frames for s in segments),
        }

    async def close(self) -> None:
        await self.hub.close()


NODE_KEY = web.AppKey("node", Node)
LOAD_KEY = web.AppKey("load", Admission)


async def _citizen(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        answer = await node.citizen_offer(request.match_info["call"], await request.text())
    except AppError as exc:
        if exc.code is not ErrorCode.MEDIA_BUSY:
            raise
        return web.Response(status=503, text="media_busy")
    return web.Response(text=answer)


async def _subscriber(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    answer = await node.subscriber_offer(
        request.match_info["call"], request.match_info["sub"], await request.text()
    )
    return web.Response(text=answer)


async def _end(request: web.Request) -> web.Response:
    return web.json_response(await request.app[NODE_KEY].end_call(request.match_info["call"]))


async def _load(request: web.Request) -> web.Response:
    load = request.app[LOAD_KEY].load
    node = request.app[NODE_KEY]
    return web.json_response(
        {
            "loop_lag_ms": load.loop_lag_ms,
            "cpu_percent": load.cpu_percent,
            "sessions": len(node.calls) if isinstance(node, OurNode) else None,
        }
    )


def create_node_app(node: Node, sampler: Admission) -> web.Application:
    app = web.Application()
    app[NODE_KEY] = node
    app[LOAD_KEY] = sampler

    async def lifetime(app: web.Application) -> object:
        app[LOAD_KEY].start()
        yield
        await app[NODE_KEY].close()
        await app[LOAD_KEY].close()

    app.cleanup_ctx.append(lifetime)  # type: ignore[arg-type]
    app.router.add_post("/calls/{call}/citizen", _citizen)
    app.router.add_post("/calls/{call}/subscribers/{sub}", _subscriber)
    app.router.add_post("/calls/{call}/end", _end)
    app.router.add_get("/load", _load)
    return app


async def _serve(
    kind: str, directory: Path, limits: tuple[float, float] | None, segment_secs: float
) -> None:
    if limits is None:
        # Nothing refuses: the sampler only reports what admission control would see.
        sampler = Admission(max_loop_lag_ms=float("inf"), max_cpu_percent=float("inf"))
    else:
        sampler = Admission(max_loop_lag_ms=limits[0], max_cpu_percent=limits[1])
    node: Node
    if kind == "ours":
        node = OurNode(directory, sampler if limits is not None else None, segment_secs)
    else:
        node = NaiveRelay(directory, [LOOPBACK])
    runner = web.AppRunner(create_node_app(node, sampler), access_log=None)
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
    parser.add_argument("--max-loop-lag-ms", type=float, help="admission control on (ours)")
    parser.add_argument("--max-cpu-percent", type=float, help="admission control on (ours)")
    parser.add_argument(
        "--segment-secs", type=float, default=SEGMENT_SECS, help="recording segment (ours)"
    )
    args = parser.parse_args()
    limits = None
    if args.max_loop_lag_ms is not None or args.max_cpu_percent is not None:
        if args.kind != "ours" or args.max_loop_lag_ms is None or args.max_cpu_percent is None:
            parser.error("admission control takes both limits, and only --kind ours")
        limits = (args.max_loop_lag_ms, args.max_cpu_percent)
    # Refusals are counted by the bench; a warning per refused offer would only be noise.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("media.admission").setLevel(logging.ERROR)
    asyncio.run(_serve(args.kind, args.dir, limits, args.segment_secs))


if __name__ == "__main__":
    main()
