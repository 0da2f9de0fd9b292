"""Transfers and conferences (issue 13, "Routing"), over real Socket.IO on a real database: a
cold transfer nobody takes goes back to the queue first, with its note; a warm one names both
operators in the transitions; a supervisor added to a live call gets its picture; bad input is
refused with a code and changes nothing stored. The frozen clock runs the offers' timers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from config import Settings
from server.actions.transfers import offer_timer
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import CallOffer, CallParticipant, CallTransition, User
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.conftest import ClientFactory
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

# 7-9 s alone in scale-out; over 20 s once, with both passes running at load 17.
MEDIA_TIMEOUT_SECS = 40.0


async def _transitions(client: Client, call_id: str) -> list[tuple[str | None, str, str, str]]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(CallTransition)
                .where(col(CallTransition.call_id) == call_id)
                .order_by(col(CallTransition.id))
            )
        ).all()
    return [(r.from_state, r.to_state, r.actor, r.reason) for r in rows]


async def _offers(client: Client, call_id: str) -> list[tuple[str, str, str]]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(CallOffer)
                .where(col(CallOffer.call_id) == call_id)
                .order_by(col(CallOffer.id))
            )
        ).all()
    return [(r.kind, r.state, r.note) for r in rows]


async def _stays(client: Client, call_id: str) -> list[dict[str, Any]]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(CallParticipant, User.username)
                .join(User, col(User.id) == col(CallParticipant.user_id))
                .where(col(CallParticipant.call_id) == call_id)
                .order_by(col(CallParticipant.id))
            )
        ).all()
    return [
        {"user": name, "by": row.joined_by, "joined": row.joined_at, "left": row.left_at}
        for row, name in rows
    ]


async def _added(socket: Any, call_id: str) -> dict[str, Any]:
    """The next queue.call_added of that call (others' are passed over)."""
    while True:
        added: dict[str, Any] = await socket.next_event("queue.call_added")
        if added["call"]["call_id"] == call_id:
            return added


async def _browser(client: Client, name: str, role: str, clock: FrozenClock) -> Client:
    browser = await another_browser(client)
    await sign_in(browser, await add_account(client, name, role), clock)
    return browser


async def test_a_cold_transfer_not_taken_in_time_is_back_in_the_queue_first_with_its_note(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    piotr = await _browser(client, "piotr", "operator", clock)
    try:
        first = await start_call(client)
        call_id = first["call_id"]
        async with (
            citizen(client, first["token"]) as phone,
            console(operator) as olga,
            console(piotr) as other,
        ):
            assert (await olga.call("accept", {"call_id": call_id}))["ok"]
            clock.advance(5)
            later = await start_call(client)  # a caller who waits meanwhile
            note = "Caller speaks Polish; burglary in progress, 3rd floor"
            sent = await olga.call(
                "transfer",
                {"call_id": call_id, "kind": "cold", "target_user": "piotr", "note": note},
            )
            assert sent["ok"], sent
            assert sent["call"]["state"] == "transferred"
            offer = await other.next_event("transfer.offer")
            assert (offer["kind"], offer["by"], offer["note"]) == ("cold", "olga", note)
            assert offer["call"]["call_id"] == call_id
            assert (await phone.next_event("call.state", state="transferred"))["call_id"] == call_id
            # While it is offered, the first operator is off it and no one else may take it.
            taken = await other.call("accept", {"call_id": call_id})
            assert taken["error"]["code"] == "call_gone"

            await services.background.until_scheduled(offer_timer(sent["offer_id"]))
            clock.advance(services.settings.RING_SECS)
            back = await _added(olga, call_id)
            assert back["call"]["transfer_note"] == note
            expired = await other.next_event("transfer.update")
            assert (expired["state"], expired["to"]) == ("expired", "piotr")
            queued = [c for c in (await other.call("queue", {}))["calls"] if c["state"] == "queued"]
            assert [c["call_id"] for c in queued] == [call_id, later["call_id"]]
            assert queued[0]["transfer_note"] == note
            late = await other.call("offer_accept", {"offer_id": sent["offer_id"]})
            assert late["error"]["code"] == "offer_gone"
            assert (await phone.call("resume", {}))["call"]["state"] == "queued"
        assert await _transitions(client, call_id) == [
            (None, "queued", "citizen", ""),
            ("queued", "answered", "olga", ""),
            ("answered", "transferred", "olga", f"to piotr: {note}"),
            ("transferred", "queued", "system:transfer-expired", f"expired: {note}"),
        ]
        assert await _offers(client, call_id) == [("cold", "expired", note)]
    finally:
        await piotr.close()


async def test_a_warm_transfer_keeps_the_first_until_the_second_joins(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    piotr = await _browser(client, "piotr", "operator", clock)
    try:
        started = await start_call(client)
        call_id = started["call_id"]
        async with (
            citizen(client, started["token"]) as phone,
            console(operator) as olga,
            console(piotr) as other,
        ):
            assert (await olga.call("accept", {"call_id": call_id}))["ok"]
            said = {"client_id": "citizen-0001", "body": "Someone is at my door"}
            assert (await phone.call("chat", said))["ok"]
            fix = {
                "lat": 52.2297,
                "lon": 21.0122,
                "accuracy": 12,
                "timestamp": clock.now().timestamp() * 1000,
            }
            assert (await phone.call("location", fix))["ok"]
            targets = await olga.call("transfer_targets", {"call_id": call_id})
            assert {"username": "piotr", "role": "operator", "state": "available"} in targets[
                "people"
            ]
            assert targets["queues"] == ["police"]
            sent = await olga.call(
                "transfer",
                {"call_id": call_id, "kind": "warm", "target_user": "piotr", "note": "PL"},
            )
            assert sent["ok"] and sent["call"]["state"] == "answered", sent
            offer = await other.next_event("transfer.offer", kind="warm")
            again = await olga.call(
                "transfer", {"call_id": call_id, "kind": "warm", "target_user": "piotr"}
            )
            assert again["error"]["code"] == "offer_pending"
            early = await olga.call("transfer_complete", {"call_id": call_id})
            assert early["error"]["code"] == "offer_pending"

            joined = await other.call("offer_accept", {"offer_id": offer["offer_id"]})
            assert joined["ok"] and joined["call"]["operator"] == "olga", joined
            assert (await olga.next_event("transfer.update", state="accepted"))["to"] == "piotr"
            people = await phone.next_event("call.people", roles=["operator", "operator"])
            assert people["call_id"] == call_id
            caught_up = await other.call("join", {"call_id": call_id, "last_seq": 0})
            assert [e["type"] for e in caught_up["events"]] == ["chat.message", "location"]
            assert (
                await other.call(
                    "chat", {"call_id": call_id, "client_id": "piotr-0001", "body": "Dzień dobry"}
                )
            )["ok"]
            # Only the call's operator ends it or hands it on meanwhile.
            refused = await other.call("end_call", {"call_id": call_id, "disposition": "prank"})
            assert refused["error"]["code"] == "not_your_call"

            clock.advance(30)
            done = await olga.call("transfer_complete", {"call_id": call_id})
            assert done["ok"] and done["call"]["operator"] == "piotr", done
            state = await phone.next_event("call.state", operator="piotr")
            assert state["state"] == "answered"
            assert (await phone.next_event("call.people", roles=["operator"]))["call_id"] == call_id
            mine = await olga.call(
                "chat", {"call_id": call_id, "client_id": "olga-00009", "body": "x"}
            )
            assert mine["error"]["code"] == "not_your_call"
        transitions = await _transitions(client, call_id)
        assert transitions[1:] == [
            ("queued", "answered", "olga", ""),
            ("answered", "transferred", "olga", "to piotr: PL"),
            ("transferred", "answered", "piotr", ""),
        ]
        stays = await _stays(client, call_id)
        assert [(s["user"], s["by"]) for s in stays] == [("olga", "answered"), ("piotr", "warm")]
        assert stays[0]["left"] is not None and stays[1]["left"] is None
        assert (stays[0]["left"] - stays[1]["joined"]).total_seconds() == 30
    finally:
        await piotr.close()


async def test_a_supervisor_added_to_a_live_call_gets_its_picture_and_is_stored(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    sara = await _browser(client, "sara", "supervisor", clock)
    peers: list[MediaPeer] = []
    try:
        started = await start_call(client)
        call_id = started["call_id"]
        async with (
            citizen(client, started["token"]) as phone,
            console(operator) as olga,
            console(sara) as wall,
        ):
            peers.append(await citizen_peer(answer_via(phone)))
            assert (await olga.call("accept", {"call_id": call_id}))["ok"]
            peers.append(await subscriber_peer(answer_via(olga, call_id=call_id), talk=True))
            # Before she is added, a supervisor's media needs a monitor (the wall's path).
            offer_first = await wall.call(
                "media_offer",
                {"call_id": call_id, "type": "offer", "sdp": "v=0\r\ns=-\r\nt=0 0\r\n"},
            )
            assert offer_first["error"]["code"] == "not_monitoring"
            sent = await olga.call(
                "transfer", {"call_id": call_id, "kind": "conference", "target_user": "sara"}
            )
            assert sent["ok"], sent
            offer = await wall.next_event("transfer.offer", kind="conference")
            clock.advance(3)
            assert (await wall.call("offer_accept", {"offer_id": offer["offer_id"]}))["ok"]
            people = await phone.next_event("call.people", roles=["operator", "supervisor"])
            assert people["call_id"] == call_id
            guest = await subscriber_peer(answer_via(wall, call_id=call_id), talk=True)
            peers.append(guest)
            await wait_until(
                lambda: guest.received.video_frames > 30 and guest.received.audio_frames > 30,
                MEDIA_TIMEOUT_SECS,
                "the caller's picture and voice at the supervisor",
            )
            talking = [s for s in hub.stats(call_id)["subscribers"].values() if s["talk"]]
            assert len(talking) == 2  # the operator and the supervisor may both speak
            clock.advance(40)
            assert (await wall.call("leave_call", {"call_id": call_id}))["ok"]
            assert (await phone.next_event("call.people", roles=["operator"]))["call_id"] == call_id
            assert (await olga.call("end_call", {"call_id": call_id, "disposition": "dispatched"}))[
                "ok"
            ]
        stays = await _stays(client, call_id)
        assert [(s["user"], s["by"]) for s in stays] == [
            ("olga", "answered"),
            ("sara", "conference"),
        ]
        assert (stays[1]["left"] - stays[1]["joined"]).total_seconds() == 40
        assert stays[0]["left"] is not None  # the call's end closed the operator's stay
    finally:
        for peer in peers:
            await peer.close()
        await sara.close()


async def test_bad_transfers_are_refused_with_a_code_and_change_nothing(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    piotr = await _browser(client, "piotr", "operator", clock)
    pavel = await _browser(client, "pavel", "operator", clock)
    await add_account(client, "oskar", "operator")  # no console open
    await add_account(client, "dmitri", "operator")
    async with services.db.session() as session:
        await session.exec(update(User).where(col(User.username) == "dmitri").values(disabled=True))
        await session.commit()
    try:
        started = await start_call(client)
        call_id = started["call_id"]
        async with (
            citizen(client, started["token"]),
            console(operator) as olga,
            console(piotr) as other,
            console(pavel) as third,
        ):
            assert (await olga.call("accept", {"call_id": call_id}))["ok"]
            before = (await _transitions(client, call_id), await _offers(client, call_id))

            async def refused(socket: Any, body: dict[str, Any], code: str) -> None:
                reply = await socket.call("transfer", {"call_id": call_id, **body})
                assert reply["ok"] is False and reply["error"]["code"] == code, (body, reply)
                assert (
                    await _transitions(client, call_id),
                    await _offers(client, call_id),
                ) == before

            await refused(olga, {"kind": "warm", "target_user": "nobody"}, "target_not_found")
            await refused(olga, {"kind": "cold", "target_user": "dmitri"}, "target_disabled")
            await refused(olga, {"kind": "cold", "target_user": "oskar"}, "target_offline")
            await refused(
                olga, {"kind": "cold", "target_channel": "internal_security"}, "target_forbidden"
            )
            await refused(olga, {"kind": "warm", "target_user": "olga"}, "target_forbidden")
            await refused(other, {"kind": "cold", "target_user": "pavel"}, "not_your_call")
            await refused(
                olga, {"kind": "cold", "target_user": "piotr", "note": "x" * 256}, "invalid"
            )
            await refused(olga, {"kind": "sideways", "target_user": "piotr"}, "invalid")

            sent = await olga.call(
                "transfer", {"call_id": call_id, "kind": "warm", "target_user": "piotr"}
            )
            assert sent["ok"], sent
            offer = await other.next_event("transfer.offer")
            after_offer = await _offers(client, call_id)
            elsewhere = await third.call("offer_accept", {"offer_id": offer["offer_id"]})
            assert elsewhere["error"]["code"] == "offer_not_found"
            decline = await third.call("offer_decline", {"offer_id": offer["offer_id"]})
            assert decline["error"]["code"] == "offer_not_found"
            assert await _offers(client, call_id) == after_offer == [("warm", "offered", "")]
            # No hand-back to the queue while the offer is open, by name or not.
            for body in ({}, {"kind": "cold", "target_channel": "police"}):
                back = await olga.call("transfer", {"call_id": call_id, **body})
                assert back["error"]["code"] == "offer_pending", back
            assert await _transitions(client, call_id) == before[0]
            assert (await other.call("offer_accept", {"offer_id": offer["offer_id"]}))["ok"]
            twice = await other.call("offer_accept", {"offer_id": offer["offer_id"]})
            assert twice["error"]["code"] == "offer_gone"
            assert await _offers(client, call_id) == [("warm", "accepted", "")]
            assert [s["user"] for s in await _stays(client, call_id)] == ["olga", "piotr"]
            # The first keeps it after all: the target leaves the call.
            assert (await olga.call("transfer_cancel", {"call_id": call_id}))["ok"]
            assert (await other.next_event("transfer.update", state="cancelled"))["by"] == "olga"
            assert await _offers(client, call_id) == [("warm", "cancelled", "")]
            stays = await _stays(client, call_id)
            assert stays[1]["left"] is not None and stays[0]["left"] is None
        assert await _transitions(client, call_id) == before[0]
    finally:
        await piotr.close()
        await pavel.close()


async def test_an_offer_left_by_a_node_that_died_is_settled_by_the_next_to_start(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """The offer is a row, not the node's timer: node A offers a call cold and goes away
    before the offer runs out (its timer dies with it); node B, starting after that moment,
    settles it at once: the call is back in the queue, not stranded as 'transferred'."""
    node_a = await aiohttp_client(create_app(settings, clock))
    olga = await another_browser(node_a)
    piotr = await another_browser(node_a)
    await sign_in(olga, await add_account(node_a, "olga", "operator"), clock)
    await sign_in(piotr, await add_account(node_a, "piotr", "operator"), clock)
    started = await start_call(node_a)
    call_id = started["call_id"]
    async with console(olga) as desk, console(piotr) as other:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        sent = await desk.call(
            "transfer", {"call_id": call_id, "kind": "cold", "target_user": "piotr"}
        )
        assert sent["ok"], sent
        await other.next_event("transfer.offer")
    await olga.close()
    await piotr.close()
    await node_a.close()  # its timers are cancelled with it
    clock.advance(settings.RING_SECS + 1)
    node_b = await aiohttp_client(
        create_app(settings.model_copy(update={"NODE_ID": "node-b"}), clock)
    )
    assert node_b.app is not None
    services = node_b.app[SERVICES_KEY]
    clock.advance(0)  # the re-armed timer, already due
    await services.background.drain()
    moves = await _transitions(node_b, call_id)
    assert moves[-1][:3] == ("transferred", "queued", "system:transfer-expired")
    assert await _offers(node_b, call_id) == [("cold", "expired", "")]
