"""Every event the server sends to a client, as one union: a model per event, a ``type`` literal
each, and nothing a model does not declare (``extra="forbid"``).

They travel under the one Socket.IO event name ``event``. The notifier (``server.core.ports``)
takes only these; the tests validate every event a client receives against ``SERVER_EVENTS``,
so an event outside the union, or a field it does not declare, fails a test.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

CallStateName = Literal["queued", "answered", "ended", "abandoned", "transferred", "failed"]
ChannelName = Literal["police", "internal_security"]
StatusName = Literal[
    "new", "verifying", "confirmed", "not_confirmed", "joke_or_mistake", "eliminated"
]


class Model(BaseModel):
    """What the server sends: exactly the declared fields."""

    model_config = ConfigDict(extra="forbid")


CallMark = Literal["flooding", "suspected_abuse"]
# "What is happening?": the caller's one optional tap on the start screen (docs/citizen.md), the
# situations a police line asks callers to report at once.
SituationName = Literal[
    "threat_to_life", "drunk_driver", "violence", "animal_cruelty", "suspicious_person", "other"
]


class CallSummary(Model):
    call_id: str
    channel: ChannelName
    mode: Literal["video", "text"]
    language: str
    state: CallStateName
    created_at: datetime
    answered_at: datetime | None = None
    operator: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy: float | None = None
    # What the system noticed ("flooding", "suspected_abuse"): shown, and queued after the rest.
    marks: list[CallMark] = []
    # Once answered: the three words the operator reads aloud, as the caller's page shows them
    # (server/security/call_code.py); empty while the call waits.
    verification_code: list[str] = []
    # What the caller is shown of the answering operator (set on /admin; else the username).
    operator_name: str | None = None
    operator_badge: str | None = None
    # The caller's page is connected now (on any node); None where it was not looked up. A call
    # whose page never connected is shown as such on the wall, not as a caller waiting.
    caller_connected: bool | None = None
    # What the caller said is happening (one tap on the start screen, or later); None: not said.
    situation: SituationName | None = None
    # A call handed on by name and not taken (or given back to a queue with a note): why, as
    # its first operator wrote it, so whoever takes it next reads it (docs/transfers.md).
    transfer_note: str | None = None
    # The operator a waiting call rings now (automatic distribution), and until when.
    ringing: str | None = None
    ring_until: datetime | None = None
    # Since when nothing of the call is recorded (its media node's disk low); None while it is.
    recording_paused_at: datetime | None = None
    # Its media node has not been heard from lately (killed, say): the wall shows the call as
    # reconnecting until the caller's page places the media anew (media_liveness.py).
    media_lost: bool = False


OperatorStateName = Literal["available", "ringing", "in_call", "wrap_up", "away", "offline"]


class OperatorState(Model):
    """The wall's view of one operator (docs/routing.md): available, ringing (a call rings
    them), in a call, in wrap-up after one, away (set by them, or after a missed ring), or no
    console open on any node; since when (None: not known, e.g. offline since before the node
    started), the call (ringing, in a call), until when (a ring, a wrap-up), the note (away; a
    missed ring's moment in ``missed_at``) and the languages they speak."""

    username: str
    state: OperatorStateName
    since: datetime | None = None
    call_id: str | None = None
    until: datetime | None = None
    note: str = ""
    missed_at: datetime | None = None
    skills: list[str] = []


class HourFigures(Model):
    """One hour of today (the deployment's time zone), by the hour each call was offered."""

    hour: int
    offered: int
    answered: int
    abandoned: int


class WallFigures(Model):
    """Today's figures of one channel, from the call transitions only (docs/wall.md)."""

    channel: ChannelName
    day: str  # the local date, YYYY-MM-DD
    time_zone: str
    target_secs: float
    offered: int
    answered: int
    abandoned: int
    answered_in_target: int
    # answered_in_target / (answered + abandoned), in percent; None before any call ended so.
    in_target_percent: float | None
    avg_wait_secs: float | None
    longest_wait_secs: float | None
    avg_talk_secs: float | None
    hours: list[HourFigures]


SessionEndReason = Literal[
    "signed_out", "disabled", "role_changed", "password_changed", "expired", "revoked"
]


class SessionEndedEvent(Model):
    """The console's staff session has ended (signed out, the account disabled or its role
    changed, the password changed elsewhere, idle too long, ended or reset by an
    administrator: ``revoked``): the socket is closed after this."""

    type: Literal["session.ended"] = "session.ended"
    reason: SessionEndReason


class ResyncEvent(Model):
    """This node's bus to the other nodes (Redis) was away and is back: events made on other
    nodes meanwhile never reached this socket (Socket.IO is at most once), so read the queue,
    the wall and the open call again (the call by sequence number)."""

    type: Literal["console.resync"] = "console.resync"


class DegradedEvent(Model):
    """What this node works without right now (``database`` while it does not answer): the
    console shows a banner while the database is away, since what is said is not stored."""

    type: Literal["node.degraded"] = "node.degraded"
    stores: list[str]


class MediaLostEvent(Model):
    """The call's media node is gone: offer again at once (the server places it anew) rather
    than wait for the browser to notice the silence."""

    type: Literal["media.lost"] = "media.lost"
    call_id: str


class CallStateEvent(Model):
    type: Literal["call.state"] = "call.state"
    call_id: str
    state: CallStateName
    operator: str | None = None
    at: datetime
    # While answered: the three words the operator will say (the console shows the same), and
    # the operator's display name (else username) and badge number, as set on /admin.
    verification_code: list[str] = []
    operator_name: str | None = None
    operator_badge: str | None = None


class ChatMessageEvent(Model):
    type: Literal["chat.message"] = "chat.message"
    call_id: str
    seq: int
    sender: Literal["citizen", "operator"]
    sender_name: str | None = None
    client_id: str
    body: str
    at: datetime


class PhotoEvent(Model):
    """A photo or video clip the caller sent; ``url`` serves it to the call's token holder and
    its staff."""

    type: Literal["call.photo"] = "call.photo"
    call_id: str
    kind: Literal["photo", "video"] = "photo"
    content_type: str = "image/jpeg"
    seq: int
    url: str
    sha256: str
    width: int
    height: int
    at: datetime


class LocationEvent(Model):
    type: Literal["location"] = "location"
    call_id: str
    seq: int
    lat: float
    lon: float
    accuracy: float | None
    heading: float | None
    speed: float | None
    measured_at: datetime


class CitizenPresenceEvent(Model):
    """The citizen's page connected or went away (a reload, a network switch, or gone)."""

    type: Literal["call.citizen"] = "call.citizen"
    call_id: str
    connected: bool


class QueueCallAdded(Model):
    type: Literal["queue.call_added"] = "queue.call_added"
    call: CallSummary


class QueueCallUpdated(Model):
    """A queued or answered call changed what the queue shows of it (a mark, say)."""

    type: Literal["queue.call_updated"] = "queue.call_updated"
    call: CallSummary


class QueueCallRemoved(Model):
    type: Literal["queue.call_removed"] = "queue.call_removed"
    call_id: str
    reason: Literal["answered", "abandoned", "ended", "failed"]
    by: str | None = None


class IceCandidateEvent(Model):
    """A server candidate, for clients that want them trickled (aiortc puts all in its answer)."""

    type: Literal["media.ice"] = "media.ice"
    call_id: str
    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None


class HistoryItem(Model):
    kind: Literal["created", "status", "forward", "invite"]
    actor: str
    from_status: StatusName | None = None
    to_status: StatusName | None = None
    forwarded_to: str | None = None
    public_note: str | None = None
    internal_note: str | None = None
    at: datetime


class StaffReport(Model):
    """The console's view of a report: all of it."""

    id: int
    category: str
    status: StatusName
    lat: float
    lon: float
    description: str
    days: list[str]
    time_of_day: str
    contact: str | None
    sensitive: bool
    public_note: str | None
    confirmations: int
    source: str
    call_id: str | None
    photos: list[str]
    created_at: datetime
    updated_at: datetime
    read_at: datetime | None
    verified_at: datetime | None
    invited_at: datetime | None
    overdue_read: bool
    overdue_verify: bool
    history: list[HistoryItem]
    # Open311: the address the partner named beside the point, and the partner app whose API
    # key sent it.
    address: str | None = None
    partner: str | None = None


class ReportNewEvent(Model):
    type: Literal["report.new"] = "report.new"
    report: StaffReport


class ReportUpdatedEvent(Model):
    type: Literal["report.updated"] = "report.updated"
    report: StaffReport


class WallUpdateEvent(Model):
    """To the walls of a channel: its operators and today's figures, after anything that
    changes them (a call's transition, a console opening or closing)."""

    type: Literal["wall.update"] = "wall.update"
    channel: ChannelName
    operators: list[OperatorState]
    figures: WallFigures


class ThumbnailEvent(Model):
    """To the walls of the call's channel: a fresh thumbnail of the caller's picture."""

    type: Literal["wall.thumbnail"] = "wall.thumbnail"
    call_id: str
    jpeg_base64: str
    at: datetime


PresentRole = Literal["operator", "supervisor"]


class PeoplePresentEvent(Model):
    """Who is on the call besides the caller (an operator answering, a supervisor monitoring
    or speaking): the caller's page shows it, so nobody watches without the caller knowing."""

    type: Literal["call.people"] = "call.people"
    call_id: str
    roles: list[PresentRole]
    # A supervisor speaking to the call (barge-in), not only watching.
    speaking: list[PresentRole] = []


OfferKindName = Literal["warm", "cold", "conference"]
OfferStateName = Literal["offered", "accepted", "declined", "expired", "cancelled", "completed"]


class TransferOfferEvent(Model):
    """A call offered to this staff member by name (docs/transfers.md): who offers it, how
    (warm, cold, conference), their note, until when. To the target's consoles only."""

    type: Literal["transfer.offer"] = "transfer.offer"
    offer_id: int
    kind: OfferKindName
    call: CallSummary
    by: str
    note: str
    expires_at: datetime


class TransferUpdateEvent(Model):
    """An offer settled or moved on: to the offering operator's and the target's consoles."""

    type: Literal["transfer.update"] = "transfer.update"
    offer_id: int
    call_id: str
    kind: OfferKindName
    state: OfferStateName
    by: str
    to: str


class CallSituationEvent(Model):
    """What the caller said is happening, named (or changed) after the call began."""

    type: Literal["call.situation"] = "call.situation"
    call_id: str
    situation: SituationName


LinkRung = Literal["video", "audio", "text"]
"""The degradation ladder's steps: video and sound, sound only, the chat alone."""

LinkQuality = Literal["good", "poor", "bad"]


class CallLinkEvent(Model):
    """One side's measured link quality and, from the caller (who sends the video), the rung
    the call is on: forwarded to the other side (console_ui/static/js/link_quality.js decides)."""

    type: Literal["call.link"] = "call.link"
    call_id: str
    side: Literal["caller", "operator"]
    rung: LinkRung | None
    quality: LinkQuality


class QueuePositionEvent(Model):
    """A waiting caller's place in the queue, as the consoles order it (unmarked calls first,
    oldest first): sent to the caller's page whenever the queue changes. A marked call is not
    given a place (``position`` None): its page just says it is waiting."""

    type: Literal["queue.position"] = "queue.position"
    call_id: str
    position: int | None
    # Since the call last entered the queue (created, or given back by a transfer).
    waited_secs: float


ThreadStateName = Literal["open", "claimed", "closed"]


class ThreadMessageEvent(Model):
    """One stored message of a message thread; ``url`` serves its photo or clip (the thread's
    token holder, its channel's operators)."""

    type: Literal["thread.message"] = "thread.message"
    thread_id: str
    seq: int
    sender: Literal["citizen", "operator"]
    sender_name: str | None = None
    client_id: str
    body: str
    kind: Literal["photo", "video"] | None = None
    url: str | None = None
    sha256: str | None = None
    at: datetime


class ThreadSummary(Model):
    """What the console's Messages tab shows of one thread."""

    thread_id: str
    channel: ChannelName
    language: str
    state: ThreadStateName
    claimed_by: str | None = None
    unread: int
    last_seq: int
    marks: list[CallMark] = []
    preview: str = ""
    contact: str | None = None
    lat: float | None = None
    lon: float | None = None
    accuracy: float | None = None
    disposition: str | None = None
    report_id: int | None = None
    created_at: datetime
    last_at: datetime


class ThreadUpdatedEvent(Model):
    """A thread of the channel is new or changed (a message, a claim, a close)."""

    type: Literal["thread.updated"] = "thread.updated"
    thread: ThreadSummary


class ThreadStateEvent(Model):
    """To the citizen's thread page: its thread was claimed or closed."""

    type: Literal["thread.state"] = "thread.state"
    thread_id: str
    state: ThreadStateName
    at: datetime


class OperatorStatusEvent(Model):
    """To one operator's consoles (every node): the state they are in now, after they set it,
    a call ends (wrap-up), or a ring they let pass set them away."""

    type: Literal["operator.status"] = "operator.status"
    status: OperatorState


ServerEvent = (
    TransferOfferEvent
    | TransferUpdateEvent
    | CallStateEvent
    | ChatMessageEvent
    | PhotoEvent
    | LocationEvent
    | QueueCallAdded
    | QueueCallUpdated
    | QueueCallRemoved
    | CitizenPresenceEvent
    | IceCandidateEvent
    | MediaLostEvent
    | SessionEndedEvent
    | ResyncEvent
    | DegradedEvent
    | ReportNewEvent
    | ReportUpdatedEvent
    | WallUpdateEvent
    | ThumbnailEvent
    | PeoplePresentEvent
    | QueuePositionEvent
    | ThreadMessageEvent
    | ThreadUpdatedEvent
    | ThreadStateEvent
    | OperatorStatusEvent
    | CallSituationEvent
    | CallLinkEvent
)
"""Every server -> client event (under the Socket.IO event name ``event``)."""

SERVER_EVENTS: TypeAdapter[ServerEvent] = TypeAdapter(
    Annotated[ServerEvent, Field(discriminator="type")]
)


class ErrorEvent(Model):
    """Sent under the Socket.IO event name ``error``: what was refused, and why."""

    code: str
    message: str
    event: str | None = None
