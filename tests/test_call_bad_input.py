"""Bad input on the live call: an error event or a refusal at connect; the call goes on and
nothing stored changes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
import socketio
from sqlmodel import col, select

from server.core.clock import FrozenClock
from server.db.models import AuditEntry, Call, ChatMessage, LocationSample
from server.http.keys import SERVICES_KEY
from signaling.namespace import EVENT_BURST
from signaling.payloads import MAX_CHAT_CHARS, MAX_SDP_BYTES
from tests.sockets import base_url, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

GOOD_FIX = {"lat": 43.238, "lon": 76.945, "accuracy": 20.0, "timestamp": 1_790_000_000_000.0}


async def _stored(client: Client) -> dict[str, Any]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        calls = (await session.exec(select(Call))).all()
        return {
            "calls": sorted((c.id, c.state, c.operator_id, c.last_seq) for c in calls),
            "chat": len((await session.exec(select(ChatMessage))).all()),
            "locations": len((await session.exec(select(LocationSample))).all()),
        }


BAD_CITIZEN_EVENTS = [
    ("location", {"lat": 91.0, "lon": 10.0, "timestamp": 1.0}, "invalid"),
    ("location", {"lat": 10.0, "lon": -180.5, "timestamp": 1.0}, "invalid"),
    ("location", {"lat": "north", "lon": 10.0, "timestamp": 1.0}, "invalid"),
    ("location", {"lat": None, "lon": 10.0, "timestamp": 1.0}, "invalid"),
    ("location", "52.1,21.0", "invalid"),
    ("chat", {"client_id": "c-12345678", "body": "x" * (MAX_CHAT_CHARS + 1)}, "invalid"),
    ("chat", {"client_id": "c-12345678", "body": ""}, "invalid"),
    ("chat", {"client_id": "bad id!", "body": "hi"}, "invalid"),
    # Each of these was an "internal" error before: a date past the year 9999, a sequence number
    # past 64 bits (the database's), a NUL byte (PostgreSQL text refuses it).
    ("location", {"lat": 10.0, "lon": 10.0, "timestamp": 1e300}, "invalid"),
    ("resume", {"last_seq": 2**63}, "invalid"),
    ("chat", {"client_id": "c-12345678", "body": "nul \x00 byte"}, "invalid"),
    ("media_offer", {"type": "offer", "sdp": "hello, this is not SDP"}, "invalid"),
    (
        "media_offer",
        {"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * (MAX_SDP_BYTES // 5)},
        "invalid",
    ),
    ("media_offer", {"type": "answer", "sdp": "v=0\r\n"}, "invalid"),
    ("accept", {"call_id": "x"}, "unknown_event"),
    ("queue", {}, "unknown_event"),
    ("end_call", {"call_id": "someone-elses"}, "invalid"),
]


@pytest.mark.parametrize(("name", "payload", "code"), BAD_CITIZEN_EVENTS)
async def test_bad_citizen_events_get_an_error_event(
    client: Client, name: str, payload: Any, code: str
) -> None:
    started = await start_call(client)
    other = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        await phone.call("location", GOOD_FIX)
        before = await _stored(client)
        reply = await phone.call(name, payload)
        assert reply["ok"] is False
        assert reply["error"]["code"] == code
        error = await phone.next_error()
        assert error["code"] == code
        assert error["event"] == name
        assert await _stored(client) == before
        # The connection and the call go on.
        assert (await phone.call("location", GOOD_FIX))["ok"]
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"
    assert other["call_id"] != started["call_id"]


async def test_an_offer_for_someone_elses_call(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    started = await start_call(client)
    rival = await another_browser(client)
    await sign_in(rival, await add_account(client, "rita", "operator"), clock)
    try:
        async with console(operator) as desk, console(rival) as other_desk:
            assert (await desk.call("accept", {"call_id": started["call_id"]}))["ok"]
            before = await _stored(client)
            sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            for name, payload in (
                ("media_offer", {"call_id": started["call_id"], "type": "offer", "sdp": sdp}),
                ("chat", {"call_id": started["call_id"], "client_id": "r-00000001", "body": "hi"}),
                ("snapshot", {"call_id": started["call_id"]}),
                ("end_call", {"call_id": started["call_id"], "disposition": "prank"}),
                ("join", {"call_id": started["call_id"]}),
            ):
                reply = await other_desk.call(name, payload)
                assert reply["error"]["code"] == "not_your_call", name
                assert (await other_desk.next_error())["event"] == name
            unknown = await other_desk.call("join", {"call_id": "no-such-call"})
            assert unknown["error"]["code"] == "call_not_found"
            assert await _stored(client) == before
    finally:
        await rival.close()


async def test_connects_without_a_token_or_from_elsewhere_are_refused(client: Client) -> None:
    started = await start_call(client)
    url = base_url(client)
    attempts: list[tuple[Any, dict[str, str]]] = [
        (None, {"Origin": url}),
        ({"token": "x" * 40}, {"Origin": url}),
        ({"token": started["token"]}, {"Origin": "https://evil.example"}),
        ({"token": started["token"]}, {}),
    ]
    for auth, headers in attempts:
        async with aiohttp.ClientSession() as http:
            sio = socketio.AsyncClient(reconnection=False, http_session=http)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await sio.connect(
                    url,
                    namespaces=["/citizen"],
                    transports=["websocket"],
                    auth=auth,
                    headers=headers,
                    wait_timeout=5,
                )
            await sio.disconnect()


async def test_a_console_needs_a_staff_session(client: Client) -> None:
    url = base_url(client)
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sio.connect(
                url,
                namespaces=["/console"],
                transports=["websocket"],
                headers={"Origin": url, "Cookie": "lifeline_session=forged"},
                wait_timeout=5,
            )
        await sio.disconnect()


async def test_an_ended_call_refuses_its_token(client: Client) -> None:
    started = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        assert (await phone.call("end_call", {}))["state"] == "abandoned"
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with citizen(client, started["token"]):
            pass


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "fire"},
        {"mode": "hologram"},
        {"language": "de"},
        {"channel": 1},
        {"surprise": True},
    ],
)
async def test_bad_call_requests(client: Client, body: dict[str, Any]) -> None:
    before = await _stored(client)
    response = await client.post("/api/calls", json=body)
    assert 400 <= response.status < 500
    assert (await response.json())["error"]["code"] in ("invalid", "invalid_language")
    assert await _stored(client) == before


async def test_a_flooding_page_is_slowed_and_other_calls_are_not(
    client: Client, clock: FrozenClock
) -> None:
    """Past its burst, a socket's requests of one kind are refused before any work until the
    allowance comes back with time; another caller's chat is untouched meanwhile."""
    flooder, other = await start_call(client), await start_call(client)
    async with citizen(client, flooder["token"]) as phone, citizen(client, other["token"]) as calm:
        replies = [
            await phone.call("chat", {"client_id": f"flood-{n:04d}", "body": "spam"})
            for n in range(EVENT_BURST + 5)
        ]
        assert all(r["ok"] for r in replies[:EVENT_BURST])
        assert {r["error"]["code"] for r in replies[EVENT_BURST:]} == {"rate_limited"}
        assert (await calm.call("chat", {"client_id": "calm-0001", "body": "help"}))["ok"]
        assert (await phone.call("location", GOOD_FIX))["ok"]  # another kind: its own allowance
        clock.advance(1.0)  # five more come back
        assert (await phone.call("chat", {"client_id": "flood-late", "body": "ok now"}))["ok"]
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        stored = (
            await session.exec(
                select(ChatMessage).where(col(ChatMessage.call_id) == flooder["call_id"])
            )
        ).all()
    assert len(stored) == EVENT_BURST + 1  # the refused ones were never stored


async def test_a_flooding_callers_call_is_marked_and_queued_after_the_others(
    client: Client, operator: Client
) -> None:
    """The flooder is still a caller: its call stays in the queue, marked "flooding" (once, in
    the audit chain too) and behind calls that behaved, for an operator to judge."""
    flooder, other = await start_call(client), await start_call(client)
    async with console(operator) as desk, citizen(client, flooder["token"]) as phone:
        for n in range(EVENT_BURST + 3):
            await phone.call("chat", {"client_id": f"flood-{n:04d}", "body": "spam"})
        # The caller's page arriving is an update too (its presence); the mark is the one after.
        updated = await desk.next_event("queue.call_updated")
        while not updated["call"]["marks"]:
            assert updated["call"]["call_id"] == flooder["call_id"]
            updated = await desk.next_event("queue.call_updated")
        assert updated["call"]["call_id"] == flooder["call_id"]
        assert updated["call"]["marks"] == ["flooding"]
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"  # not ended
        queue = (await desk.call("queue", {}))["calls"]
        assert [c["call_id"] for c in queue] == [other["call_id"], flooder["call_id"]]
        assert [c["marks"] for c in queue] == [[], ["flooding"]]
    marked_updates = [e for e in desk.received("queue.call_updated") if e["call"]["marks"]]
    assert len(marked_updates) == 1  # marked once, not per refusal
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        marked = (
            await session.exec(select(AuditEntry).where(col(AuditEntry.action) == "call_marked"))
        ).all()
    assert [m.subject for m in marked] == [f"call:{flooder['call_id']}"]
