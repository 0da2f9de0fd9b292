"""A MediaHub served over Socket.IO: how a media node in another process (or on another node)
is reached. See media/rpc.py for the wire.

The agent connects to its node's ``/media`` namespace, which puts it in room ``node:<id>``; it
answers requests there and reports its load every second and every closed recording segment.
A segment report is evidence: it is kept and re-sent until the node acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import socketio

from media import rpc
from media.admission import Admission
from media.hub import MediaHub
from media.recorder import ClosedSegment

log = logging.getLogger(__name__)

LOAD_EVERY_SECS = 1.0
REPORT_TIMEOUT_SECS = 10.0
REPORT_RETRY_SECS = 1.0


class MediaAgent:
    def __init__(
        self,
        hub: MediaHub,
        *,
        node_id: str,
        home: str,
        secret: str,
        admission: Admission | None = None,
        owns_hub: bool = True,
    ) -> None:
        """``owns_hub``: closing the agent closes the hub (a worker's); a node's own hub is
        closed by its app."""
        self.hub = hub
        self._owns_hub = owns_hub
        self.node_id = node_id
        self._home = home
        self._secret = secret
        self._admission = admission
        self._client = socketio.AsyncClient(
            reconnection=True,
            reconnection_delay=0.5,
            reconnection_delay_max=2,
            handle_sigint=False,
            logger=False,
            engineio_logger=False,
        )
        self._reports: asyncio.Queue[ClosedSegment] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        for name, handler in rpc.hub_handlers(hub).items():
            self._client.on(name, _bind(handler), namespace=rpc.NAMESPACE)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self, url: str) -> None:
        """Connects (retrying until the node is up) and starts reporting."""
        await self._client.connect(
            url,
            namespaces=[rpc.NAMESPACE],
            transports=["websocket"],
            socketio_path="socket.io",
            auth={"secret": self._secret, "node": self.node_id, "home": self._home},
            retry=True,
            wait_timeout=10,
        )
        self._tasks = [
            asyncio.create_task(self._send_load()),
            asyncio.create_task(self._send_reports()),
        ]

    async def segment_closed(self, segment: ClosedSegment) -> None:
        """The hub's ``on_segment_closed``: queued, sent in order, re-sent until stored."""
        await self._reports.put(segment)

    async def close(self) -> None:
        """Close every call (their last segments are reported), then disconnect."""
        if self._owns_hub:
            await self.hub.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._reports.join(), REPORT_TIMEOUT_SECS)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._reports.empty():
            log.error(
                "media node stopped with unreported segments",
                extra={"node": self.node_id, "segments": self._reports.qsize()},
            )
        await self._client.disconnect()

    def load(self) -> dict[str, Any]:
        sessions = self.hub.session_count
        if self._admission is None:
            return {"sessions": sessions, "admit": True}
        load = self._admission.load
        return {
            "sessions": sessions,
            "admit": self._admission.fits(),
            "loop_lag_ms": load.loop_lag_ms,
            "cpu_percent": load.cpu_percent,
            "host_cpu_percent": load.host_cpu_percent,
        }

    async def _send_load(self) -> None:
        while True:
            if self._client.connected:
                with contextlib.suppress(socketio.exceptions.SocketIOError):
                    await self._client.emit(rpc.LOAD, self.load(), namespace=rpc.NAMESPACE)
            await asyncio.sleep(LOAD_EVERY_SECS)

    async def _send_reports(self) -> None:
        while True:
            segment = await self._reports.get()
            try:
                await self._report(segment)
            finally:
                self._reports.task_done()

    async def _report(self, segment: ClosedSegment) -> None:
        data = rpc.segment_to_wire(segment)
        while True:
            try:
                reply = await self._client.call(
                    rpc.SEGMENT_CLOSED,
                    data,
                    namespace=rpc.NAMESPACE,
                    timeout=REPORT_TIMEOUT_SECS,
                )
                if isinstance(reply, dict) and reply.get("ok"):
                    return
                log.error("segment report refused", extra={"reply": reply, **data})
                if isinstance(reply, dict) and reply.get("code") in ("conflict", rpc.INVALID):
                    return  # it will never be stored; the file stays on disk, and the log says
                # Else the node could not store it (its database away, say): retried.
            except socketio.exceptions.SocketIOError:
                pass
            await asyncio.sleep(REPORT_RETRY_SECS)


def _bind(handler: rpc.Handler) -> Any:
    async def run(data: Any = None) -> dict[str, Any]:
        return await rpc.serve(handler, data)

    return run
