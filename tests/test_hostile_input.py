"""Hostile payloads over real Socket.IO connections: a caller's page and a console send
hypothesis-made payloads for every event while another call's page and another console go on.
The hostile clients get refusals (an ``error`` event and a refusal ack), never a dropped
connection; the others keep their connections and their answers."""

from __future__ import annotations

import asyncio
import string
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from server.core.clock import FrozenClock
from signaling import payloads
from signaling.namespace import EVENT_REFILL_PER_SEC
from tests.sockets import Peer, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

EXAMPLES = 60
GOOD_FIX = {"lat": 43.238, "lon": 76.945, "accuracy": 20.0, "timestamp": 1_790_000_000_000.0}

# Every event each namespace takes, with its payload model (signaling/citizen.py, console.py).
CITIZEN_EVENTS: dict[str, type[BaseModel]] = {
    "resume": payloads.Resume,
    "location": payloads.Location,
    "situation": payloads.SituationSet,
    "link": payloads.LinkReport,
    "chat": payloads.ChatSend,
    "media_offer": payloads.SessionDescription,
    "media_ice": payloads.IceCandidate,
}
CONSOLE_EVENTS: dict[str, type[BaseModel]] = {
    "status": payloads.Strict,
    "set_status": payloads.StatusSet,
    "decline": payloads.CallRef,
    "operators": payloads.Strict,
    "wall": payloads.Strict,
    "queue": payloads.Strict,
    "accept": payloads.CallRef,
    "transfer": payloads.CallTransfer,
    "transfer_targets": payloads.CallRef,
    "offers": payloads.Strict,
    "offer_accept": payloads.OfferRef,
    "offer_decline": payloads.OfferRef,
    "transfer_complete": payloads.CallRef,
    "transfer_cancel": payloads.CallRef,
    "leave_call": payloads.CallRef,
    "join": payloads.CallJoin,
    "chat": payloads.ConsoleChatSend,
    "link": payloads.ConsoleLinkReport,
    "media_offer": payloads.ConsoleOffer,
    "media_ice": payloads.ConsoleIceCandidate,
    "monitor": payloads.CallMonitor,
    "barge": payloads.CallMonitor,
    "snapshot": payloads.CallRef,
    "end_call": payloads.CallEnd,
}

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=80),
    st.sampled_from(["v=0\r\n", "offer", "candidate:1 1 udp 1 127.0.0.1 9 typ host", "\x00"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _shaped(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """A dict of the model's own field names (and a stray one), each value any JSON: what gets
    past the first check and into the fields' validators."""
    names = [*model.model_fields, "x"]
    return st.dictionaries(st.sampled_from(names), _json, max_size=len(names))


def _payloads(events: dict[str, type[BaseModel]]) -> st.SearchStrategy[tuple[str, Any]]:
    name = st.sampled_from([*events, "no_such_event", *string.ascii_lowercase[:2]])
    return name.flatmap(
        lambda n: st.tuples(st.just(n), st.one_of(_json, _shaped(events.get(n, payloads.Strict))))
    )


def _hostile_run(
    loop: asyncio.AbstractEventLoop,
    phone: Peer,
    desk: Peer,
    clock: FrozenClock,
    witnesses: list[tuple[Peer, str, Any]],
) -> None:
    """Hypothesis in a thread of its own; each example sent on the test's event loop."""

    def on_loop(coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(timeout=30)

    def advance() -> None:
        clock.advance(1 / EVENT_REFILL_PER_SEC)  # each event's allowance refills: no flooding

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        st.one_of(
            _payloads(CITIZEN_EVENTS).map(lambda p: ("citizen", *p)),
            _payloads(CONSOLE_EVENTS).map(lambda p: ("console", *p)),
        )
    )
    def send(example: tuple[str, str, Any]) -> None:
        side, name, payload = example
        loop.call_soon_threadsafe(advance)
        socket = phone if side == "citizen" else desk
        reply = on_loop(socket.call(name, payload))
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
        if reply["ok"] is False:
            assert reply["error"]["code"] != "internal", (name, payload, reply)
        assert not phone.closed.is_set() and not desk.closed.is_set(), (name, payload)
        for witness, event, data in witnesses:
            assert on_loop(witness.call(event, data))["ok"], event

    send()


@pytest.mark.timeout(240)
async def test_hostile_payloads_refused_and_others_unaffected(
    client: Client, clock: FrozenClock
) -> None:
    hostile_call = await start_call(client)
    other_call = await start_call(client)
    mallory = await another_browser(client)
    await sign_in(mallory, await add_account(client, "mallory", "operator"), clock)
    olga = await another_browser(client)
    await sign_in(olga, await add_account(client, "olga", "operator"), clock)
    async with (
        citizen(client, hostile_call["token"]) as phone,
        console(mallory) as desk,
        citizen(client, other_call["token"]) as other_phone,
        console(olga) as other_desk,
    ):
        witnesses = [(other_phone, "location", GOOD_FIX), (other_desk, "queue", {})]
        await asyncio.to_thread(
            _hostile_run, asyncio.get_running_loop(), phone, desk, clock, witnesses
        )
        # Nobody was dropped, the hostile clients included, and both still get answers.
        for peer in (phone, desk, other_phone, other_desk):
            assert not peer.closed.is_set()
        assert (await phone.call("resume", {}))["ok"]
        assert (await other_phone.call("resume", {}))["call"]["state"] == "queued"
        assert (await other_desk.call("queue", {}))["ok"]
        # The hostile clients got error events for their refusals.
        assert not phone.errors.empty()
        assert not desk.errors.empty()
    await mallory.close()
    await olga.close()
