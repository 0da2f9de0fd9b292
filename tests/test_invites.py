"""Invites by SMS against a real server: the operator texts a single-use link (through the file
sink, or an HTTP gateway that is a real aiohttp server on a loopback port), the caller redeems
it for a video call already answered by that operator; a reused, expired or unknown link, a
number that is not one, a gateway that answers 500 or not at all, too many invites: each a
clear refusal or a visible failed state, with nothing stored changed or lost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlmodel import col, func, select

from config import Settings
from server.core.clock import FrozenClock
from server.db.models import Call, CallTransition, Invite
from server.http.keys import SERVICES_KEY
from server.security.call_code import WORD_LISTS
from server.security.tokens import token_hash
from tests.sockets import citizen, console
from tests.staff import Client, add_account, another_browser, sign_in


@dataclass
class Gateway:
    """A stand-in SMS provider (the edge of the world): answers as ``mode`` says and keeps
    every request it was sent."""

    mode: str = "ok"  # ok | error | hang
    received: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            {
                "auth": request.headers.get("Authorization"),
                "type": request.headers.get("Content-Type"),
                "body": await request.text(),
            }
        )
        if self.mode == "error":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "hang":
            await self.release.wait()  # longer than the client's timeout
        return web.json_response({"queued": True})


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, str]]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/send", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("/send"))
    fake.release.set()
    await server.close()


@pytest.fixture
def sms_mode() -> str:
    return "file"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, sms_mode: str, request: Any) -> Settings:
    update: dict[str, Any] = {
        "SMS_FILE": tmp_path / "outbox.jsonl",
        "INVITE_RATE_LIMIT": "3/hour",
        "PHONE_REGION": "PL",
    }
    if sms_mode == "http":
        _fake, url = request.getfixturevalue("gateway")
        update |= {
            "SMS_GATEWAY": "http",
            "SMS_HTTP_URL": url,
            "SMS_HTTP_AUTH": "Bearer sekret",
            "SMS_HTTP_BODY": '{"msisdn": "{to}", "message": "{text}"}',
            "SMS_HTTP_TIMEOUT_SECS": 0.5,
        }
    return settings.model_copy(update=update)


def _outbox(client: Client) -> list[dict[str, Any]]:
    assert client.app is not None
    path = client.app[SERVICES_KEY].settings.sms_file
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _token_of(link: str) -> str:
    base, _, token = link.partition("#")
    assert base.endswith("/invite"), link
    return token


async def _invite(desk: tuple[Client, str], **body: Any) -> Any:
    browser, csrf = desk
    return await browser.post("/api/invites", json=body, headers={"X-CSRF-Token": csrf})


async def _count(client: Client, model: Any) -> int:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def test_a_texted_link_drops_the_caller_into_a_call_with_the_operator_once(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    browser, _csrf = operator_desk
    async with console(browser) as desk:
        made = await _invite(operator_desk, phone="601 234 567", language="pl")
        assert made.status == 201, await made.text()
        invite = await made.json()
        assert invite["sms"] == "sent" and invite["phone"] == "+48601234567"

        # The SMS, as the sink wrote it: to the number in E.164, in Polish, with the link.
        [sms] = _outbox(client)
        assert sms["to"] == "+48601234567"
        assert invite["link"] in sms["text"] and "wideo" in sms["text"]
        token = _token_of(invite["link"])

        # Only the token's hash is stored.
        assert client.app is not None
        async with client.app[SERVICES_KEY].db.session() as session:
            row = await session.get(Invite, invite["invite_id"])
        assert row is not None and row.token_hash == token_hash(token)
        assert token not in json.dumps(row.model_dump(mode="json"))

        redeemed = await client.post("/api/invites/redeem", json={"token": token})
        assert redeemed.status == 201, await redeemed.text()
        call = await redeemed.json()
        assert call["mode"] == "video" and call["language"] == "pl"

        # The operator's console is told: answered, by them, with the code.
        update = await desk.next_event("queue.call_updated")
        assert update["call"]["call_id"] == call["call_id"]
        assert update["call"]["state"] == "answered" and update["call"]["operator"] == "olga"
        words = update["call"]["verification_code"]
        assert len(words) == 3 and set(words) <= set(WORD_LISTS["pl"])
        async with citizen(client, call["token"]) as phone:
            resumed = await phone.call("resume", {"last_seq": 0})
            assert resumed["call"]["state"] == "answered"
            assert resumed["call"]["verification_code"] == words
        joined = await desk.call("join", {"call_id": call["call_id"], "last_seq": 0})
        assert joined["ok"], joined

        # The same link again: refused, and no second call.
        calls_before = await _count(client, Call)
        again = await client.post("/api/invites/redeem", json={"token": token})
        assert again.status == 410
        assert (await again.json())["error"]["code"] == "invite_used"
        assert await _count(client, Call) == calls_before

    async with client.app[SERVICES_KEY].db.session() as session:
        steps = (
            await session.exec(
                select(CallTransition)
                .where(col(CallTransition.call_id) == call["call_id"])
                .order_by(col(CallTransition.id))
            )
        ).all()
    assert [(s.from_state, s.to_state, s.actor) for s in steps] == [
        (None, "queued", "citizen"),
        ("queued", "answered", "olga"),
    ]


async def test_an_expired_link_is_refused_and_makes_no_call(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    invite = await (await _invite(operator_desk, language="en")).json()
    assert invite["sms"] == "none" and _outbox(client) == []  # a link to copy: no SMS
    assert client.app is not None
    clock.advance(client.app[SERVICES_KEY].settings.INVITE_TTL_SECS + 1)
    refused = await client.post("/api/invites/redeem", json={"token": _token_of(invite["link"])})
    assert refused.status == 410
    assert (await refused.json())["error"]["code"] == "invite_expired"
    assert await _count(client, Call) == 0


@pytest.mark.parametrize("token", ["A" * 43, "", "x" * 129])
async def test_a_link_nobody_made_is_refused(client: Client, token: str) -> None:
    refused = await client.post("/api/invites/redeem", json={"token": token})
    assert 400 <= refused.status < 500
    code = (await refused.json())["error"]["code"]
    assert code in {"invite_invalid", "invalid"}
    assert await _count(client, Call) == 0


@pytest.mark.parametrize("phone", ["12345", "call me", "+48 123", "+1 000 000 0000", "9" * 41])
async def test_a_number_that_is_not_one_is_refused_before_anything_is_stored(
    client: Client, operator_desk: tuple[Client, str], phone: str
) -> None:
    refused = await _invite(operator_desk, phone=phone, language="en")
    assert refused.status in (400, 422), await refused.text()
    assert (await refused.json())["error"]["code"] in {"invalid_phone", "invalid"}
    assert await _count(client, Invite) == 0
    assert _outbox(client) == []


async def test_invites_are_limited_per_operator(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    for _ in range(3):
        assert (await _invite(operator_desk, language="en")).status == 201
    over = await _invite(operator_desk, phone="+48601234567", language="en")
    assert over.status == 429
    assert (await over.json())["error"]["code"] == "rate_limited"
    assert await _count(client, Invite) == 3 and _outbox(client) == []
    # Another operator has their own allowance.
    other = await another_browser(client)
    csrf = await sign_in(other, await add_account(client, "piotr", "operator"), clock)
    assert (await _invite((other, csrf), language="en")).status == 201
    await other.close()


async def test_a_supervisor_does_not_invite(client: Client, clock: FrozenClock) -> None:
    boss = await another_browser(client)
    csrf = await sign_in(boss, await add_account(client, "sabina", "supervisor"), clock)
    refused = await _invite((boss, csrf), language="en")
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "role_forbidden"
    await boss.close()


async def test_an_invite_needs_the_sessions_csrf_token(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    browser, _csrf = operator_desk
    refused = await browser.post("/api/invites", json={"language": "en"})
    assert refused.status == 403
    assert await _count(client, Invite) == 0


@pytest.mark.parametrize("sms_mode", ["http"])
async def test_the_http_gateway_gets_the_providers_body_and_auth(
    client: Client, operator_desk: tuple[Client, str], gateway: tuple[Gateway, str]
) -> None:
    fake, _url = gateway
    invite = await (await _invite(operator_desk, phone="+7 701 234 5678", language="kk")).json()
    assert invite["sms"] == "sent"
    [sent] = fake.received
    assert sent["auth"] == "Bearer sekret" and sent["type"] == "application/json"
    body = json.loads(sent["body"])  # the template, filled in and still JSON
    assert body["msisdn"] == "+77012345678"
    assert invite["link"] in body["message"] and "бейнеқоңырау" in body["message"]


@pytest.mark.parametrize("sms_mode", ["http"])
@pytest.mark.parametrize(("mode", "failure"), [("error", "refused"), ("hang", "timeout")])
async def test_a_gateway_that_fails_is_a_visible_state_and_the_link_still_works(
    client: Client,
    operator_desk: tuple[Client, str],
    gateway: tuple[Gateway, str],
    mode: str,
    failure: str,
) -> None:
    fake, _url = gateway
    fake.mode = mode
    made = await _invite(operator_desk, phone="+48601234567", language="pl")
    assert made.status == 201
    invite = await made.json()
    assert invite["sms"] == "failed" and invite["sms_failure"] == failure
    assert len(fake.received) == 1
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = await session.get(Invite, invite["invite_id"])
    assert row is not None and row.sms == "failed" and row.used_at is None
    # Nothing lost: the operator reads the link out, and it works.
    redeemed = await client.post("/api/invites/redeem", json={"token": _token_of(invite["link"])})
    assert redeemed.status == 201
