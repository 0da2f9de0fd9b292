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
    OperatorStateName,
    PhotoEvent,
    PresentRole,
    ThreadMessageEvent,
    ThreadStateName,
    TransferOfferEvent,
    WallFigures,
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


class People(Ack):
    """Who is on the call besides the caller, as the caller's page shows it."""

    roles: list[PresentRole]
    speaking: list[PresentRole]


class Queue(Ack):
    calls: list[CallSummary]
    me: str


class Operators(Ack):
    operators: list[OperatorState]


class Wall(Ack):
    """Everything a wall shows, from the database: on every (re)connect it starts from this."""

    calls: list[CallSummary]
    operators: list[OperatorState]
    figures: list[WallFigures]
    target_secs: float


class SnapshotTaken(Ack):
    snapshot_id: int
    sha256: str
    url: str


class TransferTarget(BaseModel):
    """Someone the transfer dialog lists, in the state routing and the wall see them in (a
    call offered to them by name counts as ringing)."""

    model_config = ConfigDict(extra="forbid")
    username: str
    role: str
    state: OperatorStateName


class Targets(Ack):
    """Whom a call may be handed to: people, and the queues this role sees."""

    people: list[TransferTarget]
    queues: list[str]


class Offered(Ack):
    """A transfer made: the offer's id (None: handed back to a queue) and the call now."""

    offer_id: int | None
    call: CallSummary


class Offers(Ack):
    """The offers waiting for this console's staff member."""

    offers: list[TransferOfferEvent]


class Shift(Ack):
    """Whether this console is on shift now (its session then stays alive while it is open)."""

    on: bool


class Status(Ack):
    """The operator's own state now (docs/routing.md); None for a role nobody routes to."""

    status: OperatorState | None = None


# Every request of each namespace, and its answer when done.
class ThreadResumed(Ack):
    """A message thread's state, and its messages after the number the page saw."""

    state: ThreadStateName
    messages: list[ThreadMessageEvent]


ACKS: dict[str, dict[str, type[Ack]]] = {
    "/citizen": {
        "resume": Resumed,
        "location": Located,
        "chat": Stored,
        "media_offer": Answer,
        "media_ice": Ack,
        "end_call": Ended,
        "situation": Ack,
        "link": Ack,
    },
    "/console": {
        "operators": Operators,
        "wall": Wall,
        "monitor": People,
        "barge": People,
        "queue": Queue,
        "accept": CallAck,
        "transfer": Offered,
        "transfer_targets": Targets,
        "offers": Offers,
        "offer_accept": CallAck,
        "offer_decline": Ack,
        "transfer_complete": CallAck,
        "transfer_cancel": Ack,
        "leave_call": Ack,
        "join": Joined,
        "chat": Stored,
        "media_offer": Answer,
        "media_ice": Ack,
        "snapshot": SnapshotTaken,
        "end_call": Ended,
        "shift": Shift,
        "status": Status,
        "set_status": Status,
        "decline": Status,
        "link": Ack,
    },
    "/thread": {"resume": ThreadResumed},
}
