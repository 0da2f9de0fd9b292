"""The caller's receipt (issue 12): a call is sealed when it ends, over its whole record; the
caller fetches the receipt by their call token; anyone checks one and learns only whether it
matches. Real app, real Socket.IO clients, a real aiortc caller where a recording is needed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from config import Settings
from server.actions import call_seal
from server.core.clock import FrozenClock
from server.db.models import (
    AuditEntry,
    Call,
    CallTransition,
    ChatMessage,
    LocationSample,
)
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.evidence_calls import stored_segments
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, citizen, console, refused_offer, start_call
from tests.staff import Client, add_account, another_browser, sign_in

MEDIA_TIMEOUT_SECS = 20.0
RATE_LIMIT = 8


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A low check allowance, so that the test reaches it in a few requests."""
    return settings.model_copy(update={"RECEIPT_CHECK_RATE_LIMIT": f"{RATE_LIMIT}/minute"})


async def _answered_call_with_chat_and_location(
    client: Client, operator: Client, clock: FrozenClock, **body: Any
) -> dict[str, Any]:
    started = await start_call(client, mode="text", **body)
    async with console(operator) as desk, citizen(client, started["token"]) as phone:
        assert (await desk.call("accept", {"call_id": started["call_id"]}))["ok"]
        assert (await phone.call("chat", {"client_id": "c-receipt1", "body": "Help, a fire"}))["ok"]
        reply = {"call_id": started["call_id"], "body": "Coming", "client_id": "o-reply1"}
        assert (await desk.call("chat", reply))["ok"]
        fix = {"lat": 52.2297, "lon": 21.0122, "accuracy": 12.0, "timestamp": time.time() * 1000}
        assert (await phone.call("location", fix))["ok"]
        clock.advance(5)
        ended = await phone.call("end_call", {})
        assert ended["state"] == "ended", ended
    return started


async def _receipt(client: Client, call_id: str, token: str) -> Any:
    return await client.get(f"/api/calls/{call_id}/receipt", headers={"X-Call-Token": token})


async def _check(client: Client, call_id: str, seal: str) -> Any:
    return await client.post("/api/receipts/check", json={"call_id": call_id, "seal": seal})


def _changed(seal: str, at: int = 10) -> str:
    """The seal with one hex digit changed."""
    return seal[:at] + ("0" if seal[at] != "0" else "1") + seal[at + 1 :]


async def _sealed_entries(client: Client, call_id: str) -> list[AuditEntry]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return list(
            (
                await session.exec(
                    select(AuditEntry).where(
                        col(AuditEntry.subject) == f"call:{call_id}",
                        col(AuditEntry.action) == "call_sealed",
                    )
                )
            ).all()
        )


async def test_an_ended_call_is_sealed_over_its_record_and_the_caller_gets_the_receipt(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    started = await _answered_call_with_chat_and_location(client, operator, clock)
    call_id, token = started["call_id"], started["token"]
    response = await _receipt(client, call_id, token)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    receipt = await response.json()
    assert set(receipt) == {
        "call_id",
        "started_at",
        "answered_at",
        "ended_at",
        "sealed_at",
        "seal",
        "form",
    }
    assert receipt["call_id"] == call_id
    assert receipt["started_at"] == started["created_at"].replace("+00:00", ".000000+00:00")

    entries = await _sealed_entries(client, call_id)
    assert len(entries) == 1
    data = json.loads(entries[0].data)
    assert data == {
        "seal": receipt["seal"],
        "form": call_seal.FORM,
        "segments": [],
        "media": "none",
    }
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        record = await call_seal.call_record(session, call_id)
        assert record is not None
        # The record holds what happened, and the seal is its hash.
        assert [m["body"] for m in record["chat"]] == ["Help, a fire", "Coming"]
        assert [(s["lat"], s["lon"]) for s in record["locations"]] == [(52.2297, 21.0122)]
        assert [(t["from"], t["to"]) for t in record["transitions"]] == [
            (None, "queued"),
            ("queued", "answered"),
            ("answered", "ended"),
        ]
        assert call_seal.seal_of(record) == receipt["seal"]
        assert await call_seal.recompute(session, entries[0]) == receipt["seal"]
    assert (await services.audit.verify()).ok

    # Asked again, the same receipt; ending again (a disposition afterwards) seals nothing anew.
    assert (await (await _receipt(client, call_id, token)).json())["seal"] == receipt["seal"]
    async with console(operator) as desk:
        again = await desk.call("end_call", {"call_id": call_id, "disposition": "dispatched"})
        assert again["ok"], again
    assert len(await _sealed_entries(client, call_id)) == 1


@pytest.mark.parametrize(
    "change",
    [
        update(ChatMessage).where(col(ChatMessage.seq) == 1).values(body="Help, a firm"),
        update(LocationSample).values(lat=52.2298),
        update(CallTransition).where(col(CallTransition.to_state) == "answered").values(actor="x"),
    ],
    ids=["chat", "location", "transition"],
)
async def test_a_changed_record_no_longer_matches_its_seal(
    client: Client, operator: Client, clock: FrozenClock, change: Any
) -> None:
    started = await _answered_call_with_chat_and_location(client, operator, clock)
    assert client.app is not None
    db = client.app[SERVICES_KEY].db
    async with db.session() as session:
        entry = (await _sealed_entries(client, started["call_id"]))[0]
        assert await call_seal.recompute(session, entry) == call_seal.seal_in(entry)
        await session.exec(change)
        await session.commit()
    async with db.session() as session:
        assert await call_seal.recompute(session, entry) != call_seal.seal_in(entry)


async def test_the_seal_covers_the_recording_that_closes_at_the_end(
    client: Client, operator: Client
) -> None:
    """A video call's last segment is muxed, hashed and stored as the call ends: the seal made
    after the media node's answer lists it and covers its hash."""
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    started = await start_call(client)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, started["token"]) as phone:
            peers.append(await citizen_peer(answer_via(phone)))
            await wait_until(
                lambda: hub.stats(call_id)["citizen"]["video_received"] > 30,
                MEDIA_TIMEOUT_SECS,
                "the citizen's video at the server",
            )
            # Nothing is stored while the segment is open: the seal has to wait for it.
            assert await stored_segments(client, call_id) == []
            ended = await phone.call("end_call", {})
            assert ended["state"] == "abandoned", ended
            assert hub.session_count == 0
            # The page's socket is still up: an offer it sends now (a re-offer that crossed the
            # end) starts no media and no segment the seal would not cover.
            refusals: list[dict[str, Any]] = []
            with pytest.raises(RuntimeError, match="refused as expected"):
                peers.append(await citizen_peer(refused_offer(phone, refusals)))
            assert [refusal["code"] for refusal in refusals] == ["call_ended"]
            assert hub.session_count == 0
    finally:
        for peer in peers:
            await peer.close()
    entry = (await _sealed_entries(client, call_id))[0]
    data = json.loads(entry.data)
    stored = await stored_segments(client, call_id)
    async with client.app[SERVICES_KEY].db.session() as session:
        record = await call_seal.call_record(session, call_id)
    assert [row.segment for row in stored] == data["segments"] == [1]
    assert data["media"] == "closed"
    assert record is not None
    assert [r["sha256"] for r in record["recordings"]] == [stored[0].sha256]
    receipt = await (await _receipt(client, call_id, started["token"])).json()
    assert receipt["seal"] == data["seal"] == call_seal.seal_of(record)
    assert (await (await _check(client, call_id, receipt["seal"])).json()) == {"valid": True}


async def test_the_receipt_is_for_the_calls_own_token_once_it_has_ended(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    live = await start_call(client, mode="text")
    other = await start_call(client, mode="text")
    pending = await _receipt(client, live["call_id"], live["token"])
    assert pending.status == 409
    assert (await pending.json())["error"]["code"] == "receipt_pending"
    assert pending.headers["Retry-After"] == "1"
    for token in ("", "not-a-token", other["token"]):
        refused = await _receipt(client, live["call_id"], token)
        assert refused.status == 401, token
        assert (await refused.json())["error"]["code"] == "bad_call_token"
    missing = await _receipt(client, str(uuid.uuid4()), live["token"])
    assert missing.status == 401


async def test_the_check_says_matches_or_not_and_nothing_else(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    police = await _answered_call_with_chat_and_location(client, operator, clock)
    receipt = await (await _receipt(client, police["call_id"], police["token"])).json()
    seal = receipt["seal"]

    good = await _check(client, police["call_id"], seal)
    assert good.status == 200
    assert good.headers["Cache-Control"] == "no-store"
    assert await good.json() == {"valid": True}
    # One changed character, anywhere: refused.
    for at in (0, 31, 63):
        assert await (await _check(client, police["call_id"], _changed(seal, at))).json() == {
            "valid": False
        }
    # This seal given with a live (unsealed) call's id, or with one that never was: the very
    # same answer, byte for byte.
    live = await start_call(client, mode="text")
    answers = [
        await (await _check(client, call_id, seal)).read()
        for call_id in (live["call_id"], str(uuid.uuid4()))
    ]
    assert answers == [b'{"valid": false}'] * 2


async def test_an_internal_security_receipt_checks_like_any_other(
    client: Client, clock: FrozenClock
) -> None:
    """The public check never reads the channel: a misconduct caller's receipt is confirmed to
    its holder; a wrong seal for that call is the same "does not match" as for no call."""
    browser = await another_browser(client)
    await sign_in(browser, await add_account(client, "ivan", "internal_security"), clock)
    try:
        started = await _answered_call_with_chat_and_location(
            client, browser, clock, channel="internal_security"
        )
    finally:
        await browser.close()
    receipt = await (await _receipt(client, started["call_id"], started["token"])).json()
    assert await (await _check(client, started["call_id"], receipt["seal"])).json() == {
        "valid": True
    }
    wrong = await (await _check(client, started["call_id"], _changed(receipt["seal"]))).read()
    assert wrong == b'{"valid": false}'


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "malformed_json"),
        ([], 400, "invalid_receipt"),
        ({}, 400, "invalid_receipt"),
        ({"call_id": "x", "seal": "0" * 64}, 400, "invalid_receipt"),
        ({"call_id": str(uuid.uuid4()), "seal": "0" * 63}, 400, "invalid_receipt"),
        ({"call_id": str(uuid.uuid4()), "seal": "A" * 64}, 400, "invalid_receipt"),
        ({"call_id": str(uuid.uuid4()), "seal": 5}, 400, "invalid_receipt"),
        ({"call_id": str(uuid.uuid4()), "seal": "0" * 64, "more": 1}, 400, "invalid_receipt"),
        ({"call_id": str(uuid.uuid4()).upper(), "seal": "0" * 64}, 400, "invalid_receipt"),
    ],
)
async def test_a_bad_check_is_a_clear_4xx(
    client: Client, body: Any, status: int, code: str
) -> None:
    if isinstance(body, str):
        response = await client.post(
            "/api/receipts/check", data=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = await client.post("/api/receipts/check", json=body)
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]


async def test_a_check_as_a_form_or_by_get_is_refused(client: Client) -> None:
    form = await client.post("/api/receipts/check", data={"call_id": "x", "seal": "y"})
    assert form.status == 415
    assert (await form.json())["error"]["code"] == "unsupported_media_type"
    got = await client.get("/api/receipts/check")
    assert got.status == 405


async def test_checks_are_rate_limited_per_client(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    started = await _answered_call_with_chat_and_location(client, operator, clock)
    seal = (await (await _receipt(client, started["call_id"], started["token"])).json())["seal"]
    assert client.app is not None
    entries_before = (await client.app[SERVICES_KEY].audit.verify()).entries
    results = await asyncio.gather(
        *(_check(client, str(uuid.uuid4()), seal) for _ in range(RATE_LIMIT))
    )
    assert [r.status for r in results] == [200] * RATE_LIMIT
    refused = await _check(client, started["call_id"], seal)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    # The caller's own receipt is not a check: still served; nothing stored changed.
    assert (await _receipt(client, started["call_id"], started["token"])).status == 200
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.ok
    assert report.entries == entries_before
    assert len(await _sealed_entries(client, started["call_id"])) == 1


async def test_a_call_whose_node_stopped_before_sealing_is_sealed_when_its_receipt_is_asked(
    client: Client, clock: FrozenClock
) -> None:
    """The end committed (as do_finish's transaction leaves it) and the node stopped before
    the seal: nobody seals it at once; asked for its receipt after the grace, it is sealed
    then, marked late, over the record as it stands."""
    started = await start_call(client, mode="text")
    call_id = started["call_id"]
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        await session.exec(
            update(Call)
            .where(col(Call.id) == call_id)
            .values(state="abandoned", ended_at=clock.now())
        )
        await session.commit()
    pending = await _receipt(client, call_id, started["token"])
    assert pending.status == 409
    assert await _sealed_entries(client, call_id) == []
    clock.advance(call_seal.LATE_SEAL_AFTER_SECS + 1)
    response = await _receipt(client, call_id, started["token"])
    assert response.status == 200, await response.text()
    receipt = await response.json()
    [entry] = await _sealed_entries(client, call_id)
    data = json.loads(entry.data)
    assert data == {
        "seal": receipt["seal"],
        "form": call_seal.FORM,
        "segments": [],
        "media": "none",
        "late": True,
    }
    async with services.db.session() as session:
        assert await call_seal.recompute(session, entry) == receipt["seal"]
    assert await (await _check(client, call_id, receipt["seal"])).json() == {"valid": True}
