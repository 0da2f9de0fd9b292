"""A media worker process: one MediaHub on an event loop of its own, so DTLS, SRTP and the
fan-out of its calls never delay the node's Socket.IO and HTTP (docs/media.md).

``python -m media.worker --node URL --id ID``, started by the node (server/media_workers.py)
with the node's environment plus ``MEDIA_WORKER_SECRET``. It stops on SIGTERM, closing its
calls' recordings and reporting their last segments first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from config import Settings, SettingsError, load_settings
from media.agent import MediaAgent
from media.hub import hub_from_settings
from server.core.clock import SystemClock
from server.core.gc_tuning import freeze_startup_objects
from server.core.logs import setup_logging
from server.core.media_rpc import ClosedSegment, RecordingFailure, RecordingState

SECRET_ENV = "MEDIA_WORKER_SECRET"


async def _serve(settings: Settings, node_url: str, node_id: str, home: str, secret: str) -> None:
    agent: MediaAgent | None = None

    async def on_segment_closed(segment: ClosedSegment) -> None:
        assert agent is not None
        await agent.segment_closed(segment)

    async def on_recording_failed(failure: RecordingFailure) -> None:
        assert agent is not None
        await agent.recording_failed(failure)

    async def on_recording_state(state: RecordingState) -> None:
        assert agent is not None
        await agent.recording_state(state)

    hub = hub_from_settings(
        settings,
        on_segment_closed=on_segment_closed,
        on_recording_failed=on_recording_failed,
        clock=SystemClock(),
        node_id=node_id,
        on_recording_state=on_recording_state,
    )
    agent = MediaAgent(hub, node_id=node_id, home=home, secret=secret, admission=hub.admission)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watchdog = asyncio.create_task(_orphaned(stop))
    try:
        await agent.connect(node_url)
        # A worker restarted after a crash first closes what its predecessor left open.
        hub.start_recovery()
        hub.watch_disk()
        freeze_startup_objects()
        await stop.wait()
    finally:
        watchdog.cancel()
        await agent.close()


async def _orphaned(stop: asyncio.Event) -> None:
    """A node killed outright cannot stop its workers: they notice and stop themselves."""
    parent = os.getppid()
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing signals a parent's death
        await asyncio.sleep(1.0)
    stop.set()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m media.worker")
    parser.add_argument("--node", required=True, help="the node's URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--id", required=True, help="this media node's id")
    parser.add_argument("--home", required=True, help="the NODE_ID of the node that runs it")
    args = parser.parse_args()
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        print(f"error: {SECRET_ENV} is not set", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.LOG_FORMAT, settings.LOG_LEVEL)
    asyncio.run(_serve(settings, args.node, args.id, args.home, secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
