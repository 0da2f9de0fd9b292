"""The event contract is enforced, not only declared: one union of server events, exactly the
fields each declares, and an error code for every refusal with its status."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, ValidationError

from server.core.errors import AppError, ErrorCode
from server.core.events import SERVER_EVENTS, CallStateEvent, ServerEvent
from server.http.keys import SERVICES_KEY
from signaling.acks import ACKS
from signaling.citizen import CitizenNamespace
from signaling.console import ConsoleNamespace
from signaling.thread import ThreadNamespace
from tests.sockets import console
from tests.staff import Client


class NotAnEvent(BaseModel):
    type: str = "bogus.event"
    call_id: str = "x"


def test_every_event_in_the_union_has_its_own_type_and_forbids_extra_fields() -> None:
    members = typing.get_args(ServerEvent)
    types = [m.model_fields["type"].default for m in members]
    assert len(types) == len(set(types)), types
    for member in members:
        assert member.model_config.get("extra") == "forbid", member.__name__


def test_the_union_refuses_an_unknown_type_and_an_undeclared_field() -> None:
    with pytest.raises(ValidationError):
        SERVER_EVENTS.validate_python({"type": "bogus.event", "call_id": "x"})
    state = CallStateEvent(call_id="c", state="queued", at="2026-01-01T00:00:00Z")
    assert SERVER_EVENTS.validate_python(state.model_dump(mode="json")) == state
    with pytest.raises(ValidationError):
        SERVER_EVENTS.validate_python({**state.model_dump(mode="json"), "secret": "leak"})


def test_every_error_code_has_a_client_or_server_status() -> None:
    assert len({code.value for code in ErrorCode}) == len(ErrorCode)
    for code in ErrorCode:
        assert 400 <= code.status <= 599, code
        assert AppError(code, "m").to_wire() == {"code": code.value, "message": "m"}
    assert ErrorCode.MEDIA_FAILED.status >= 500  # a bug at a media node is ours, not the caller's


async def test_a_test_client_catches_an_event_outside_the_union(
    client: Client, operator: Client
) -> None:
    """The helpers' check can fail: an event outside the union, sent to a console, is caught."""
    assert client.app is not None
    notifier = client.app[SERVICES_KEY].notifier
    async with console(operator) as desk:
        await notifier.to_queue("police", NotAnEvent())  # type: ignore[arg-type]
        await desk.next_event("bogus.event")
        assert desk.invalid and "bogus.event" in desk.invalid[0]
        desk.invalid.clear()  # seen: this test's own bad event must not fail the helper


def test_every_request_of_each_namespace_has_its_ack_model() -> None:
    """A new Socket.IO request cannot land without the model of its answer."""
    handled = {
        namespace: {
            name.removeprefix("on_")
            for name in dir(cls)
            if name.startswith("on_") and name not in ("on_connect", "on_disconnect")
        }
        for namespace, cls in (
            ("/citizen", CitizenNamespace),
            ("/console", ConsoleNamespace),
            ("/thread", ThreadNamespace),
        )
    }
    assert handled == {namespace: set(events) for namespace, events in ACKS.items()}
