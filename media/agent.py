"""A MediaHub served over Socket.IO: how a media node in another process (or on another node)
is reached. The wire is server/core/media_rpc.py; media/rpc.py answers each request.

The agent connects to its node's ``/media`` namespace, which puts it in room ``node:<id>``; it
answers requests there and reports its load every second, every closed recording segment and
every recording failure. A report is evidence: it is kept and re-sent until the node
acknowledges it, and only then is the segment's claim given up (media/segment_claims.py), so a
worker that dies with reports unsent leaves its segments for the next sweep to report. The end
of a call is answered only once its reports are acknowledged (at most
``END_CALL_REPORT_WAIT_SECS``; the reply says how many were not): the node seals the call's
record when that answer comes, so the seal covers the last segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
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
    RECORDING_FAILED,
    RECORDING_STATE,
    REQUESTS,
    SEGMENT_CLOSED,
    CallEnded,
    ClosedSegment,
    Done,
    EndCall,
    LoadReport,
    MediaRequest,
    R,
    RecordingFailure,
    RecordingState,
    SegmentStored,
    read_reply,
    serve,
)

log = logging.getLogger(__name__)

LOAD_EVERY_SECS = 0.5
REPORT_TIMEOUT_SECS = 10.0
REPORT_RETRY_SECS = 1.0
# How long the answer to EndCall waits for the call's segment reports (inside the node's
# signaling/media_bus.py END_CALL_TIMEOUT_SECS).
END_CALL_REPORT_WAIT_SECS = 5.0
# What a media node reports besides its load, each kept and re-sent until acknowledged.
Report = ClosedSegment | RecordingFailure | RecordingState
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
        self._reports: asyncio.Queue[Report] = asyncio.Queue()
        # Reports queued or being sent, per call; a change wakes the ends waiting on them.
        self._unreported: Counter[str] = Counter()
        self._reported = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        handler = _EndsAfterReports(HubHandler(hub), self)
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
        self._unreported[segment.call_id] += 1
        await self._reports.put(segment)

    async def recording_failed(self, failure: RecordingFailure) -> None:
        """The hub's ``on_recording_failed``: queued and sent as a segment report is."""
        self._unreported[failure.call_id] += 1
        await self._reports.put(failure)

    async def recording_state(self, state: RecordingState) -> None:
        """The hub's ``on_recording_state``: a call's recording paused or resumed, queued and
        sent in order with the segment reports (the last segment before a pause comes first)."""
        self._unreported[state.call_id] += 1
        await self._reports.put(state)

    async def unreported_after(self, call_id: str, wait_secs: float) -> int:
        """Wait (at most ``wait_secs``) until every segment of the call queued so far is
        reported; how many are still not."""
        async with self._reported:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._reported.wait_for(lambda: self._unreported[call_id] == 0), wait_secs
                )
            return self._unreported[call_id]

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
            # Their claims stay on disk: the next sweep of any media node reports them.
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
            report = await self._reports.get()
            try:
                await self._report(report)
            finally:
                self._reports.task_done()
                async with self._reported:
                    self._unreported[report.call_id] -= 1
                    if self._unreported[report.call_id] <= 0:
                        del self._unreported[report.call_id]
                    self._reported.notify_all()

    async def _report(self, report: Report) -> None:
        data = report.model_dump(mode="json")
        event = (
            SEGMENT_CLOSED
            if isinstance(report, ClosedSegment)
            else RECORDING_FAILED
            if isinstance(report, RecordingFailure)
            else RECORDING_STATE
        )
        while True:
            try:
                reply = await self._client.call(
                    event, data, namespace=NAMESPACE, timeout=REPORT_TIMEOUT_SECS
                )
                if isinstance(report, ClosedSegment):
                    read_reply(SegmentStored, reply, event)
                    self.hub.release(report)
                else:
                    read_reply(Done, reply, event)
                return
            except AppError as exc:
                # The call by its log name (never an internal-security call's id, nor the file's
                # path, which holds it); the node stores what identifies the file.
                log.error(
                    "segment report refused",
                    extra={
                        "code": exc.code.value,
                        "reason": exc.message,
                        "call_id": report.log_as or report.call_id,
                        "segment": getattr(report, "segment", None),
                        "report": event,
                    },
                )
                if exc.code in FINAL_REFUSALS:
                    # It will never be stored; the file stays on disk, and the log and the
                    # chain (recording_failed) say so.
                    if isinstance(report, ClosedSegment):
                        self.hub.release(report)
                    return
                # Else the node could not store it (its database away, say): retried.
            except socketio.exceptions.SocketIOError:
                pass
            await asyncio.sleep(REPORT_RETRY_SECS)


def load_of(hub: MediaHub, admission: Admission | None) -> LoadReport:
    """A media node's report: its load, admission's verdict, and its counts since it started
    (the same for a worker's hub and a node's own, which its node reads in process)."""
    totals = hub.totals
    counts: dict[str, Any] = {
        "segments_written": totals["segments_written"],
        "segments_failed": totals["segments_failed"],
        "frames_dropped": totals["frames_dropped"],
        "disk_free_bytes": hub.disk.free_bytes,
        "disk_low": hub.disk.low,
        "recording_paused": hub.paused_count,
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


class _EndsAfterReports:
    """The hub's handler, except that ``EndCall`` is answered after the call's segment
    reports are acknowledged (or the wait runs out, and the reply says how many are not)."""

    def __init__(self, handler: HubHandler, agent: MediaAgent) -> None:
        self._handler = handler
        self._agent = agent

    async def __call__(self, request: MediaRequest[R]) -> R:
        reply = await self._handler(request)
        if isinstance(request, EndCall) and isinstance(reply, CallEnded):
            left = await self._agent.unreported_after(request.call_id, END_CALL_REPORT_WAIT_SECS)
            return reply.model_copy(update={"unreported": left})
        return reply


def _served(handler: _EndsAfterReports, event: str) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The Socket.IO handler of one request event: its acknowledgement is the reply."""

    async def run(data: Any = None, *_extra: Any) -> dict[str, Any]:
        return await serve(handler, event, data)

    return run
