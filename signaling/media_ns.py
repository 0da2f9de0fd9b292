"""``/media``: where media nodes in other processes connect to their node (media/agent.py).

Only a holder of the node's media secret gets in; it joins room ``node:<id>``, where any node's
MediaRouter reaches it over the bus. It reports its load (the placement of new calls) and its
closed recording segments (stored here, with their audit entries).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from typing import Any

import socketio
from sqlmodel import col, select

from media import rpc
from server.actions.recordings import SegmentConflict, record_segment
from server.core.events import MediaLostEvent
from server.core.ports import MediaNode
from server.core.services import Services
from server.db.models import Call, CallState

log = logging.getLogger("lifeline.signaling")

NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class MediaNamespace(socketio.AsyncNamespace):
    def __init__(self, services: Services, secret: str) -> None:
        super().__init__(rpc.NAMESPACE)
        self.services = services
        self._secret = secret

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        secret = auth.get("secret") if isinstance(auth, dict) else None
        if not isinstance(secret, str) or not hmac.compare_digest(
            secret.encode(), self._secret.encode()
        ):
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "unauthorized", "message": "Media nodes only"}
            )
        node = auth.get("node") if isinstance(auth, dict) else None
        if not isinstance(node, str) or not NODE_ID.fullmatch(node):
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "invalid", "message": "node: letters, digits and ._:- up to 64"}
            )
        home = self.services.settings.NODE_ID
        await self.save_session(sid, {"node": node})
        await self.enter_room(sid, rpc.node_room(node))
        await self.services.media_nodes.report(MediaNode(node, home, 0, True, time.time()))
        log.info("media node connected", extra={"node": node})

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        node = (await self.get_session(sid)).get("node")
        if node:
            await self.services.media_nodes.remove(node)
            log.warning("media node disconnected", extra={"node": node, "reason": str(reason)})
            await self._media_lost(node)

    async def _media_lost(self, node: str) -> None:
        """Its live calls' pages offer again now: the caller's offer places the media on a
        live media node, the consoles follow."""
        async with self.services.db.session() as session:
            calls = (
                await session.exec(
                    select(Call.id).where(
                        col(Call.media_node) == node,
                        col(Call.state).in_([CallState.QUEUED, CallState.ANSWERED]),
                    )
                )
            ).all()
        notifier = self.services.notifier
        for call_id in calls:
            lost = MediaLostEvent(call_id=call_id)
            await notifier.to_citizen(call_id, lost)
            await notifier.to_call_watchers(call_id, lost)
        if calls:
            log.warning("calls lost their media node", extra={"node": node, "calls": len(calls)})

    async def on_load(self, sid: str, data: Any = None) -> None:
        node = (await self.get_session(sid)).get("node")
        if not node or not isinstance(data, dict):
            return
        sessions, admit = data.get("sessions"), data.get("admit")
        if isinstance(sessions, int) and isinstance(admit, bool):
            home = self.services.settings.NODE_ID
            await self.services.media_nodes.report(
                MediaNode(node, home, sessions, admit, time.time())
            )

    async def on_segment_closed(self, sid: str, data: Any = None) -> dict[str, Any]:
        node = (await self.get_session(sid)).get("node")
        try:
            segment = rpc.segment_from_wire(data)
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "code": rpc.INVALID, "message": f"malformed segment: {exc}"}
        try:
            await record_segment(self.services, segment, media_node=node)
        except SegmentConflict as exc:
            log.error("recording segment conflict", extra={"node": node, "reason": str(exc)})
            return {"ok": False, "code": "conflict", "message": str(exc)}
        except Exception as exc:  # the media node keeps it and sends it again
            log.exception("storing a recording segment failed", extra={"node": node})
            return {"ok": False, "code": rpc.FAILED, "message": str(exc)}
        return {"ok": True}
