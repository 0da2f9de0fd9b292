"""The wire between a node and a media node in another process or on another node.

A media node (a worker process, or a node's own hub in scale-out) is a Socket.IO client of its
node's ``/media`` namespace, in room ``node:<id>``. Requests are ``sio.call``s to that room: the
Redis manager carries them, and their acknowledgements, to whichever node holds the client.
Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "code", "message"}``: a refusal must
reach the caller as itself (busy, bad offer, no session), never as a timeout.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from media.hub import MediaBusy, MediaHub
from media.recorder import ClosedSegment

NAMESPACE = "/media"

# Requests, node -> media node.
CITIZEN_OFFER = "citizen_offer"
SUBSCRIBER_OFFER = "subscriber_offer"
CANDIDATE = "candidate"
SNAPSHOT = "snapshot"
END_CALL = "end_call"
STATS = "stats"
REMOVE_SUBSCRIBER = "remove_subscriber"
REQUESTS = (
    CITIZEN_OFFER,
    SUBSCRIBER_OFFER,
    CANDIDATE,
    SNAPSHOT,
    END_CALL,
    STATS,
    REMOVE_SUBSCRIBER,
)

# Reports, media node -> its node.
SEGMENT_CLOSED = "segment_closed"
LOAD = "load"

# Refusal codes.
BUSY = "media_busy"
INVALID = "invalid"
NO_SESSION = "no_session"
FAILED = "failed"


def node_room(media_node: str) -> str:
    return f"node:{media_node}"


class MediaUnreachable(LookupError):
    """The call's media node does not answer (gone, or never there): the page's reconnect
    places the media anew."""


class MediaFailed(RuntimeError):
    """The media node answered with an error of its own."""


def refusal(exc: BaseException) -> dict[str, Any]:
    """An exception at the media node, as the reply that names it."""
    if isinstance(exc, MediaBusy):
        code = BUSY
    elif isinstance(exc, LookupError):
        code = NO_SESSION
    elif isinstance(exc, ValueError):
        code = INVALID
    else:
        code = FAILED
    return {"ok": False, "code": code, "message": str(exc) or type(exc).__name__}


def unwrap(reply: Any) -> dict[str, Any]:
    """A reply, or the exception the media node raised (the inverse of ``refusal``)."""
    if not isinstance(reply, dict):
        raise MediaFailed(f"malformed reply from the media node: {type(reply).__name__}")
    if reply.get("ok") is True:
        return reply
    code, message = reply.get("code"), str(reply.get("message", ""))
    if code == BUSY:
        raise MediaBusy(message)
    if code == NO_SESSION:
        raise LookupError(message)
    if code == INVALID:
        raise ValueError(message)
    raise MediaFailed(message)


def segment_to_wire(segment: ClosedSegment) -> dict[str, Any]:
    return {
        "call_id": segment.call_id,
        "segment": segment.segment,
        "path": str(segment.path),
        "started_at": segment.started_at.isoformat(),
        "ended_at": segment.ended_at.isoformat(),
        "size_bytes": segment.size_bytes,
        "sha256": segment.sha256,
        "video_frames": segment.video_frames,
        "audio_frames": segment.audio_frames,
        "operator_audio_frames": segment.operator_audio_frames,
    }


def segment_from_wire(data: dict[str, Any]) -> ClosedSegment:
    """Raises ValueError, KeyError or TypeError on a malformed report."""
    return ClosedSegment(
        call_id=str(data["call_id"]),
        segment=int(data["segment"]),
        path=Path(str(data["path"])),
        started_at=datetime.fromisoformat(str(data["started_at"])),
        ended_at=datetime.fromisoformat(str(data["ended_at"])),
        size_bytes=int(data["size_bytes"]),
        sha256=str(data["sha256"]),
        video_frames=int(data["video_frames"]),
        audio_frames=int(data["audio_frames"]),
        operator_audio_frames=int(data.get("operator_audio_frames", 0)),
    )


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def hub_handlers(hub: MediaHub) -> dict[str, Handler]:
    """What a media node does with each request: the MediaHub call, its result as a reply."""

    async def citizen_offer(data: dict[str, Any]) -> dict[str, Any]:
        sdp = await hub.citizen_offer(
            str(data["call_id"]), str(data["sdp"]), first_segment=int(data.get("first_segment", 1))
        )
        return {"sdp": sdp}

    async def subscriber_offer(data: dict[str, Any]) -> dict[str, Any]:
        sdp = await hub.subscriber_offer(
            str(data["call_id"]),
            str(data["subscriber_id"]),
            str(data["sdp"]),
            talk=bool(data["talk"]),
        )
        return {"sdp": sdp}

    async def candidate(data: dict[str, Any]) -> dict[str, Any]:
        mline = data.get("sdp_mline_index")
        await hub.add_candidate(
            str(data["call_id"]),
            str(data["peer"]),
            str(data["candidate"]),
            None if data.get("sdp_mid") is None else str(data["sdp_mid"]),
            None if mline is None else int(mline),
        )
        return {}

    async def snapshot(data: dict[str, Any]) -> dict[str, Any]:
        # Text, not a binary attachment: a reply's attachments could interleave with another's.
        jpeg = await hub.snapshot(str(data["call_id"]))
        return {"jpeg": base64.b64encode(jpeg).decode("ascii")}

    async def end_call(data: dict[str, Any]) -> dict[str, Any]:
        segments = await hub.end_call(str(data["call_id"]))
        return {"segments": len(segments)}

    async def stats(data: dict[str, Any]) -> dict[str, Any]:
        return {"stats": hub.stats(str(data["call_id"]))}

    async def remove_subscriber(data: dict[str, Any]) -> dict[str, Any]:
        await hub.remove_subscriber(str(data["call_id"]), str(data["subscriber_id"]))
        return {}

    return {
        CITIZEN_OFFER: citizen_offer,
        SUBSCRIBER_OFFER: subscriber_offer,
        CANDIDATE: candidate,
        SNAPSHOT: snapshot,
        END_CALL: end_call,
        STATS: stats,
        REMOVE_SUBSCRIBER: remove_subscriber,
    }


async def serve(handler: Handler, data: Any) -> dict[str, Any]:
    """Run one request; every outcome, a crash included, becomes a reply."""
    if not isinstance(data, dict):
        return {"ok": False, "code": INVALID, "message": "the request is not an object"}
    try:
        return {"ok": True, **await handler(data)}
    except (KeyError, TypeError) as exc:
        return {"ok": False, "code": INVALID, "message": f"malformed request: {exc}"}
    except Exception as exc:  # noqa: BLE001 - the caller gets the reason, not a timeout
        return refusal(exc)
