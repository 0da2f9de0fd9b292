"""Transfers under automatic distribution (ROUTING_MODE=auto): a cold transfer's offer holds
the call for its target (routing rings nobody for it meanwhile); not taken within RING_SECS it
is back in the queue and routing rings an operator for it; the operator who handed it on is
available again, the target who takes one is in the call."""

from __future__ import annotations

import pytest

from config import Settings
from server.core.clock import FrozenClock
from tests.sockets import console, start_call
from tests.staff import Client, add_account, another_browser, sign_in
from tests.test_routing import ringing_of, services_of, settle, states

RING_SECS = 15.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"ROUTING_MODE": "auto", "RING_SECS": RING_SECS, "WRAP_UP_SECS": 0}
    )


async def _signed_in(client: Client, clock: FrozenClock, name: str) -> Client:
    browser = await another_browser(client)
    await sign_in(browser, await add_account(client, name, "operator"), clock)
    return browser


async def test_a_cold_transfer_not_taken_is_rung_by_routing_again(
    client: Client, clock: FrozenClock
) -> None:
    services = services_of(client)
    olga = await _signed_in(client, clock, "olga")
    clock.advance(60)
    piotr = await _signed_in(client, clock, "piotr")
    try:
        async with console(olga) as desk, console(piotr) as other:
            await settle(client)
            started = await start_call(client)
            call_id = started["call_id"]
            await settle(client)
            assert await ringing_of(services, call_id) == "olga"  # idle the longest
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            await settle(client)
            sent = await desk.call(
                "transfer",
                {"call_id": call_id, "kind": "cold", "target_user": "piotr", "note": "PL"},
            )
            assert sent["ok"], sent
            await other.next_event("transfer.offer")
            await settle(client)
            # Held for piotr: routing rings nobody for it; olga is free, piotr is offered it.
            assert await ringing_of(services, call_id) is None
            now = await states(services)
            assert (now["olga"].state, now["piotr"].state) == ("available", "available")
            # ... and the dialog shows piotr as rung (a call is offered to him by name).
            targets = await desk.call("transfer_targets", {"call_id": call_id})
            assert {p["username"]: p["state"] for p in targets["people"]} == {"piotr": "ringing"}

            clock.advance(RING_SECS)
            await settle(client)
            # Back in the queue and rung again by routing, with its note.
            assert await ringing_of(services, call_id) in {"olga", "piotr"}
            queued = (await other.call("queue", {}))["calls"]
            assert [(c["call_id"], c["transfer_note"]) for c in queued] == [(call_id, "PL")]
    finally:
        await olga.close()
        await piotr.close()
