"""What the domain needs from the world outside it, as interfaces the app factory fills in.

Actions depend on these, never on Socket.IO, Redis or aiortc: the Socket.IO adapter implements
the notifier and the way to media nodes; ``server.state`` implements presence and the media-node
registry, in-process for the embedded mode and in Redis for scale-out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from server.core.events import ServerEvent, SessionEndReason
from server.core.media_rpc import CallEnded, FailureStage, LoadReport, MediaRequest, R


class Notifier(Protocol):
    """Delivers events to the pages, after they are stored (a lost delivery loses nothing: every
    client catches up from the database by sequence number). Takes only ``ServerEvent``s."""

    async def to_citizen(self, call_id: str, event: ServerEvent) -> None:
        """The caller's page(s) of this call."""
        ...

    async def to_call_watchers(self, call_id: str, event: ServerEvent) -> None:
        """The call's operator and every supervisor watching it."""
        ...

    async def to_call(self, call_id: str, event: ServerEvent) -> None:
        """Both sides of the call: the caller's page(s) and every console watching it."""
        ...

    async def to_own_consoles(self, event: ServerEvent) -> None:
        """Every console connected to this node, not the other nodes' (each says its own)."""
        ...

    async def to_queue(self, channel: str, event: ServerEvent) -> None:
        """Every console that may see this channel's queue."""
        ...

    async def to_staff(self, user_id: int, event: ServerEvent) -> None:
        """Every console of one staff member, on every node: an offer made to them by name."""
        ...

    async def to_report_desks(self, event: ServerEvent) -> None:
        """Every operator's and supervisor's console: the threat reports list."""
        ...

    async def to_wall(self, channel: str, event: ServerEvent) -> None:
        """Every wall open on this channel (its role may see the channel)."""
        ...

    async def to_thread(self, thread_id: str, event: ServerEvent) -> None:
        """The citizen's page(s) of this message thread."""
        ...

    async def end_staff_sessions(
        self, session_ids: Sequence[int], reason: SessionEndReason
    ) -> None:
        """Every console socket of these staff sessions, on any node, is told why and
        disconnected: a revoked session receives nothing more."""
        ...


class Presence(Protocol):
    """Who is connected, by key, across every node (a Redis set with a TTL in scale-out)."""

    async def join(self, key: str, member: str) -> None:
        """Add ``member``; joining again keeps it alive (renews its TTL in Redis)."""
        ...

    async def leave(self, key: str, member: str) -> None: ...
    async def count(self, key: str) -> int: ...
    async def members(self, key: str) -> set[str]: ...


@dataclass(frozen=True)
class MediaNode:
    id: str
    home: str  # the NODE_ID of the node it is connected to
    sessions: int
    admit: bool
    seen: float  # the clock's wall time (epoch seconds) of its last report


@dataclass(frozen=True)
class Heard:
    """When a media node last reported, and whether the server process it reports through
    still holds its connection to the bus (False only where the bus says so: Redis drops a
    killed process's subscription at once, long before its reports are missed)."""

    seen: float  # the clock's wall time (epoch seconds)
    home_listening: bool = True


class MediaNodes(Protocol):
    """The live media nodes and their load: where a new call's media is placed."""

    async def report(self, node: MediaNode) -> None: ...
    async def remove(self, node_id: str) -> None: ...
    async def alive(self) -> list[MediaNode]:
        """The ones whose last report is within the registry's limit."""
        ...

    async def last_seen(self) -> dict[str, Heard] | None:
        """Every listed node's last report and whether its home still listens; None when the
        registry does not answer."""
        ...


class Media(Protocol):
    """The way to every call's media, wherever its media node is (this process, a worker, or
    another node). Refusals are ``AppError``s with a media code (``MEDIA_BUSY``, ``NO_MEDIA``,
    ``INVALID_SDP``, ``INVALID_CANDIDATE``, ``MEDIA_UNREACHABLE``, ``MEDIA_FAILED``)."""

    async def citizen_offer(self, call_id: str, sdp: str) -> str: ...

    async def subscriber_offer(
        self, call_id: str, subscriber_id: str, sdp: str, *, talk: bool
    ) -> str: ...

    async def add_candidate(
        self,
        call_id: str,
        peer: str,
        candidate: str,
        sdp_mid: str | None,
        sdp_mline_index: int | None,
    ) -> None: ...

    async def snapshot(self, call_id: str) -> bytes: ...
    async def thumbnail(self, call_id: str) -> bytes: ...
    async def stats(self, call_id: str) -> dict[str, Any]: ...
    async def remove_subscriber(self, call_id: str, subscriber_id: str) -> None: ...
    async def barge(self, call_id: str, subscriber_id: str, *, on: bool) -> None: ...
    async def end_call(self, call_id: str) -> CallEnded | None:
        """Close the call's media and recording; None when no media node answered (the call
        had no media, or its media node is gone)."""
        ...


class MediaTransport(Protocol):
    """The way a request reaches a media node (``signaling/media_bus.py``): in process to this
    node's own hub, else over the bus. Its own refusals: ``MEDIA_UNREACHABLE`` (the node is not
    alive or did not answer in time); the media node's come back as the ``AppError`` it raised.
    """

    @property
    def local_node(self) -> str | None:
        """The id of the media node in this process (no hop to reach it), if there is one."""
        ...

    async def request(self, node_id: str, request: MediaRequest[R]) -> R: ...


# What became of a call at a step of its life (server/actions/calls.py).
CallOutcome = Literal["answered", "transferred", "abandoned", "ended"]
# Why a closed recording segment was not stored: another file claims its number, or the store
# failed (the media node sends it again).
StoreFailure = Literal["conflict", "error"]


class Telemetry(Protocol):
    """What the actions count as it happens, for the metrics an operations team pages on
    (server/http/metrics.py implements it with Prometheus). Each is cheap and never raises;
    what can be read at any time (the queue, the operators) is read at scrape time instead."""

    def call_created(self, channel: str) -> None: ...

    def call_outcome(self, channel: str, outcome: CallOutcome) -> None: ...

    def call_waited(self, channel: str, seconds: float) -> None:
        """An answered call waited this long in the queue (since it was queued last)."""
        ...

    def media_unplaced(self) -> None:
        """A new call's media found no media node that would take it: it goes on in chat."""
        ...

    def media_node_reported(self, node_id: str, load: LoadReport) -> None:
        """One of this node's media nodes reported its load and counts."""
        ...

    def media_node_left(self, node_id: str) -> None: ...

    def segment_stored(self) -> None: ...

    def segment_not_stored(self, reason: StoreFailure) -> None: ...

    def segment_recovered(self) -> None:
        """A segment a dead process left open was stored (it is counted as stored too)."""
        ...

    def recording_failed(self, stage: FailureStage) -> None:
        """A recording failure was entered in the chain (``recording_failed``)."""
        ...


@dataclass(frozen=True)
class RedactionOutcome:
    frames: int
    # Video frames in which at least one face was blurred.
    frames_with_faces: int


class Redactor(Protocol):
    """Makes a redacted copy of one recording segment (media/redaction.py: faces blurred,
    audio kept). Blocks: the node runs it on its redaction pool."""

    def redact(self, source: Path, target: Path) -> RedactionOutcome:
        """Write ``target`` from ``source``, which is only read."""
        ...


@dataclass(frozen=True)
class ClipFacts:
    """What reading a whole video clip found."""

    width: int
    height: int
    duration_secs: float | None


class ClipProbe(Protocol):
    """Reads an uploaded video clip through with its container's demuxer (media/clips.py,
    PyAV), or refuses it with ``AppError`` (``not_a_video``, ``video_too_large``). Blocks: the
    node runs it on its image pool."""

    def probe(self, data: bytes, container: Literal["mp4", "webm"], max_secs: float) -> ClipFacts:
        """Every packet read (for at most ``max_secs``) and the first video frame decoded."""
        ...


SmsFailure = Literal["timeout", "unreachable", "refused"]


class SmsNotSent(Exception):
    """The gateway did not take the message: it did not answer in time, could not be reached,
    or answered with an error (``detail``: its status, say). Nothing was sent."""

    def __init__(self, reason: SmsFailure, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: SmsFailure = reason
        self.detail = detail


class SmsGateway(Protocol):
    """Sends one text message to a phone number (E.164): an HTTP gateway in a deployment, a
    file for local use and tests (server/sms.py). Raises ``SmsNotSent``."""

    async def send(self, to: str, text: str) -> None: ...

    async def close(self) -> None: ...


class CadPostFailed(Exception):
    """The CAD's webhook did not take the document: an error status, no answer in time, or no
    connection (``detail`` says which, without the document). It is tried again later."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CadWebhook(Protocol):
    """Posts one signed EIDO document to the centre's CAD (server/cad_webhook.py): a 2xx answer
    is delivered; anything else raises ``CadPostFailed``. The signature is the action's."""

    async def post(self, body: bytes, headers: dict[str, str]) -> None: ...

    async def close(self) -> None: ...


class OidcHttpFailed(Exception):
    """An OpenID Connect provider did not answer as it should: an error status, a body that is
    not a JSON object, no answer in time, or no connection (``detail`` says which, without
    secrets)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class OidcHttp(Protocol):
    """The HTTP to OpenID Connect providers (server/oidc_http.py): their discovery documents,
    key sets and token endpoints. What is asked and what is believed is the actions'."""

    async def get_json(self, url: str) -> dict[str, Any]: ...

    async def post_form(
        self, url: str, form: dict[str, str], *, basic_auth: tuple[str, str]
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...
