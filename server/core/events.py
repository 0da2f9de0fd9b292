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


class OperatorState(Model):
    """The wall's view of one operator: answering a call, a console open (on any node), or
    neither."""

    username: str
    state: Literal["in_call", "available", "offline"]


SessionEndReason = Literal["signed_out", "disabled", "role_changed", "password_changed", "expired"]


class SessionEndedEvent(Model):
    """The console's staff session has ended (signed out, the account disabled or its role
    changed, the password changed elsewhere, idle too long): the socket is closed after this."""

    type: Literal["session.ended"] = "session.ended"
    reason: SessionEndReason


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
    """A photo the caller sent; ``url`` serves it to the call's token holder and its staff."""

    type: Literal["call.photo"] = "call.photo"
    call_id: str
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


class ReportNewEvent(Model):
    type: Literal["report.new"] = "report.new"
    report: StaffReport


class ReportUpdatedEvent(Model):
    type: Literal["report.updated"] = "report.updated"
    report: StaffReport


ServerEvent = (
    CallStateEvent
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
    | ReportNewEvent
    | ReportUpdatedEvent
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
