"""Where each call's media lives and the way there: this node's own hub, a media worker of this
node, or a media node of another node over the bus (DESIGN.md, "State and scale").

``calls.media_node`` names the call's media node. A citizen's offer goes there while it
answers; a new call, or one whose media node is gone or full, is placed on the admitting media
node with the fewest calls, this node's own first. Every other request (an operator's or a
monitor's offer, a trickled candidate, a snapshot, the end) goes to the call's media node.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from typing import Any

import socketio
from sqlmodel import col, func, select, update

from media import rpc
from media.hub import MediaBusy, MediaHub
from media.rpc import MediaUnreachable
from server.core.errors import AppError, ErrorCode
from server.core.ports import MediaNodes
from server.db.engine import Database
from server.db.models import Call, Recording
from server.state.media_nodes import placement_order

log = logging.getLogger(__name__)

OFFER_TIMEOUT_SECS = 10.0
REQUEST_TIMEOUT_SECS = 5.0


class MediaRouter:
    """``local``: this node's in-process hub, known as ``home`` (MEDIA_WORKERS=0); requests to
    it skip the bus but go through the same handlers as a remote one's."""

    def __init__(
        self,
        *,
        sio: socketio.AsyncServer,
        db: Database,
        nodes: MediaNodes,
        home: str,
        local: MediaHub | None,
    ) -> None:
        self._sio = sio
        self._db = db
        self._nodes = nodes
        self._home = home
        self._local = local
        self._local_handlers = rpc.hub_handlers(local) if local is not None else {}

    async def citizen_offer(self, call_id: str, sdp: str) -> str:
        """Answer the citizen's offer where the call's media is, or place it."""
        try:
            return await self._citizen_offer(call_id, sdp)
        except MediaBusy:
            raise AppError(
                ErrorCode.MEDIA_BUSY,
                "Video is not available right now; stay in the chat: an operator will answer",
            ) from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {exc}") from None

    async def _citizen_offer(self, call_id: str, sdp: str) -> str:
        data = {
            "call_id": call_id,
            "sdp": sdp,
            "first_segment": await self._stored_segments(call_id) + 1,
        }
        home = await self.media_node_of(call_id)
        tried: set[str] = set()
        if home is not None:
            tried.add(home)
            try:
                return str((await self._request(home, rpc.CITIZEN_OFFER, data))["sdp"])
            except (MediaBusy, LookupError) as exc:
                # Gone (a worker that died) or full: the call's media starts again elsewhere,
                # its recording as a new segment.
                log.warning(
                    "call media moves", extra={"call_id": call_id, "from": home, "reason": str(exc)}
                )
        for node in await self._candidates():
            if node in tried:
                continue
            tried.add(node)
            try:
                reply = await self._request(node, rpc.CITIZEN_OFFER, data)
            except (MediaBusy, MediaUnreachable):
                continue
            await self._set_media_node(call_id, node)
            return str(reply["sdp"])
        raise MediaBusy(f"no media node takes call {call_id} now")

    async def subscriber_offer(
        self, call_id: str, subscriber_id: str, sdp: str, *, talk: bool
    ) -> str:
        try:
            reply = await self._to_call(
                call_id,
                rpc.SUBSCRIBER_OFFER,
                {"call_id": call_id, "subscriber_id": subscriber_id, "sdp": sdp, "talk": talk},
            )
        except LookupError:
            raise AppError(ErrorCode.NO_MEDIA, "No media from the caller yet") from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {exc}") from None
        return str(reply["sdp"])

    async def add_candidate(
        self,
        call_id: str,
        peer: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        try:
            await self._to_call(
                call_id,
                rpc.CANDIDATE,
                {
                    "call_id": call_id,
                    "peer": peer,
                    "candidate": candidate,
                    "sdp_mid": sdp_mid,
                    "sdp_mline_index": sdp_mline_index,
                },
            )
        except LookupError:
            raise AppError(ErrorCode.NO_MEDIA, "Send the offer first") from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_CANDIDATE, f"Unusable candidate: {exc}") from None

    async def snapshot(self, call_id: str) -> bytes:
        try:
            reply = await self._to_call(call_id, rpc.SNAPSHOT, {"call_id": call_id})
        except LookupError:
            raise AppError(ErrorCode.NO_VIDEO, "No picture from the caller yet") from None
        return base64.b64decode(str(reply["jpeg"]))

    async def stats(self, call_id: str) -> dict[str, Any]:
        reply = await self._to_call(call_id, rpc.STATS, {"call_id": call_id})
        return dict(reply["stats"])

    async def remove_subscriber(self, call_id: str, subscriber_id: str) -> None:
        """A console leaves the call (a transfer): its peer closes, its voice stops going to the
        caller. Nothing to do where the call has no media."""
        with contextlib.suppress(LookupError):
            await self._to_call(
                call_id, rpc.REMOVE_SUBSCRIBER, {"call_id": call_id, "subscriber_id": subscriber_id}
            )

    async def end_call(self, call_id: str) -> None:
        """Close the call's media and its recording; a media node already gone closed them."""
        try:
            await self._to_call(call_id, rpc.END_CALL, {"call_id": call_id})
        except LookupError:
            pass
        except (MediaBusy, rpc.MediaFailed):
            log.exception("ending the call's media failed", extra={"call_id": call_id})

    async def media_node_of(self, call_id: str) -> str | None:
        async with self._db.session() as session:
            node = (
                await session.exec(select(Call.media_node).where(col(Call.id) == call_id))
            ).first()
        return node

    async def _stored_segments(self, call_id: str) -> int:
        async with self._db.session() as session:
            last = (
                await session.exec(
                    select(func.max(Recording.segment)).where(col(Recording.call_id) == call_id)
                )
            ).first()
        return int(last or 0)

    async def _set_media_node(self, call_id: str, node: str) -> None:
        async with self._db.session() as session:
            await session.exec(update(Call).where(col(Call.id) == call_id).values(media_node=node))
            await session.commit()

    async def _candidates(self) -> list[str]:
        order = [self._home] if self._local is not None else []
        order += [node.id for node in placement_order(await self._nodes.alive(), self._home)]
        return list(dict.fromkeys(order))

    async def _to_call(self, call_id: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        node = await self.media_node_of(call_id)
        if node is None:
            raise LookupError(f"no media for call {call_id} yet")
        return await self._request(node, event, data)

    async def _request(self, node: str, event: str, data: dict[str, Any]) -> dict[str, Any]:
        if self._local is not None and node == self._home:
            return rpc.unwrap(await rpc.serve(self._local_handlers[event], data))
        if node not in {n.id for n in await self._nodes.alive()}:
            raise MediaUnreachable(f"media node {node} is not alive")
        timeout = OFFER_TIMEOUT_SECS if event == rpc.CITIZEN_OFFER else REQUEST_TIMEOUT_SECS
        try:
            reply = await self._sio.call(
                event, data, to=rpc.node_room(node), namespace=rpc.NAMESPACE, timeout=timeout
            )
        except socketio.exceptions.TimeoutError:
            raise MediaUnreachable(f"media node {node} did not answer {event}") from None
        return rpc.unwrap(reply)
