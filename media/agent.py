"""A MediaHub served over Socket.IO: how a media node in another process (or on another node)
is reached. The wire is server/core/media_rpc.py; media/rpc.py answers each request.

The agent connects to its node's ``/media`` namespace, which puts it in room ``node:<id>``; it
answers requests there and reports its load every second and every closed recording segment.
A segment report is evidence: it is kept and re-sent until the node acknowledges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from media.admission import Admission
from media.hub import MediaHub
from media.rpc import HubHandler
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import (
    LOAD,
    NAMESPACE,
    REQUESTS,
    SEGMENT_CLOSED,
    ClosedSegment,
    LoadReport,
    SegmentStored,
    read_reply,
    serve,
)

log = logging.getLogger(__name__)

LOAD_EVERY_SECS = 1.0
REPORT_TIMEOUT_SECS = 10.0
REPORT_RETRY_SECS = 1.0
# A segment report the node refuses with these will never be stored: it is not sent again.
FINAL_REFUSALS = frozenset({ErrorCode.SEGMENT_CONFLICT, ErrorCode.INVALID})


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
        handler = HubHandler(hub)
        for event in REQUESTS:
            self._client.on(event, _served(handler, event), namespace=NAMESPACE)

    @property
    def connected(self) -> bool:
        return bool(self._client.connected)

    async def connect(self, url: str) -> None:
        """Connects (retrying until the node is up) and starts reporting."""
        await self._client.connect(
            url,
            namespaces=[NAMESPACE],
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

    def load(self) -> LoadReport:
        return load_of(self.hub, self._admission)

    async def _send_load(self) -> None:
        while True:
            if self._client.connected:
                with contextlib.suppress(socketio.exceptions.SocketIOError):
                    report = self.load().model_dump(mode="json")
                    await self._client.emit(LOAD, report, namespace=NAMESPACE)
            await asyncio.sleep(LOAD_EVERY_SECS)

    async def _send_reports(self) -> None:
        while True:
            segment = await self._reports.get()
            try:
                await self._report(segment)
            finally:
                self._reports.task_done()

    async def _report(self, segment: ClosedSegment) -> None:
        data = segment.model_dump(mode="json")
        while True:
            try:
                reply = await self._client.call(
                    SEGMENT_CLOSED, data, namespace=NAMESPACE, timeout=REPORT_TIMEOUT_SECS
                )
                read_reply(SegmentStored, reply, SEGMENT_CLOSED)
                return
            except AppError as exc:
                # The call by its log name (never an internal-security call's id, nor the file's
                # path, which holds it); the node stores what identifies the file.
                log.error(
                    "segment report refused",
                    extra={
                        "code": exc.code.value,
                        "reason": exc.message,
                        "call_id": segment.log_as or segment.call_id,
                        "segment": segment.segment,
                    },
                )
                if exc.code in FINAL_REFUSALS:
                    return  # it will never be stored; the file stays on disk, and the log says
                # Else the node could not store it (its database away, say): retried.
            except socketio.exceptions.SocketIOError:
                pass
            await asyncio.sleep(REPORT_RETRY_SECS)


def load_of(hub: MediaHub, admission: Admission | None) -> LoadReport:
    """A media node's report: its load, admission's verdict, and its counts since it started
    (the same for a worker's hub and a node's own, which its node reads in process)."""
    totals = hub.totals
    counts = {
        "segments_written": totals["segments_written"],
        "segments_failed": totals["segments_failed"],
        "frames_dropped": totals["frames_dropped"],
    }
    if admission is None:
        return LoadReport(sessions=hub.session_count, admit=True, **counts)
    load = admission.load
    return LoadReport(
        sessions=hub.session_count,
        admit=admission.fits(hub.session_count),
        loop_lag_ms=load.loop_lag_ms,
        cpu_percent=load.cpu_percent,
        host_cpu_percent=load.host_cpu_percent,
        refused=dict(admission.refused),
        **counts,
    )


def _served(handler: HubHandler, event: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The Socket.IO handler of one request event: its acknowledgement is the reply."""

    async def run(data: Any = None, *_extra: Any) -> dict[str, Any]:
        return await serve(handler, event, data)

    return run
