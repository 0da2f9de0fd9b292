"""A call from start to end over real Socket.IO: queue, accept, location, chat, resume, end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlmodel import select

from config import Settings
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import Call, ChatMessage
from server.http.keys import SERVICES_KEY
from tests.conftest import ClientFactory
from tests.records import transitions_of
from tests.sockets import citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

WARSAW = {
    "lat": 52.2297,
    "lon": 21.0122,
    "accuracy": 12.5,
    "heading": 90.0,
    "speed": 1.2,
    "timestamp": 1_790_000_000_000.0,
}


async def _transitions(client: Client, call_id: str) -> list[tuple[str | None, str]]:
    return [(r.from_state, r.to_state) for r in await transitions_of(client, call_id)]


async def test_a_call_end_to_end(client: Client, operator: Client) -> None:
    started = await start_call(client)
    call_id = started["call_id"]
    assert started["state"] == "queued"
    assert started["ice_servers"] == []
    async with citizen(client, started["token"]) as phone, console(operator) as desk:
        resumed = await phone.call("resume", {"last_seq": 0})
        assert resumed["ok"] and resumed["call"]["state"] == "queued"
        queue = await desk.call("queue", {})
        assert [c["call_id"] for c in queue["calls"]] == [call_id]

        sent = await phone.call("location", WARSAW)
        assert sent == {"ok": True, "seq": 1}
        located = await desk.next_event("location", call_id=call_id)
        assert (located["lat"], located["lon"], located["accuracy"]) == (52.2297, 21.0122, 12.5)

        accepted = await desk.call("accept", {"call_id": call_id})
        assert accepted["ok"], accepted
        assert accepted["call"]["operator"] == "olga"
        answered = await phone.next_event("call.state", state="answered")
        assert answered["operator"] == "olga"
        gone = await desk.next_event("queue.call_removed", call_id=call_id)
        assert gone["reason"] == "answered"

        hello = await phone.call("chat", {"client_id": "c-0000001", "body": "Help, a fight"})
        assert hello["ok"] and hello["seq"] == 2
        heard = await desk.next_event("chat.message", seq=2)
        assert heard["sender"] == "citizen" and heard["body"] == "Help, a fight"
        # A resend after a flaky network is stored once.
        again = await phone.call("chat", {"client_id": "c-0000001", "body": "Help, a fight"})
        assert again == {"ok": True, "seq": 2, "duplicate": True}
        reply = await desk.call(
            "chat", {"call_id": call_id, "client_id": "o-0000001", "body": "Police on the way"}
        )
        assert reply["ok"]
        told = await phone.next_event("chat.message", sender="operator")
        assert told["body"] == "Police on the way" and told["sender_name"] == "olga"

        ended = await desk.call(
            "end_call", {"call_id": call_id, "disposition": "dispatched", "note": "unit 12"}
        )
        assert ended == {"ok": True, "state": "ended"}
        await phone.next_event("call.state", state="ended")

    assert await _transitions(client, call_id) == [
        (None, "queued"),
        ("queued", "answered"),
        ("answered", "ended"),
    ]
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        call = await session.get(Call, call_id)
        chats = (await session.exec(select(ChatMessage))).all()
    assert call is not None and call.disposition == "dispatched" and call.note == "unit 12"
    assert [m.seq for m in chats] == [2, 3]


async def test_a_reconnecting_page_gets_what_it_missed(client: Client, operator: Client) -> None:
    started = await start_call(client)
    call_id = started["call_id"]
    async with console(operator) as desk:
        await desk.call("accept", {"call_id": call_id})
        async with citizen(client, started["token"]) as phone:
            await phone.call("chat", {"client_id": "c-aaaaaaa1", "body": "first"})
        # The page is gone (reload); the operator writes meanwhile.
        await desk.call("chat", {"call_id": call_id, "client_id": "o-aaaaaaa1", "body": "hello?"})
        await desk.call(
            "chat", {"call_id": call_id, "client_id": "o-aaaaaaa2", "body": "still there?"}
        )
        async with citizen(client, started["token"], last_seq=1) as phone:
            resumed = await phone.call("resume", {"last_seq": 1})
            assert resumed["call"]["state"] == "answered"
            assert [e["body"] for e in resumed["events"]] == ["hello?", "still there?"]
            assert [e["seq"] for e in resumed["events"]] == [2, 3]
        # The console reloads too and catches up from its last number.
        caught_up = await desk.call("join", {"call_id": call_id, "last_seq": 0})
        assert [e["seq"] for e in caught_up["events"]] == [1, 2, 3]


async def test_citizen_hangs_up_while_queued(client: Client, operator: Client) -> None:
    started = await start_call(client)
    async with console(operator) as desk, citizen(client, started["token"]) as phone:
        result = await phone.call("end_call", {})
        assert result == {"ok": True, "state": "abandoned"}
        removed = await desk.next_event("queue.call_removed", call_id=started["call_id"])
        assert removed["reason"] == "abandoned"
    assert await _transitions(client, started["call_id"]) == [
        (None, "queued"),
        ("queued", "abandoned"),
    ]


async def test_a_page_that_leaves_is_abandoned_after_the_grace(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """The grace runs on the clock: moving it past the grace abandons the call, no sleeping."""
    grace = client.app[SERVICES_KEY].settings.ABANDON_GRACE_SECS
    started = await start_call(client)
    async with citizen(client, started["token"]):
        pass
    background = client.app[SERVICES_KEY].background
    await background.until_scheduled(f"abandon:{started['call_id']}")  # the page has gone
    clock.advance(grace - 1)
    await client.app[SERVICES_KEY].background.drain()
    assert await _transitions(client, started["call_id"]) == [(None, "queued")]
    async with console(operator) as desk:
        clock.advance(1)
        await client.app[SERVICES_KEY].background.drain()
        removed = await desk.next_event("queue.call_removed", call_id=started["call_id"])
    assert removed["reason"] == "abandoned"
    assert await _transitions(client, started["call_id"]) == [
        (None, "queued"),
        ("queued", "abandoned"),
    ]


async def test_a_reload_inside_the_grace_keeps_the_call(client: Client, clock: FrozenClock) -> None:
    grace = client.app[SERVICES_KEY].settings.ABANDON_GRACE_SECS
    started = await start_call(client)
    async with citizen(client, started["token"]):
        pass
    await client.app[SERVICES_KEY].background.until_scheduled(f"abandon:{started['call_id']}")
    async with citizen(client, started["token"]) as phone:
        clock.advance(grace + 1)
        await client.app[SERVICES_KEY].background.drain()
        resumed = await phone.call("resume", {})
        assert resumed["call"]["state"] == "queued"
    assert await _transitions(client, started["call_id"]) == [(None, "queued")]


async def test_two_operators_on_two_nodes_accept_at_once(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Two app instances on one database (two nodes): exactly one wins, the other sees it gone."""
    node_a = await aiohttp_client(create_app(settings, clock))
    node_b = await aiohttp_client(
        create_app(settings.model_copy(update={"NODE_ID": "node-b"}), clock)
    )
    anna = await add_account(node_a, "anna", "operator")
    boris = await add_account(node_a, "boris", "operator")
    await sign_in(node_a, anna, clock)
    await sign_in(node_b, boris, clock)
    for round_ in range(5):
        starter = await another_browser(node_a)
        started = await start_call(starter)
        await starter.close()
        async with console(node_a) as desk_a, console(node_b) as desk_b:
            results = await asyncio.gather(
                desk_a.call("accept", {"call_id": started["call_id"]}),
                desk_b.call("accept", {"call_id": started["call_id"]}),
            )
        winners = [r for r in results if r["ok"]]
        losers = [r for r in results if not r["ok"]]
        assert len(winners) == 1, (round_, results)
        assert losers[0]["error"]["code"] == "call_gone"
        transitions = await _transitions(node_a, started["call_id"])
        assert transitions.count(("queued", "answered")) == 1


async def test_internal_security_calls_are_invisible_to_others(
    client: Client, clock: FrozenClock
) -> None:
    browsers = {}
    for role in ("operator", "supervisor", "internal_security"):
        browser = await another_browser(client)
        await sign_in(browser, await add_account(client, role.replace("_", "-"), role), clock)
        browsers[role] = browser
    try:
        misconduct = await start_call(client, channel="internal_security")
        police = await start_call(client, channel="police")
        async with (
            console(browsers["operator"]) as op,
            console(browsers["supervisor"]) as sup,
            console(browsers["internal_security"]) as sec,
            citizen(client, misconduct["token"]) as phone,
        ):
            for desk, expected in ((op, [police]), (sup, [police]), (sec, [misconduct])):
                listed = await desk.call("queue", {})
                assert [c["call_id"] for c in listed["calls"]] == [e["call_id"] for e in expected]
            await phone.call("location", WARSAW)
            await sec.next_event("location", call_id=misconduct["call_id"])
            for desk in (op, sup):
                refused = await desk.call("accept", {"call_id": misconduct["call_id"]})
                assert refused["error"]["code"] in ("call_gone", "role_forbidden")
                joined = await desk.call("join", {"call_id": misconduct["call_id"]})
                assert joined["error"]["code"] == "call_not_found"
            assert (await sec.call("accept", {"call_id": misconduct["call_id"]}))["ok"]
            await phone.call("chat", {"client_id": "c-secret01", "body": "an officer took a bribe"})
            await sec.next_event("chat.message", call_id=misconduct["call_id"])
            for desk in (op, sup):
                # A round trip on the same socket: anything sent to it before is in by now.
                assert (await desk.call("queue", {}))["ok"]
                leaked = [e for e in desk.seen if e.get("call_id") == misconduct["call_id"]]
                assert leaked == []
    finally:
        for browser in browsers.values():
            await browser.close()


async def test_an_answered_calls_track_goes_only_to_its_watchers(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """Queued: every console of the channel sees the position. Answered: only the call's own."""
    other = await another_browser(client)
    await sign_in(other, await add_account(client, "oleg", "operator"), clock)
    try:
        started = await start_call(client)
        call_id = started["call_id"]
        async with (
            citizen(client, started["token"]) as phone,
            console(operator) as desk,
            console(other) as bystander,
        ):
            await phone.call("location", WARSAW)
            await desk.next_event("location", seq=1)
            await bystander.next_event("location", seq=1)
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            await phone.call("location", {**WARSAW, "lat": 52.23})
            await desk.next_event("location", seq=2)
            marker = await phone.call("chat", {"client_id": "c-marker01", "body": "still here"})
            await desk.next_event("chat.message", seq=marker["seq"])
            assert [e["seq"] for e in desk.received("location")] == [1, 2], "once each"
            assert [e["seq"] for e in bystander.received("location")] == [1]
    finally:
        await other.close()


def _states(reply: dict[str, Any]) -> list[dict[str, str]]:
    """Who is in which state (the wall's since and call are tested in test_wall_figures.py)."""
    return [{"username": o["username"], "state": o["state"]} for o in reply["operators"]]


async def test_operator_states_are_for_the_wall(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    supervisor = await another_browser(client)
    await sign_in(supervisor, await add_account(client, "sonia", "supervisor"), clock)
    try:
        started = await start_call(client)
        async with console(operator) as desk, console(supervisor) as wall:
            refused = await desk.call("operators", {})
            assert refused["error"]["code"] == "role_forbidden"
            assert _states(await wall.call("operators", {})) == [
                {"username": "olga", "state": "available"}
            ]
            assert (await desk.call("accept", {"call_id": started["call_id"]}))["ok"]
            assert _states(await wall.call("operators", {})) == [
                {"username": "olga", "state": "in_call"}
            ]
        await add_account(client, "oskar", "operator")  # no console open, no call
        async with console(supervisor) as wall:
            # Olga's console has closed, but she still holds the call.
            assert _states(await wall.call("operators", {})) == [
                {"username": "olga", "state": "in_call"},
                {"username": "oskar", "state": "offline"},
            ]
    finally:
        await supervisor.close()


async def test_an_operator_transfers_a_call_back_to_the_queue(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """Transfer: the call goes back to its queue for another operator; the caller waits again;
    only the call's own operator may hand it back."""
    assert client.app is not None
    piotr = await another_browser(client)
    await sign_in(piotr, await add_account(client, "piotr", "operator"), clock)
    started = await start_call(client)
    call_id = started["call_id"]
    async with (
        citizen(client, started["token"]) as phone,
        console(operator) as olga,
        console(piotr) as other,
    ):
        assert (await olga.call("accept", {"call_id": call_id}))["ok"]
        refused = await other.call("transfer", {"call_id": call_id})
        assert refused["ok"] is False and refused["error"]["code"] == "call_changed"
        too_long = await olga.call("transfer", {"call_id": call_id, "note": "x" * 256})
        assert too_long["ok"] is False and too_long["error"]["code"] == "invalid"

        done = await olga.call("transfer", {"call_id": call_id, "note": "needs Russian"})
        assert done["ok"], done
        assert done["call"]["state"] == "queued"
        assert (await phone.next_event("call.state", state="transferred"))["call_id"] == call_id
        back = await other.next_event("queue.call_added")
        assert back["call"]["call_id"] == call_id
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"
        # Another operator takes it; the first can no longer act on it.
        assert (await other.call("accept", {"call_id": call_id}))["ok"]
        again = await olga.call("transfer", {"call_id": call_id})
        assert again["ok"] is False
    assert await _transitions(client, call_id) == [
        (None, "queued"),
        ("queued", "answered"),
        ("answered", "transferred"),
        ("transferred", "queued"),
        ("queued", "answered"),
    ]
    await piotr.close()
