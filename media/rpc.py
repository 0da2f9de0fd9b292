"""The media node's end of the wire (server/core/media_rpc.py): each request model as a
MediaHub call, its result as the reply model.

The same handler answers a node's own hub in process and a media node over Socket.IO
(media/agent.py), so both fail alike. What the hub refuses on purpose is an ``AppError`` and
crosses as its code; any other exception is a bug of the media node: logged here with its
traceback and answered as ``MEDIA_FAILED`` (a 5xx the caller may retry), never as a bad offer.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from media.hub import MediaHub
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import (
    Answer,
    Barge,
    CallEnded,
    Candidate,
    CitizenOffer,
    Done,
    EndCall,
    MediaReply,
    MediaRequest,
    R,
    RemoveSubscriber,
    Snapshot,
    SnapshotReply,
    Stats,
    StatsReply,
    SubscriberOffer,
    Thumbnail,
)

log = logging.getLogger(__name__)

FAILED_MESSAGE = "Video failed on our side; it is being tried again"


class HubHandler:
    """A ``MediaHandler`` over one hub."""

    def __init__(self, hub: MediaHub) -> None:
        self.hub = hub

    async def __call__(self, request: MediaRequest[R]) -> R:
        try:
            reply = await self._run(request)
        except AppError:
            raise
        except Exception as exc:
            name = self.hub.log_name(request.call_id)
            if isinstance(request, CitizenOffer) and request.log_as:
                name = request.log_as
            log.exception(
                "media request failed at the media node",
                extra={"event": request.event, "call_id": name},
            )
            raise AppError(ErrorCode.MEDIA_FAILED, FAILED_MESSAGE) from exc
        return cast(R, reply)

    async def _run(self, request: MediaRequest[Any]) -> MediaReply:
        hub = self.hub
        match request:
            case CitizenOffer():
                sdp = await hub.citizen_offer(
                    request.call_id,
                    request.sdp,
                    first_segment=request.first_segment,
                    log_name=request.log_as,
                )
                return Answer(sdp=sdp)
            case SubscriberOffer():
                sdp = await hub.subscriber_offer(
                    request.call_id, request.subscriber_id, request.sdp, talk=request.talk
                )
                return Answer(sdp=sdp)
            case Candidate():
                await hub.add_candidate(
                    request.call_id,
                    request.peer,
                    request.candidate,
                    request.sdp_mid,
                    request.sdp_mline_index,
                )
                return Done()
            case Snapshot():
                return SnapshotReply.of(await hub.snapshot(request.call_id))
            case Barge():
                hub.set_barging(request.call_id, request.subscriber_id, request.on)
                return Done()
            case Thumbnail():
                return SnapshotReply.of(await hub.thumbnail(request.call_id))
            case EndCall():
                return CallEnded(segments=len(await hub.end_call(request.call_id)))
            case Stats():
                return StatsReply(stats=hub.stats(request.call_id))
            case RemoveSubscriber():
                await hub.remove_subscriber(request.call_id, request.subscriber_id)
                return Done()
        raise AppError(ErrorCode.INVALID, f"no such request {request.event!r}")
