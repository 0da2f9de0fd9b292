"""Every Socket.IO event is a pydantic model: validated when received and when emitted.

Client -> server events carry a payload model; the reply is the Socket.IO acknowledgement
(``{"ok": true, ...}``) or, for a bad payload, an ``error`` event (and an ``{"ok": false}`` ack).
Server -> client events travel under the one event name ``event`` with a ``type`` literal.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SDP_BYTES = 64 * 1024
MAX_CHAT_CHARS = 2000
MAX_NOTE_CHARS = 4000
MAX_CANDIDATE_CHARS = 1024

CallStateName = Literal["queued", "answered", "ended", "abandoned", "transferred", "failed"]
ChannelName = Literal["police", "internal_security"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- payloads from clients -------------------------------------------------------------------


class Location(Strict):
    """One ``watchPosition`` fix (W3C GeolocationCoordinates + its timestamp in ms)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy: float | None = Field(default=None, ge=0, le=1_000_000)
    heading: float | None = Field(default=None, ge=0, le=360)
    speed: float | None = Field(default=None, ge=0, le=1000)
    timestamp: float = Field(gt=0)

    @field_validator("lat", "lon", "accuracy", "heading", "speed", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ChatSend(Strict):
    client_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    body: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)


class ConsoleChatSend(ChatSend):
    call_id: str = Field(max_length=36)


class SessionDescription(Strict):
    type: Literal["offer"]
    sdp: str = Field(min_length=10)

    @field_validator("sdp")
    @classmethod
    def _size(cls, value: str) -> str:
        if len(value.encode()) > MAX_SDP_BYTES:
            raise ValueError(f"SDP over {MAX_SDP_BYTES} bytes")
        if not value.startswith("v=0"):
            raise ValueError("not an SDP (must start with v=0)")
        return value


class ConsoleOffer(SessionDescription):
    call_id: str = Field(max_length=36)


class IceCandidate(Strict):
    """A trickled candidate; an empty ``candidate`` marks the end of gathering."""

    candidate: str = Field(max_length=MAX_CANDIDATE_CHARS)
    sdpMid: str | None = Field(default=None, max_length=32)
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=64)


class ConsoleIceCandidate(IceCandidate):
    call_id: str = Field(max_length=36)


class CallRef(Strict):
    call_id: str = Field(max_length=36)


class CallJoin(CallRef):
    last_seq: int = Field(default=0, ge=0)


class Resume(Strict):
    """After (re)connecting: the last sequence number this client saw."""

    last_seq: int = Field(default=0, ge=0)


class CitizenEnd(Strict):
    pass


class CallEnd(CallRef):
    disposition: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


class CallTransfer(CallRef):
    """The operator gives the call back to its queue, saying why (kept with the transition)."""

    note: str = Field(default="", max_length=255)


class CitizenHello(Strict):
    """The citizen's ``auth`` at connect: its call token and the last sequence number it saw."""

    token: str = Field(min_length=20, max_length=128)
    last_seq: int = Field(default=0, ge=0)


# --- events to clients (under the Socket.IO event name "event") ------------------------------


class CallSummary(BaseModel):
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


class MediaLostEvent(BaseModel):
    """The call's media node is gone: offer again at once (the server places it anew) rather
    than wait for the browser to notice the silence."""

    type: Literal["media.lost"] = "media.lost"
    call_id: str


class CallStateEvent(BaseModel):
    type: Literal["call.state"] = "call.state"
    call_id: str
    state: CallStateName
    operator: str | None = None
    at: datetime


class ChatMessageEvent(BaseModel):
    type: Literal["chat.message"] = "chat.message"
    call_id: str
    seq: int
    sender: Literal["citizen", "operator"]
    sender_name: str | None = None
    client_id: str
    body: str
    at: datetime


class PhotoEvent(BaseModel):
    """A photo the caller sent; ``url`` serves it to the call's token holder and its staff."""

    type: Literal["call.photo"] = "call.photo"
    call_id: str
    seq: int
    url: str
    sha256: str
    width: int
    height: int
    at: datetime


class LocationEvent(BaseModel):
    type: Literal["location"] = "location"
    call_id: str
    seq: int
    lat: float
    lon: float
    accuracy: float | None
    heading: float | None
    speed: float | None
    measured_at: datetime


class CitizenPresenceEvent(BaseModel):
    """The citizen's page connected or went away (a reload, a network switch, or gone)."""

    type: Literal["call.citizen"] = "call.citizen"
    call_id: str
    connected: bool


class QueueCallAdded(BaseModel):
    type: Literal["queue.call_added"] = "queue.call_added"
    call: CallSummary


class QueueCallRemoved(BaseModel):
    type: Literal["queue.call_removed"] = "queue.call_removed"
    call_id: str
    reason: Literal["answered", "abandoned", "ended", "failed"]
    by: str | None = None


class IceCandidateEvent(BaseModel):
    """A server candidate, for clients that want them trickled (aiortc puts all in its answer)."""

    type: Literal["media.ice"] = "media.ice"
    call_id: str
    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: int | None = None


ServerEvent = Annotated[
    CallStateEvent
    | ChatMessageEvent
    | PhotoEvent
    | LocationEvent
    | QueueCallAdded
    | QueueCallRemoved
    | CitizenPresenceEvent
    | IceCandidateEvent,
    Field(discriminator="type"),
]


class ErrorEvent(BaseModel):
    """Sent under the Socket.IO event name ``error``: what was refused, and why."""

    code: str
    message: str
    event: str | None = None
