"""What clients send: every Socket.IO event's payload is a model, validated on arrival.

The reply is the Socket.IO acknowledgement (``{"ok": true, ...}``) or, for a bad payload, an
``error`` event and an ``{"ok": false}`` ack. What the server sends is ``server.core.events``.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from server.core.events import LinkQuality, LinkRung, SituationName

MAX_SDP_BYTES = 64 * 1024
MAX_CHAT_CHARS = 2000
MAX_NOTE_CHARS = 4000
MAX_CANDIDATE_CHARS = 1024
# A fix's time in ms since the epoch: up to the year 9999 (a float past it cannot be a date).
MAX_TIMESTAMP_MS = 253_402_300_799_000.0
# Sequence numbers are 64-bit integers in the database.
MAX_SEQ = 2**63 - 1
# Control characters a person does not type (NUL, which PostgreSQL text refuses, among them);
# tab and newline are kept.
_CONTROL = {chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"} | {"\x7f"}


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
    timestamp: float = Field(gt=0, le=MAX_TIMESTAMP_MS)

    @field_validator("lat", "lon", "accuracy", "heading", "speed", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class SituationSet(Strict):
    """ "What is happening?", named after the call began."""

    situation: SituationName


class LinkReport(Strict):
    """The caller's page: the rung its call is on and the link quality it measures."""

    rung: LinkRung
    quality: LinkQuality


class ConsoleLinkReport(Strict):
    """A console on the call: the quality of the caller's media as it arrives there."""

    call_id: str = Field(max_length=36)
    quality: LinkQuality


class ChatSend(Strict):
    client_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    body: str = Field(min_length=1, max_length=MAX_CHAT_CHARS)

    @field_validator("body")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ch in _CONTROL for ch in value):
            raise ValueError("must not contain control characters")
        return value


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


class CallMonitor(CallRef):
    """Start (``on``) or stop monitoring a call, or speaking to it (barge-in)."""

    on: bool


class CallJoin(CallRef):
    last_seq: int = Field(default=0, ge=0, le=MAX_SEQ)


class Resume(Strict):
    """After (re)connecting: the last sequence number this client saw."""

    last_seq: int = Field(default=0, ge=0, le=MAX_SEQ)


class CitizenEnd(Strict):
    pass


class CallEnd(CallRef):
    disposition: str = Field(min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


class CallTransfer(CallRef):
    """The operator hands the call on, saying why (kept with the transition): to a named
    operator (warm, cold) or beside them (conference), or to a queue; with neither named, back
    to its own queue."""

    note: str = Field(default="", max_length=255)
    kind: Literal["warm", "cold", "conference"] = "cold"
    target_user: str | None = Field(default=None, min_length=1, max_length=64)
    target_channel: Literal["police", "internal_security"] | None = None


class OfferRef(Strict):
    offer_id: int = Field(ge=1)


class ShiftSet(Strict):
    """The console's operator starts (``on``) or ends their shift."""

    on: bool


class StatusSet(Strict):
    """The operator sets their state: ``available``, ``away`` (with an optional note) or
    ``ready`` (after a call's wrap-up). Checked by the action, which names the states."""

    state: str = Field(max_length=32)
    note: str = Field(default="", max_length=400)


class CitizenHello(Strict):
    """The citizen's ``auth`` at connect: its call token and the last sequence number it saw."""

    token: str = Field(min_length=20, max_length=128)
    last_seq: int = Field(default=0, ge=0, le=MAX_SEQ)
