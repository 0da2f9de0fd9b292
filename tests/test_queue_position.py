"""The caller's place in the queue (issue 13) and "What is happening?" (issue 17), over real
Socket.IO with the frozen clock: places as the consoles order the queue (unmarked first, oldest
first), moving up when a call is answered; a marked call waits without a number; the time waited
from the clock; a situation given with the call or after it, audited, on the queue's summary;
a bad one refused with nothing changed."""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from typing import Any

from sqlmodel import col, select

from server.actions.call_marks import do_mark_call
from server.core.clock import FrozenClock
from server.db.models import AuditEntry, Call
from server.http.keys import SERVICES_KEY
from tests.sockets import citizen, console, start_call
from tests.staff import Client


async def place(phone: Any, call_id: str, **match: Any) -> dict[str, Any]:
    return await phone.next_event("queue.position", call_id=call_id, **match)


async def test_each_waiting_caller_is_told_their_place_and_it_moves_up(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    calls = []
    async with AsyncExitStack() as stack:
        phones = []
        for _ in range(3):  # each caller's page connects as its call is made, 10 s apart
            calls.append(await start_call(client))
            phones.append(await stack.enter_async_context(citizen(client, calls[-1]["token"])))
            clock.advance(10)
        _, second, third = phones
        desk = await stack.enter_async_context(console(operator))
        for n, (phone, started) in enumerate(zip(phones, calls, strict=True), start=1):
            await phone.call("resume", {"last_seq": 0})
            # Created 10 s apart on the frozen clock: the first has waited 30 s.
            told = await place(phone, started["call_id"], waited_secs=30 - 10 * (n - 1))
            assert told["position"] == n

        accepted = await desk.call("accept", {"call_id": calls[0]["call_id"]})
        assert accepted["ok"], accepted
        assert (await place(second, calls[1]["call_id"], position=1))["position"] == 1
        assert (await place(third, calls[2]["call_id"], position=2))["position"] == 2

        # A call the system marks waits behind the rest, told no number.
        services = client.app[SERVICES_KEY]
        await do_mark_call(services, calls[1]["call_id"], "flooding", actor="system", reason="t")
        assert (await place(second, calls[1]["call_id"], position=None))["position"] is None
        assert (await place(third, calls[2]["call_id"], position=1))["position"] == 1


async def test_a_situation_comes_with_the_call_or_after_it_and_is_audited(
    client: Client, operator: Client
) -> None:
    with_one = await start_call(client, situation="drunk_driver")
    without = await start_call(client)
    async with citizen(client, without["token"]) as phone, console(operator) as desk:
        queue = {c["call_id"]: c for c in (await desk.call("queue", {}))["calls"]}
        assert queue[with_one["call_id"]]["situation"] == "drunk_driver"
        assert queue[without["call_id"]]["situation"] is None

        said = await phone.call("situation", {"situation": "violence"})
        assert said == {"ok": True}
        updated = await desk.next_event("queue.call_updated")
        assert updated["call"]["call_id"] == without["call_id"]
        assert updated["call"]["situation"] == "violence"

        refused = await phone.call("situation", {"situation": "alien_landing"})
        assert refused["ok"] is False
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        call = await session.get(Call, without["call_id"])
        assert call is not None and call.situation == "violence"
        entries = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "call_situation_set")
            )
        ).all()
    assert [json.loads(e.data) for e in entries] == [{"situation": "violence", "was": None}]


async def test_a_bad_situation_on_a_new_call_is_refused_and_nothing_is_stored(
    client: Client,
) -> None:
    response = await client.post(
        "/api/calls", json={"channel": "police", "mode": "video", "situation": "party"}
    )
    assert 400 <= response.status < 500
    assert "error" in await response.json()
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        assert (await session.exec(select(Call))).all() == []
