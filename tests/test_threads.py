"""Message threads without a call: a citizen's thread by its token, its messages stored before
they are sent (numbered, a resend stored once), photos and clips kept as sent with their hash,
claimed by exactly one operator, closed with a disposition; bad input changes nothing stored."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from PIL import Image
from sqlmodel import col, select

from config import Settings
from server.actions.custody import Custody, verify_custody
from server.core.clock import FrozenClock
from server.db.models import AuditEntry, MessageThread, ThreadMessage
from server.http.keys import SERVICES_KEY
from tests.clips import html_named_mp4, make_clip, truncated_mp4, zip_named_mp4
from tests.sockets import base_url, connect, console
from tests.staff import Client, add_account, another_browser, sign_in

TOKEN = "X-Thread-Token"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"MAX_CLIP_BYTES": 60_000, "THREAD_MESSAGE_RATE_LIMIT": "8/minute"}
    )


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


async def _start(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/threads", json={"channel": "police", **body})
    assert response.status == 201, await response.text()
    started: dict[str, Any] = await response.json()
    return started


async def _say(client: Client, thread: dict[str, Any], client_id: str, body: str) -> Any:
    return await client.post(
        f"/api/threads/{thread['thread_id']}/messages",
        json={"client_id": client_id, "body": body},
        headers={TOKEN: thread["token"]},
    )


async def _attach(
    client: Client, thread: dict[str, Any], client_id: str, data: bytes, body: str = ""
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("client_id", client_id)
    form.add_field("body", body)
    # Named and typed as a clip whatever it is: only the bytes count.
    form.add_field("file", io.BytesIO(data), filename="clip.mp4", content_type="video/mp4")
    return await client.post(
        f"/api/threads/{thread['thread_id']}/attachments",
        data=form,
        headers={TOKEN: thread["token"]},
    )


async def _stored(client: Client, thread_id: str) -> list[tuple[int, str, str, str | None]]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(ThreadMessage)
                .where(col(ThreadMessage.thread_id) == thread_id)
                .order_by(col(ThreadMessage.seq))
            )
        ).all()
    return [(m.seq, m.sender, m.body, m.sha256) for m in rows]


async def _actions(client: Client) -> list[str]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return [e.action for e in (await session.exec(select(AuditEntry))).all()]


def _thread_page(client: Client, token: str) -> Any:
    return connect(base_url(client), "/thread", auth={"token": token})


@pytest.fixture
async def second_operator(client: Client, clock: FrozenClock) -> AsyncIterator[tuple[Client, str]]:
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, "piotr", "operator"), clock)
    yield browser, csrf
    await browser.close()


async def test_a_thread_from_the_first_message_to_its_close(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    operator, csrf = operator_desk
    staff = {"X-CSRF-Token": csrf}
    async with console(operator) as desk:
        thread = await _start(
            client, language="kk", contact="+7 701 000 0000", lat=43.238, lon=76.945, accuracy=20.0
        )
        thread_id = thread["thread_id"]
        added = await desk.next_event("thread.updated")
        assert added["thread"]["thread_id"] == thread_id
        assert added["thread"]["state"] == "open"
        async with _thread_page(client, thread["token"]) as page:
            first = await _say(client, thread, "c-000001", "A drunk driver at Abay/Dostyk")
            assert first.status == 201
            again = await _say(client, thread, "c-000001", "A drunk driver at Abay/Dostyk")
            assert again.status == 200 and (await again.json())["duplicate"] is True
            photo, clip = _jpeg(), make_clip("webm")
            sent_photo = await _attach(client, thread, "c-000002", photo, "the car")
            assert sent_photo.status == 201, await sent_photo.text()
            sent_clip = await _attach(client, thread, "c-000003", clip)
            assert sent_clip.status == 201, await sent_clip.text()
            sent = await sent_clip.json()
            assert (sent["kind"], sent["sha256"]) == ("video", hashlib.sha256(clip).hexdigest())
            unread = await desk.next_event("thread.updated")
            while unread["thread"]["unread"] < 3:
                unread = await desk.next_event("thread.updated")
            assert unread["thread"]["last_seq"] == 3

            listed = await (await operator.get("/api/threads")).json()
            assert [t["thread_id"] for t in listed["threads"]] == [thread_id]
            claimed = await operator.post(f"/api/threads/{thread_id}/claim", headers=staff)
            assert claimed.status == 200, await claimed.text()
            assert (await page.next_event("thread.state"))["state"] == "claimed"
            opened = await (await operator.get(f"/api/threads/{thread_id}")).json()
            assert [m["kind"] for m in opened["messages"]] == [None, "photo", "video"]
            served = await operator.get(opened["messages"][2]["url"])
            assert served.headers["Content-Type"] == "video/webm"
            assert await served.read() == clip

            answer = await operator.post(
                f"/api/threads/{thread_id}/reply",
                json={"client_id": "o-000001", "body": "A patrol is on its way"},
                headers=staff,
            )
            assert answer.status == 201, await answer.text()
            live = await page.next_event("thread.message", sender="operator")
            assert (live["body"], live["sender_name"]) == ("A patrol is on its way", "olga")
            read = await desk.next_event("thread.updated")
            while read["thread"]["last_seq"] < 4:
                read = await desk.next_event("thread.updated")
            assert read["thread"]["unread"] == 0

            # A reload: every message, in order, from the database.
            resumed = await page.call("resume", {"last_seq": 0})
            assert [m["seq"] for m in resumed["messages"]] == [1, 2, 3, 4]
            again_page = await client.get(
                f"/api/threads/{thread_id}/messages?after=3", headers={TOKEN: thread["token"]}
            )
            assert [m["body"] for m in (await again_page.json())["messages"]] == [
                "A patrol is on its way"
            ]
            mine = await client.get(
                f"/api/threads/{thread_id}/attachments/2", headers={TOKEN: thread["token"]}
            )
            assert await mine.read() == photo

            closed = await operator.post(
                f"/api/threads/{thread_id}/close",
                json={"disposition": "dispatched", "note": "patrol 12"},
                headers=staff,
            )
            assert closed.status == 200, await closed.text()
            assert (await page.next_event("thread.state"))["state"] == "closed"
    before = await _stored(client, thread_id)
    late = await _say(client, thread, "c-000009", "one more thing")
    assert late.status == 409
    assert (await late.json())["error"]["code"] == "thread_closed"
    assert await _stored(client, thread_id) == before
    actions = await _actions(client)
    for action in (
        "thread_created",
        "thread_photo_received",
        "thread_video_received",
        "thread_claimed",
        "thread_closed",
    ):
        assert action in actions


async def test_two_operators_claim_one_thread_at_once_and_exactly_one_wins(
    client: Client, operator_desk: tuple[Client, str], second_operator: tuple[Client, str]
) -> None:
    thread = await _start(client)
    assert (await _say(client, thread, "c-000001", "help")).status == 201
    path = f"/api/threads/{thread['thread_id']}/claim"
    (first, first_csrf), (second, second_csrf) = operator_desk, second_operator
    answers = await asyncio.gather(
        first.post(path, headers={"X-CSRF-Token": first_csrf}),
        second.post(path, headers={"X-CSRF-Token": second_csrf}),
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 409]
    loser = next(a for a in answers if a.status == 409)
    assert (await loser.json())["error"]["code"] == "thread_taken"
    winner = next(a for a in answers if a.status == 200)
    holder = (await winner.json())["thread"]["claimed_by"]
    assert holder in ("olga", "piotr")
    # The loser may not answer in it either.
    other, other_csrf = (second, second_csrf) if holder == "olga" else (first, first_csrf)
    refused = await other.post(
        f"/api/threads/{thread['thread_id']}/reply",
        json={"client_id": "o-000001", "body": "me too"},
        headers={"X-CSRF-Token": other_csrf},
    )
    assert (await refused.json())["error"]["code"] == "thread_not_yours"
    assert (await _actions(client)).count("thread_claimed") == 1


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (html_named_mp4(), 400, "not_an_image"),
        (zip_named_mp4(), 400, "not_an_image"),
        (truncated_mp4(), 400, "not_a_video"),
        (make_clip("mp4", frames=10, size=(320, 240), noise=True), 413, "video_too_large"),
    ],
    ids=["html", "zip", "truncated", "oversized"],
)
async def test_a_bad_attachment_is_refused_and_nothing_stored_is_lost(
    client: Client, data: bytes, status: int, code: str
) -> None:
    thread = await _start(client)
    assert (await _attach(client, thread, "c-000001", make_clip("mp4"))).status == 201
    before = await _stored(client, thread["thread_id"])
    response = await _attach(client, thread, "c-000002", data)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code
    assert await _stored(client, thread["thread_id"]) == before


async def test_another_threads_token_opens_nothing(client: Client) -> None:
    mine, other = await _start(client), await _start(client)
    assert (await _say(client, mine, "c-000001", "mine")).status == 201
    before = await _stored(client, mine["thread_id"])
    wrong = {**mine, "token": other["token"]}
    for response in (
        await _say(client, wrong, "c-000002", "not mine"),
        await client.get(
            f"/api/threads/{mine['thread_id']}/messages", headers={TOKEN: other["token"]}
        ),
        await client.get(
            f"/api/threads/{mine['thread_id']}/attachments/1", headers={TOKEN: other["token"]}
        ),
    ):
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "bad_thread_token"
    assert await _stored(client, mine["thread_id"]) == before


async def test_a_message_flood_is_refused_and_marks_the_thread(
    client: Client, operator: Client
) -> None:
    thread = await _start(client)
    for index in range(8):
        assert (await _say(client, thread, f"c-{index:06d}", f"message {index}")).status == 201
    before = await _stored(client, thread["thread_id"])
    over = await _say(client, thread, "c-999999", "and another")
    assert over.status == 429
    assert (await over.json())["error"]["code"] == "message_limit"
    assert "Retry-After" in over.headers
    assert await _stored(client, thread["thread_id"]) == before
    listed = await (await operator.get("/api/threads")).json()
    assert listed["threads"][0]["marks"] == ["flooding"]
    empty = await _say(client, thread, "c-888888", "   ")
    assert empty.status in (400, 429)


async def test_an_empty_or_malformed_message_is_refused(client: Client) -> None:
    thread = await _start(client)
    empty = await _say(client, thread, "c-000001", "  ")
    assert (await empty.json())["error"]["code"] == "message_empty"
    bad_id = await _say(client, thread, "no", "hi")
    assert (await bad_id.json())["error"]["code"] == "invalid"
    assert await _stored(client, thread["thread_id"]) == []


async def test_the_misconduct_channels_threads_are_its_own(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    operator, csrf = operator_desk
    thread = await _start(client, channel="internal_security")
    assert (await _say(client, thread, "c-000001", "an officer took a bribe")).status == 201
    assert (await (await operator.get("/api/threads")).json())["threads"] == []
    for response in (
        await operator.get(f"/api/threads/{thread['thread_id']}"),
        await operator.post(
            f"/api/threads/{thread['thread_id']}/claim", headers={"X-CSRF-Token": csrf}
        ),
    ):
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "thread_not_found"
    unit = await another_browser(client)
    try:
        unit_csrf = await sign_in(
            unit, await add_account(client, "irina", "internal_security"), clock
        )
        listed = await (await unit.get("/api/threads")).json()
        assert [t["thread_id"] for t in listed["threads"]] == [thread["thread_id"]]
        claimed = await unit.post(
            f"/api/threads/{thread['thread_id']}/claim", headers={"X-CSRF-Token": unit_csrf}
        )
        assert claimed.status == 200
    finally:
        await unit.close()


async def test_a_thread_becomes_a_call_invite_and_a_threat_report(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    operator, csrf = operator_desk
    staff = {"X-CSRF-Token": csrf}
    thread = await _start(client, lat=52.2297, lon=21.0122)
    thread_id = thread["thread_id"]
    assert (await _say(client, thread, "c-000001", "someone is following me")).status == 201
    assert (await operator.post(f"/api/threads/{thread_id}/claim", headers=staff)).status == 200
    invited = await operator.post(f"/api/threads/{thread_id}/invite", json={}, headers=staff)
    assert invited.status == 201, await invited.text()
    link = (await invited.json())["link"]
    assert "/invite#" in link
    page = await client.get(
        f"/api/threads/{thread_id}/messages?after=1", headers={TOKEN: thread["token"]}
    )
    posted = (await page.json())["messages"]
    assert len(posted) == 1 and link in posted[0]["body"]
    reported = await operator.post(
        f"/api/threads/{thread_id}/report",
        json={"category": "vandalism", "description": "followed near the station"},
        headers=staff,
    )
    assert reported.status == 201, await reported.text()
    report_id = (await reported.json())["report"]["id"]
    assert (await reported.json())["thread"]["report_id"] == report_id
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        stored = await session.get(MessageThread, thread_id)
    assert stored is not None and stored.report_id == report_id
    actions = await _actions(client)
    assert "thread_invited" in actions and "thread_reported" in actions


async def test_evidence_verify_checks_a_threads_files(client: Client) -> None:
    """A thread's clip is in the custody check: changed on disk, ``evidence verify`` names it."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    thread = await _start(client)
    assert (await _attach(client, thread, "c-000001", make_clip("webm"))).status == 201
    intact = await verify_custody(Custody.of(services), services.storage)
    assert intact.ok, intact.broken
    assert intact.files == 1
    async with services.db.session() as session:
        stored = (await session.exec(select(ThreadMessage))).one()
    assert stored.path is not None
    services.storage.path(stored.path).write_bytes(b"changed")
    broken = await verify_custody(Custody.of(services), services.storage)
    assert broken.broken is not None
    assert f"thread {thread['thread_id']}" in broken.broken.item
    assert "changed" in broken.broken.reason


async def test_threads_past_the_rate_limit_are_made_and_marked(
    client: Client, operator: Client
) -> None:
    assert client.app is not None
    limit = client.app[SERVICES_KEY].settings.THREAD_RATE_LIMIT.split("/")[0]
    made = [await _start(client) for _ in range(int(limit) + 1)]
    listed = {
        t["thread_id"]: t for t in (await (await operator.get("/api/threads")).json())["threads"]
    }
    marks = [listed[t["thread_id"]]["marks"] for t in made]
    assert marks[:-1] == [[]] * int(limit)
    assert marks[-1] == ["suspected_abuse"]


async def test_the_thread_socket_takes_only_its_token_and_valid_requests(client: Client) -> None:
    thread = await _start(client)
    assert (await _say(client, thread, "c-000001", "hello")).status == 201
    with pytest.raises(socketio.exceptions.ConnectionError):
        async with _thread_page(client, "x" * 40):
            pass
    async with _thread_page(client, thread["token"]) as page:
        refused = await page.call("resume", {"last_seq": -1})
        assert refused["ok"] is False and refused["error"]["code"] == "invalid"
        assert (await page.next_error())["event"] == "resume"
        unknown = await page.call("chat", {"client_id": "c-000002", "body": "x"})
        assert unknown["error"]["code"] == "unknown_event"
        resumed = await page.call("resume", {"last_seq": 0})
        assert [m["body"] for m in resumed["messages"]] == ["hello"]
    assert await _stored(client, thread["thread_id"]) == [(1, "citizen", "hello", None)]
