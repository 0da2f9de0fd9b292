"""What each Socket.IO request is answered with: a model per acknowledgement, and the one
refusal shape. ``ACKS`` names each namespace's events and their answers, so the tests check every
acknowledgement a client receives, as they check every event (``tests/sockets.py``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.core.events import (
    CallStateEvent,
    CallStateName,
    CallSummary,
    ChatMessageEvent,
    LocationEvent,
    OperatorState,
    PhotoEvent,
)

CallEvent = Annotated[ChatMessageEvent | LocationEvent | PhotoEvent, Field(discriminator="type")]


class Ack(BaseModel):
    """A request that was done."""

    model_config = ConfigDict(extra="forbid")
    ok: Literal[True] = True

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class RefusalDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str


class Refusal(BaseModel):
    """A request that was refused (the ``error`` event says the same)."""

    model_config = ConfigDict(extra="forbid")
    ok: Literal[False] = False
    error: RefusalDetail


class Stored(Ack):
    """A chat message or a location fix, stored with its sequence number."""

    seq: int
    duplicate: bool = False


class Located(Ack):
    seq: int


class Answer(Ack):
    type: Literal["answer"] = "answer"
    sdp: str


class Ended(Ack):
    state: CallStateName


class Resumed(Ack):
    """The call's state, and every event after the sequence number the page saw."""

    call: CallStateEvent
    events: list[CallEvent]


class Joined(Ack):
    call: CallSummary
    events: list[CallEvent]


class CallAck(Ack):
    call: CallSummary


class Queue(Ack):
    calls: list[CallSummary]
    me: str


class Operators(Ack):
    operators: list[OperatorState]


class SnapshotTaken(Ack):
    snapshot_id: int
    sha256: str
    url: str


# Every request of each namespace, and its answer when done.
ACKS: dict[str, dict[str, type[Ack]]] = {
    "/citizen": {
        "resume": Resumed,
        "location": Located,
        "chat": Stored,
        "media_offer": Answer,
        "media_ice": Ack,
        "end_call": Ended,
    },
    "/console": {
        "operators": Operators,
        "queue": Queue,
        "accept": CallAck,
        "transfer": CallAck,
        "join": Joined,
        "chat": Stored,
        "media_offer": Answer,
        "media_ice": Ack,
        "snapshot": SnapshotTaken,
        "end_call": Ended,
    },
}
