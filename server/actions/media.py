"""Where each call's media lives (docs/architecture.md, "Scale-out"): the placement rules, and what
happens when media nodes come and go. The way to a media node is the ``MediaTransport`` port
(signaling/media_bus.py); every refusal on the way is an ``AppError`` with a media code.

``calls.media_node`` names the call's media node. A citizen's offer goes there while it
answers; a new call, or one whose media node is gone or full, is placed on the admitting media
node with the fewest calls, this node's own first. Every other request (an operator's or a
monitor's offer, a trickled candidate, a snapshot, the end) goes to the call's media node.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import col, func, select, update

from server.actions.access import call_log_name
from server.actions.queue import LIVE_STATES, summary_of
from server.core.errors import AppError, ErrorCode
from server.core.events import MediaLostEvent, QueueCallUpdated
from server.core.media_rpc import (
    Barge,
    CallEnded,
    Candidate,
    CitizenOffer,
    EndCall,
    LoadReport,
    MediaRequest,
    R,
    RemoveSubscriber,
    Snapshot,
    Stats,
    SubscriberOffer,
    Thumbnail,
)
from server.core.ports import MediaNode, MediaNodes, MediaTransport, Telemetry
from server.core.services import Services
from server.db.engine import Database
from server.db.models import Call, CallState, Channel, Recording
from server.security.pseudonyms import Pseudonyms

log = logging.getLogger(__name__)

BUSY_MESSAGE = "Video is not available right now; stay in the chat: an operator will answer"

# A call's media node that answers these to the caller's offer no longer has the call's media
# (gone, full, its session closed): the media starts again elsewhere, as a new segment.
MOVE_ON = frozenset({ErrorCode.MEDIA_BUSY, ErrorCode.NO_MEDIA, ErrorCode.MEDIA_UNREACHABLE})
# A media node that answers a new call's offer with these is passed over for the next one.
PASS_OVER = frozenset({ErrorCode.MEDIA_BUSY, ErrorCode.MEDIA_UNREACHABLE})
# What ending or leaving a call's media may meet where that media is gone already.
GONE = frozenset({ErrorCode.NO_MEDIA, ErrorCode.MEDIA_UNREACHABLE})


def placement_order(nodes: list[MediaNode], home: str) -> list[MediaNode]:
    """Admitting nodes first, this node's own before others' (no hop over the bus), then the
    least loaded."""
    return sorted(nodes, key=lambda n: (not n.admit, n.home != home, n.sessions, n.id))


class MediaRouter:
    """The ``Media`` port the actions use: each request placed by these rules, sent through
    ``transport``. ``home``: this node's NODE_ID; ``pseudonyms``: how an internal-security
    call is named in the logs, here and at its media node; ``telemetry``: where a call's
    media that no node took is counted."""

    def __init__(
        self,
        *,
        db: Database,
        nodes: MediaNodes,
        transport: MediaTransport,
        home: str,
        pseudonyms: Pseudonyms,
        telemetry: Telemetry,
    ) -> None:
        self._db = db
        self._nodes = nodes
        self._transport = transport
        self._home = home
        self._pseudonyms = pseudonyms
        self._telemetry = telemetry

    async def citizen_offer(self, call_id: str, sdp: str) -> str:
        """Answer the citizen's offer where the call's media is, or place it. An ended call
        takes no more media (its recording is closed and sealed): ``CALL_ENDED``; an offer that
        crossed the end is answered, and its new session closed again at once.
        """
        if not await self._is_live(call_id):
            raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
        answer = await self._place_offer(call_id, sdp)
        if not await self._is_live(call_id):
            await self.end_call(call_id)
            raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
        return answer

    async def _is_live(self, call_id: str) -> bool:
        async with self._db.session() as session:
            state = (await session.exec(select(Call.state).where(col(Call.id) == call_id))).first()
        return state in LIVE_STATES

    async def _place_offer(self, call_id: str, sdp: str) -> str:
        log_as = await self._log_name(call_id)
        request = CitizenOffer(
            call_id=call_id,
            sdp=sdp,
            first_segment=await self._stored_segments(call_id) + 1,
            log_as=log_as,
        )
        home = await self.media_node_of(call_id)
        tried: set[str] = set()
        if home is not None:
            tried.add(home)
            try:
                return (await self._transport.request(home, request)).sdp
            except AppError as exc:
                if exc.code not in MOVE_ON:
                    raise
                log.warning(
                    "call media moves",
                    extra={"call_id": log_as, "from": home, "reason": exc.code.value},
                )
        for node in await self._candidates():
            if node in tried:
                continue
            tried.add(node)
            try:
                reply = await self._transport.request(node, request)
            except AppError as exc:
                if exc.code not in PASS_OVER:
                    raise
                continue
            await self._set_media_node(call_id, node)
            return reply.sdp
        self._telemetry.media_unplaced()
        raise AppError(ErrorCode.MEDIA_BUSY, BUSY_MESSAGE)

    async def subscriber_offer(
        self, call_id: str, subscriber_id: str, sdp: str, *, talk: bool
    ) -> str:
        request = SubscriberOffer(call_id=call_id, subscriber_id=subscriber_id, sdp=sdp, talk=talk)
        reply = await self._to_call(request, ErrorCode.NO_MEDIA, "No media from the caller yet")
        return reply.sdp

    async def add_candidate(
        self,
        call_id: str,
        peer: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None:
        request = Candidate(
            call_id=call_id,
            peer=peer,
            candidate=candidate,
            sdp_mid=sdp_mid,
            sdp_mline_index=sdp_mline_index,
        )
        await self._to_call(request, ErrorCode.NO_MEDIA, "Send the offer first")

    async def snapshot(self, call_id: str) -> bytes:
        request = Snapshot(call_id=call_id)
        reply = await self._to_call(request, ErrorCode.NO_VIDEO, "No picture from the caller yet")
        return reply.jpeg

    async def thumbnail(self, call_id: str) -> bytes:
        request = Thumbnail(call_id=call_id)
        reply = await self._to_call(request, ErrorCode.NO_VIDEO, "No picture from the caller yet")
        return reply.jpeg

    async def stats(self, call_id: str) -> dict[str, Any]:
        request = Stats(call_id=call_id)
        return (await self._to_call(request, ErrorCode.NO_MEDIA, "No media in this call")).stats

    async def barge(self, call_id: str, subscriber_id: str, *, on: bool) -> None:
        """A monitor's voice to the caller and the operator, or to nobody."""
        request = Barge(call_id=call_id, subscriber_id=subscriber_id, on=on)
        await self._to_call(request, ErrorCode.NO_MEDIA, "No media in this call")

    async def remove_subscriber(self, call_id: str, subscriber_id: str) -> None:
        """A console leaves the call (a transfer): its peer closes, its voice stops going to the
        caller. Nothing to do where the call has no media."""
        request = RemoveSubscriber(call_id=call_id, subscriber_id=subscriber_id)
        try:
            await self._to_call(request, ErrorCode.NO_MEDIA, "No media in this call")
        except AppError as exc:
            if exc.code not in GONE:
                raise

    async def end_call(self, call_id: str) -> CallEnded | None:
        """Close the call's media and its recording; a media node already gone closed them.
        The call ends whatever the media node says: a failure is logged, not raised. The reply
        comes once the segments it closed are stored (or says how many are not yet): the
        call's seal (server/actions/call_seal.py) covers them."""
        try:
            return await self._to_call(EndCall(call_id=call_id), ErrorCode.NO_MEDIA, "No media")
        except AppError as exc:
            if exc.code not in GONE:
                log.error(
                    "ending the call's media failed",
                    extra={
                        "call_id": await self._log_name(call_id),
                        "code": exc.code.value,
                        "reason": exc.message,
                    },
                )
            return None

    async def media_node_of(self, call_id: str) -> str | None:
        async with self._db.session() as session:
            node = (
                await session.exec(select(Call.media_node).where(col(Call.id) == call_id))
            ).first()
        return node

    async def _log_name(self, call_id: str) -> str:
        """How the logs name the call (an internal-security call by a keyed hash)."""
        async with self._db.session() as session:
            channel = (
                await session.exec(select(Call.channel).where(col(Call.id) == call_id))
            ).first()
        # A call not found is named as a hidden one would be: nothing to learn from the logs.
        return call_log_name(self._pseudonyms, channel or Channel.INTERNAL_SECURITY, call_id)

    async def _stored_segments(self, call_id: str) -> int:
        """The call's last stored segment number: a new session's recording numbers on from
        there, so a moved call's evidence is never overwritten."""
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
        local = self._transport.local_node
        order = [local] if local is not None else []
        order += [node.id for node in placement_order(await self._nodes.alive(), self._home)]
        return list(dict.fromkeys(order))

    async def _to_call(self, request: MediaRequest[R], missing: ErrorCode, message: str) -> R:
        """To the call's media node. A call without one, or whose media node is gone, has no
        media now: ``missing`` (the caller's next offer places it anew; a console asks again)."""
        node = await self.media_node_of(request.call_id)
        if node is None:
            raise AppError(missing, message)
        try:
            return await self._transport.request(node, request)
        except AppError as exc:
            if exc.code is ErrorCode.MEDIA_UNREACHABLE:
                raise AppError(missing, message) from exc
            raise


# -- media nodes coming, reporting and going --------------------------------------------------


async def media_node_joined(services: Services, node_id: str) -> None:
    """A media node connected to this node: listed at once, empty and admitting, so calls can
    be placed on it before its first load report."""
    await services.media_nodes.report(
        MediaNode(node_id, services.settings.NODE_ID, 0, True, services.clock.now().timestamp())
    )


async def media_node_reported(services: Services, node_id: str, load: LoadReport) -> None:
    """Its load, stamped with this node's clock: an entry not renewed in time is a dead node.
    Its counts go to this node's metrics (it reports to this node only)."""
    services.telemetry.media_node_reported(node_id, load)
    await services.media_nodes.report(
        MediaNode(
            node_id,
            services.settings.NODE_ID,
            load.sessions,
            load.admit,
            services.clock.now().timestamp(),
        )
    )


async def media_node_left(services: Services, node_id: str) -> None:
    """Unlisted; its live calls' pages offer again now (``media.lost``): the caller's offer
    places the media on a live media node, the consoles follow."""
    services.telemetry.media_node_left(node_id)
    await services.media_nodes.remove(node_id)
    async with services.db.session() as session:
        calls = (
            await session.exec(
                select(Call.id).where(
                    col(Call.media_node) == node_id,
                    col(Call.state).in_([CallState.QUEUED, CallState.ANSWERED]),
                )
            )
        ).all()
    notifier = services.notifier
    for call_id in calls:
        lost = MediaLostEvent(call_id=call_id)
        await notifier.to_call(call_id, lost)
        # The wall shows it reconnecting now (its media node is unlisted): the media watch
        # tells it once the media is placed anew (server/actions/media_watch.py).
        async with services.db.session() as session:
            call = await session.get(Call, call_id)
        if call is not None and call.state in LIVE_STATES:
            summary = await summary_of(services, call)
            await notifier.to_queue(call.channel, QueueCallUpdated(call=summary))
    if calls:
        log.warning("calls lost their media node", extra={"node": node_id, "calls": len(calls)})
