"""The wire between a node and its media nodes: one model per request, per reply, per report.

A media node (a worker process, or a node's own hub in scale-out) is a Socket.IO client of its
node's ``/media`` namespace, in room ``node:<id>``; requests are calls to that room, and the
Redis manager carries them and their acknowledgements to whichever node holds the client. This
node's own hub gets the same request models in process. Both sides speak only these models, so
a change to the wire is a change here, checked by the type checker on both sides.

Every reply is a ``MediaReply`` (``{"ok": true, ...}``) or a ``Refusal`` (``{"ok": false,
"code", "message"}``) whose code is an ``ErrorCode``: the caller gets the very ``AppError`` the
media node raised (busy, no session, bad offer), never a timeout and never a guess from an
exception's class. A bug at the media node is logged there and crosses as ``MEDIA_FAILED``.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from server.core.errors import AppError, ErrorCode

log = logging.getLogger(__name__)

NAMESPACE = "/media"

# Reports, media node -> its node (Socket.IO event names).
LOAD = "load"
SEGMENT_CLOSED = "segment_closed"
RECORDING_FAILED = "recording_failed"
RECORDING_STATE = "recording_state"

CallId = Annotated[str, Field(min_length=1, max_length=64)]
PeerName = Annotated[str, Field(min_length=1, max_length=128)]
# How a media node's logs name a call: its id, or for an internal-security call a keyed hash
# (server/actions/access.py: call_log_name); empty: its id.
LogName = Annotated[str, Field(default="", pattern=r"^[A-Za-z0-9._:-]{0,64}$")]


def node_room(node_id: str) -> str:
    """The room a media node joins: how any node's requests reach it over the bus."""
    return f"node:{node_id}"


class Wire(BaseModel):
    """Exactly the declared fields, immutable once sent or received."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- replies ---------------------------------------------------------------------------------


class MediaReply(Wire):
    """A media node did what it was asked."""

    ok: Literal[True] = True


class Answer(MediaReply):
    """The SDP answer to an offer."""

    sdp: str


class Done(MediaReply):
    """Nothing to say but "done" (a candidate added, a subscriber removed)."""


class SnapshotReply(MediaReply):
    """A JPEG as base64 text: a binary attachment of one reply could interleave with
    another's on the bus."""

    jpeg_base64: str

    @classmethod
    def of(cls, jpeg: bytes) -> SnapshotReply:
        return cls(jpeg_base64=base64.b64encode(jpeg).decode("ascii"))

    @property
    def jpeg(self) -> bytes:
        return base64.b64decode(self.jpeg_base64, validate=True)


class CallEnded(MediaReply):
    """How many segments the call's recording closed with. The media node answers once each
    of them is stored (in process: stored before its close returns; a worker: its reports
    acknowledged), or after a bounded wait: ``unreported`` says how many were not stored yet
    (they follow, each entered in the chain on its own)."""

    segments: int = Field(ge=0)
    unreported: int = Field(default=0, ge=0)


class StatsReply(MediaReply):
    """Frames received, forwarded, dropped and recorded per track (MediaSession.stats)."""

    stats: dict[str, Any]


class SegmentStored(MediaReply):
    """The node's answer to a segment report; ``stored`` is False for one stored before."""

    stored: bool


class Refusal(Wire):
    """What a media node (or the node, to a report) refuses, as the code it refused with."""

    ok: Literal[False] = False
    code: ErrorCode
    message: str

    @classmethod
    def of(cls, error: AppError) -> Refusal:
        return cls(code=error.code, message=error.message)

    def error(self) -> AppError:
        return AppError(self.code, self.message)


# -- requests, node -> media node -------------------------------------------------------------

R = TypeVar("R", bound=MediaReply)


class MediaRequest(Wire, Generic[R]):
    """One request; ``R`` is its reply, so ``transport.request(node, CitizenOffer(...))`` is an
    ``Answer`` to the type checker. ``event`` is its Socket.IO event name; ``reply`` is ``R``
    at run time (taken from the class's parameter)."""

    event: ClassVar[str]
    reply: ClassVar[type[MediaReply]]

    call_id: CallId

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for base in cls.__mro__:
            args = getattr(base, "__pydantic_generic_metadata__", {}).get("args", ())
            if args and isinstance(args[0], type) and issubclass(args[0], MediaReply):
                cls.reply = args[0]
                return


class CitizenOffer(MediaRequest[Answer]):
    """The caller's offer; ``first_segment``: where a new session's recording starts numbering
    (the call's media moved here after segments were stored elsewhere); ``log_as``: how the
    session's logs name the call."""

    event: ClassVar[str] = "citizen_offer"
    sdp: str
    first_segment: int = Field(default=1, ge=1)
    log_as: LogName = ""


class SubscriberOffer(MediaRequest[Answer]):
    """An operator's (``talk``: their voice goes to the caller) or a monitor's offer."""

    event: ClassVar[str] = "subscriber_offer"
    subscriber_id: PeerName
    sdp: str
    talk: StrictBool


class Candidate(MediaRequest[Done]):
    """A trickled ICE candidate of ``peer`` ("citizen" or a subscriber id); empty: the end."""

    event: ClassVar[str] = "candidate"
    peer: PeerName
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = Field(default=None, ge=0)


class Snapshot(MediaRequest[SnapshotReply]):
    event: ClassVar[str] = "snapshot"


class Thumbnail(MediaRequest[SnapshotReply]):
    """The wall's small JPEG of the caller's picture (one fresh keyframe, resized)."""

    event: ClassVar[str] = "thumbnail"


class EndCall(MediaRequest[CallEnded]):
    event: ClassVar[str] = "end_call"


class Stats(MediaRequest[StatsReply]):
    event: ClassVar[str] = "stats"


class Barge(MediaRequest[Done]):
    """A monitor's voice to the caller and the operator (``on``), or to nobody."""

    event: ClassVar[str] = "barge"
    subscriber_id: PeerName
    on: StrictBool


class RemoveSubscriber(MediaRequest[Done]):
    """A console leaves the call (a transfer): its peer closes, its voice stops."""

    event: ClassVar[str] = "remove_subscriber"
    subscriber_id: PeerName


REQUESTS: dict[str, type[MediaRequest[Any]]] = {
    request.event: request
    for request in (
        CitizenOffer,
        SubscriberOffer,
        Candidate,
        Snapshot,
        Thumbnail,
        EndCall,
        Stats,
        RemoveSubscriber,
        Barge,
    )
}


# -- reports, media node -> its node ----------------------------------------------------------


# Why admission control refused a new session (media/admission.py): the first signal over.
RefusalCause = Literal["loop_lag", "cpu", "host_cpu"]


class LoadReport(Wire):
    """Sent every second: where new calls are placed (``admit``: admission control's verdict),
    and the media node's counts since it started, which its node exports as metrics (a
    restarted worker counts from 0 again: a counter reset)."""

    sessions: int = Field(ge=0)
    admit: StrictBool
    loop_lag_ms: float | None = None
    cpu_percent: float | None = None
    host_cpu_percent: float | None = None
    refused: dict[RefusalCause, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    segments_written: int = Field(default=0, ge=0)
    segments_failed: int = Field(default=0, ge=0)
    frames_dropped: int = Field(default=0, ge=0)
    # The recording volume (media/disk_space.py): its free space (None: not read yet), whether
    # it is under RECORDING_MIN_FREE_MB, and how many calls are not recorded because of it.
    disk_free_bytes: int | None = Field(default=None, ge=0)
    disk_low: StrictBool = False
    recording_paused: int = Field(default=0, ge=0)


Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Recovery(Wire):
    """How a segment left open by a dead process was closed by another (media/recovery.py):
    the file as its writer left it is the evidence; ``playable_*``: a remuxed copy beside it
    (its complete clusters, with an index and a duration), None when it holds none."""

    writer: str = Field(default="", max_length=64)
    recovered_by: str = Field(max_length=64)
    playable_key: str | None = Field(default=None, min_length=1, max_length=512)
    playable_sha256: Sha256 | None = None
    playable_size_bytes: int | None = Field(default=None, ge=0)


class ClosedSegment(Wire):
    """One closed, hashed recording segment: evidence, reported until the node stores it.
    ``recovered``: set when its writer died with it open and another process closed it."""

    call_id: CallId
    segment: int = Field(ge=1)
    # What the database keeps (server/core/storage.py); ``path``: the file on the media node.
    key: str = Field(min_length=1, max_length=512)
    path: Path
    started_at: datetime
    ended_at: datetime
    size_bytes: int = Field(ge=0)
    sha256: Sha256
    video_frames: int = Field(ge=0)
    audio_frames: int = Field(ge=0)
    operator_audio_frames: int = Field(default=0, ge=0)
    log_as: LogName = ""
    recovered: Recovery | None = None


# Where a recording failed: its writer (an I/O error, a full disk), closing what a dead process
# left open, or storing a closed segment.
FailureStage = Literal["writing", "recovering", "storing"]


class RecordingFailure(Wire):
    """A recording that failed, reported like a closed segment, so that it is entered in the
    chain (``recording_failed``, as NENA i3's RecordingFailed) and never passes unseen.
    ``cause``: what went wrong, never a path (it holds the call's id)."""

    call_id: CallId
    segment: int | None = Field(default=None, ge=1)
    stage: FailureStage
    cause: str = Field(min_length=1, max_length=300)
    log_as: LogName = ""


class RecordingState(Wire):
    """A call's recording paused (``recording`` False: the recording volume is low on space)
    or resumed: the node tells the call's watchers and enters it in the chain, so a gap in the
    recording is explained. ``segment``: the last segment begun before the change (None:
    none yet)."""

    call_id: CallId
    recording: StrictBool
    reason: Literal["disk_low"] = "disk_low"
    free_bytes: int = Field(ge=0)
    min_free_bytes: int = Field(ge=0)
    segment: int | None = Field(default=None, ge=1)
    log_as: LogName = ""


# -- both ends ---------------------------------------------------------------------------------


class MediaHandler(Protocol):
    """A media node's side: a request in, its reply out, or an ``AppError``; anything else it
    raised is already ``MEDIA_FAILED`` (media/rpc.py)."""

    async def __call__(self, request: MediaRequest[R]) -> R: ...


def invalid(what: str, exc: ValidationError) -> AppError:
    """A message that failed its model: ``INVALID``, naming the first field at fault."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return AppError(ErrorCode.INVALID, f"malformed {what}: {where}: {first['msg']}")


def to_wire(outcome: MediaReply | AppError) -> dict[str, Any]:
    """A reply, or a refusal, as the acknowledgement that carries it."""
    if isinstance(outcome, AppError):
        return Refusal.of(outcome).model_dump(mode="json")
    return outcome.model_dump(mode="json")


def read_reply(reply: type[R], raw: Any, what: str) -> R:
    """An acknowledgement as its reply model; a refusal is raised as the ``AppError`` it names,
    and an acknowledgement that is neither is ``MEDIA_FAILED``."""
    if isinstance(raw, dict) and raw.get("ok") is False:
        try:
            refusal = Refusal.model_validate(raw)
        except ValidationError:
            raise AppError(ErrorCode.MEDIA_FAILED, f"malformed refusal of {what}") from None
        raise refusal.error()
    try:
        return reply.model_validate(raw)
    except ValidationError:
        raise AppError(ErrorCode.MEDIA_FAILED, f"malformed reply to {what}") from None


def reply_to(request: MediaRequest[R], raw: Any) -> R:
    """``read_reply`` for the reply that ``request`` expects."""
    return cast(R, read_reply(request.reply, raw, request.event))


async def serve(handler: MediaHandler, event: str, raw: Any) -> dict[str, Any]:
    """One request off the wire at a media node: every outcome is an acknowledgement, a crash
    included, so the caller hears the reason rather than waiting for a timeout."""
    kind = REQUESTS.get(event)
    if kind is None:
        return to_wire(AppError(ErrorCode.INVALID, f"no such request {event!r}"))
    try:
        request = kind.model_validate(raw)
    except ValidationError as exc:
        return to_wire(invalid(event, exc))
    try:
        return to_wire(await handler(request))
    except AppError as exc:
        return to_wire(exc)
    except Exception:  # a handler should have said MEDIA_FAILED itself; still a reply
        log.exception("media request failed", extra={"event": event})
        return to_wire(AppError(ErrorCode.MEDIA_FAILED, "The media node failed"))
