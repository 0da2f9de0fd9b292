"""``/media``: where media nodes in other processes connect to their node (media/agent.py).

Only a holder of the node's media secret gets in; it joins room ``node:<id>``, where any node's
media bus (signaling/media_bus.py) reaches it. Its reports are parsed into their models
(server/core/media_rpc.py) and handed to one action each: its load to the placement of new
calls, its closed recording segments to be stored with their audit entries, its recording
failures to be entered in the chain, a call's recording paused or resumed to its watchers.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import socketio
from pydantic import ValidationError

from server.actions import media
from server.actions.recording_state import do_recording_state
from server.actions.recordings import record_failure, record_segment
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import (
    NAMESPACE,
    ClosedSegment,
    Done,
    LoadReport,
    RecordingFailure,
    RecordingState,
    SegmentStored,
    invalid,
    node_room,
    to_wire,
)
from server.core.services import Services
from signaling.namespace import connection_refused

log = logging.getLogger("lifeline.signaling")

ReportT = TypeVar("ReportT", RecordingFailure, RecordingState)

NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class MediaNamespace(socketio.AsyncNamespace):
    def __init__(self, services: Services, secret: str) -> None:
        super().__init__(NAMESPACE)
        self.services = services
        self._secret = secret

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        secret = auth.get("secret") if isinstance(auth, dict) else None
        if not isinstance(secret, str) or not hmac.compare_digest(
            secret.encode(), self._secret.encode()
        ):
            raise connection_refused(ErrorCode.UNAUTHORIZED, "Media nodes only")
        node = auth.get("node") if isinstance(auth, dict) else None
        if not isinstance(node, str) or not NODE_ID.fullmatch(node):
            raise connection_refused(ErrorCode.INVALID, "node: letters, digits and ._:- up to 64")
        await self.save_session(sid, {"node": node})
        await self.enter_room(sid, node_room(node))
        await media.media_node_joined(self.services, node)
        log.info("media node connected", extra={"node": node})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        node = await self._node(sid)
        if node:
            log.warning("media node disconnected", extra={"node": node, "reason": str(reason)})
            await media.media_node_left(self.services, node)

    async def on_load(self, sid: str, data: Any = None) -> None:
        node = await self._node(sid)
        try:
            load = LoadReport.model_validate(data)
        except ValidationError as exc:
            log.warning(
                "bad load report", extra={"node": node, "reason": invalid("load", exc).message}
            )
            return
        if node:
            await media.media_node_reported(self.services, node, load)

    async def on_segment_closed(self, sid: str, data: Any = None) -> dict[str, Any]:
        node = await self._node(sid)
        try:
            segment = ClosedSegment.model_validate(data)
        except ValidationError as exc:
            return to_wire(invalid("segment report", exc))
        try:
            stored = await record_segment(self.services, segment, media_node=node)
        except AppError as exc:
            log.error("recording segment refused", extra={"node": node, "reason": exc.message})
            return to_wire(exc)
        except Exception:  # the media node keeps it and sends it again
            log.exception("storing a recording segment failed", extra={"node": node})
            return to_wire(AppError(ErrorCode.INTERNAL, "The segment could not be stored now"))
        return to_wire(SegmentStored(stored=stored))

    async def on_recording_failed(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def enter(failure: RecordingFailure, node: str | None) -> None:
            await record_failure(self.services, failure, media_node=node)

        return await self._entered(sid, data, RecordingFailure, enter, "recording failure")

    async def on_recording_state(self, sid: str, data: Any = None) -> dict[str, Any]:
        async def keep(state: RecordingState, node: str | None) -> None:
            await do_recording_state(self.services, state, media_node=node)

        return await self._entered(sid, data, RecordingState, keep, "recording state")

    async def _entered(
        self,
        sid: str,
        data: Any,
        model: type[ReportT],
        action: Callable[[ReportT, str | None], Awaitable[None]],
        what: str,
    ) -> dict[str, Any]:
        """A report acknowledged once its action has stored it; one it could not store now is
        refused as ``INTERNAL``, and the media node keeps it and sends it again."""
        node = await self._node(sid)
        try:
            report = model.model_validate(data)
        except ValidationError as exc:
            return to_wire(invalid(what, exc))
        try:
            await action(report, node)
        except Exception:
            log.exception(f"entering a {what} failed", extra={"node": node})
            return to_wire(AppError(ErrorCode.INTERNAL, f"The {what} could not be entered now"))
        return to_wire(Done())

    async def _node(self, sid: str) -> str | None:
        node = (await self.get_session(sid)).get("node")
        return node if isinstance(node, str) else None
