"""Hardware keys against a real server, with a key in software (tests/software_key.py): added
from the account, used after the password instead of TOTP, and every wrong answer (another
origin, another challenge, a replay, an expired challenge, a count that goes back, garbage)
refused with the one sign-in failure and an audit entry, never a 500. A passkey alone where the
deployment allows it; removal by the user and by an admin's reset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions.account_admin import reset_account
from server.actions.users import Actor
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import User, WebAuthnCredential
from tests.conftest import ClientFactory
from tests.software_key import SoftwareKey
from tests.staff import (
    Account,
    Client,
    add_account,
    another_browser,
    audit_rows,
    page_csrf,
    services_of,
    sign_in,
)

ORIGIN = "http://localhost"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"PUBLIC_URL": ORIGIN})


async def _entries(client: Client, username: str) -> list[tuple[str, dict[str, Any]]]:
    rows = await audit_rows(client, subject=f"user:{username}")
    return [(row.action, json.loads(row.data)) for row in rows]


async def _post(client: Client, path: str, csrf: str, body: dict[str, Any]) -> Any:
    response = await client.post(
        path, json=body, headers={"X-CSRF-Token": csrf, "Accept": "application/json"}
    )
    return response.status, await response.json()


async def _with_key(
    client: Client, clock: FrozenClock, name: str = "alice"
) -> tuple[Account, SoftwareKey]:
    """An account signed in with TOTP that adds a software key, signed out again."""
    account = await add_account(client, name, "operator")
    browser = await another_browser(client)
    csrf = await sign_in(browser, account, clock)
    key = SoftwareKey("localhost", ORIGIN)
    status, options = await _post(browser, "/account/keys/options", csrf, {})
    assert status == 200, options
    assert options["publicKey"]["rp"]["id"] == "localhost"
    status, added = await _post(
        browser,
        "/account/keys",
        csrf,
        {
            "challenge_id": options["challenge_id"],
            "name": "Blue key",
            "credential": key.create(options),
        },
    )
    assert status == 200, added
    assert added["name"] == "Blue key"
    await browser.close()
    return account, key


async def _key_options(client: Client, username: str) -> tuple[str, dict[str, Any]]:
    csrf = await page_csrf(client)
    status, options = await _post(client, "/login/key/options", csrf, {"username": username})
    assert status == 200, options
    return csrf, options


async def _key_sign_in(
    client: Client, csrf: str, options: dict[str, Any], credential: dict[str, Any], account: Account
) -> tuple[int, Any]:
    return await _post(
        client,
        "/login/key",
        csrf,
        {
            "challenge_id": options["challenge_id"],
            "credential": credential,
            "username": account.username,
            "password": account.password,
        },
    )


async def test_password_and_key_sign_in_without_totp(client: Client, clock: FrozenClock) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    assert [c["id"] for c in options["publicKey"]["allowCredentials"]] == [key.id]
    status, body = await _key_sign_in(client, csrf, options, key.get(options), account)
    assert (status, body) == (200, {"location": "/console"})
    assert (await client.get("/console", allow_redirects=False)).status == 200
    actions = [action for action, _ in await _entries(client, account.username)]
    assert actions[-3:] == ["webauthn_registered", "webauthn_used", "login"]
    last = (await _entries(client, account.username))[-1]
    assert last == ("login", {"remote": "127.0.0.1", "method": "webauthn"})
    async with services_of(client).db.session() as session:
        stored = (await session.exec(select(WebAuthnCredential))).one()
    assert stored.sign_count == 1
    assert stored.last_used_at == clock.now()
    assert stored.name == "Blue key" and stored.transports == "usb"


@pytest.mark.parametrize(
    ("origin", "challenge", "detail"),
    [
        ("http://evil.example", None, "origin"),
        (None, "bm90LW91ci1jaGFsbGVuZ2U", "challenge"),
    ],
)
async def test_another_origin_or_challenge_is_refused_and_audited(
    client: Client, clock: FrozenClock, origin: str | None, challenge: str | None, detail: str
) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    answer = key.get(options, origin=origin, challenge=challenge)
    status, body = await _key_sign_in(client, csrf, options, answer, account)
    assert status == 401 and body["error"]["code"] == "login_failed"
    entries = await _entries(client, account.username)
    assert entries[-2][0] == "webauthn_refused"
    assert entries[-2][1]["reason"] == "invalid" and entries[-2][1]["stage"] == "second_factor"
    assert detail in entries[-2][1]["detail"]
    assert entries[-1][0] == "login_failed" and entries[-1][1]["reason"] == "bad_key"


async def test_a_challenge_is_good_once_and_not_after_it_expires(
    client: Client, clock: FrozenClock
) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    answer = key.get(options)
    assert (await _key_sign_in(client, csrf, options, answer, account))[0] == 200
    replay = await another_browser(client)
    csrf2 = await page_csrf(replay)
    status, _ = await _key_sign_in(replay, csrf2, options, answer, account)
    assert status == 401
    assert (await _entries(client, account.username))[-2][1]["reason"] == "challenge"

    csrf2, options = await _key_options(replay, account.username)
    clock.advance(services_of(client).settings.WEBAUTHN_CHALLENGE_SECS + 1)
    status, _ = await _key_sign_in(replay, csrf2, options, key.get(options), account)
    assert status == 401
    assert (await _entries(client, account.username))[-2][1]["reason"] == "challenge"
    await replay.close()


async def test_two_answers_at_once_to_one_challenge_open_one_session(
    client: Client, clock: FrozenClock
) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    answer = key.get(options)
    other = await another_browser(client)
    # The other browser's own pre-login CSRF cookie, and the same answer sent from both.
    csrf2 = await page_csrf(other)
    results = await asyncio.gather(
        _key_sign_in(client, csrf, options, answer, account),
        _key_sign_in(other, csrf2, options, answer, account),
    )
    assert sorted(status for status, _ in results) == [200, 401], results
    await other.close()


async def test_a_count_that_goes_back_is_a_cloned_key(client: Client, clock: FrozenClock) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    assert (await _key_sign_in(client, csrf, options, key.get(options, count=7), account))[0] == 200
    other = await another_browser(client)
    csrf, options = await _key_options(other, account.username)
    status, _ = await _key_sign_in(other, csrf, options, key.get(options, count=5), account)
    assert status == 401
    refused = (await _entries(client, account.username))[-2]
    assert refused[0] == "webauthn_refused" and refused[1]["reason"] == "sign_count"
    async with services_of(client).db.session() as session:
        assert (await session.exec(select(WebAuthnCredential))).one().sign_count == 7
    await other.close()


async def test_a_wrong_password_with_the_right_key_is_refused(
    client: Client, clock: FrozenClock
) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    wrong = Account(account.username, "not the password at all", account.totp_secret)
    status, _ = await _key_sign_in(client, csrf, options, key.get(options), wrong)
    assert status == 401
    assert (await _entries(client, account.username))[-1][1]["reason"] == "bad_password"


@pytest.mark.parametrize(
    "credential",
    [
        {},
        {"id": 5},
        {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}},
        {"id": "!!", "rawId": "!!", "type": "public-key", "response": {"clientDataJSON": "%%"}},
    ],
)
async def test_garbage_is_a_refusal_not_a_500(
    client: Client, clock: FrozenClock, credential: dict[str, Any]
) -> None:
    account, key = await _with_key(client, clock)
    csrf, options = await _key_options(client, account.username)
    garbage = {**key.get(options), **credential} if credential.get("id") == "AAAA" else credential
    status, body = await _key_sign_in(client, csrf, options, garbage, account)
    assert status == 401, body
    status, body = await _post(client, "/login/key", csrf, {"challenge_id": 5})
    assert status == 422, body


async def test_registration_from_another_origin_is_refused(
    client: Client, clock: FrozenClock
) -> None:
    account = await add_account(client, "bob", "operator")
    csrf = await sign_in(client, account, clock)
    status, options = await _post(client, "/account/keys/options", csrf, {})
    key = SoftwareKey("localhost", ORIGIN)
    status, body = await _post(
        client,
        "/account/keys",
        csrf,
        {
            "challenge_id": options["challenge_id"],
            "name": "Stolen",
            "credential": key.create(options, origin="http://evil.example"),
        },
    )
    assert status == 400 and body["error"]["code"] == "webauthn_refused"
    assert (await _entries(client, "bob"))[-1][0] == "webauthn_refused"
    status, body = await _post(
        client, "/account/keys", csrf, {"challenge_id": "x", "name": " ", "credential": {}}
    )
    assert status == 422 and body["error"]["code"] == "invalid_key_name"


async def test_unknown_accounts_get_a_stand_in_key(client: Client) -> None:
    _, first = await _key_options(client, "nobody")
    _, again = await _key_options(client, "nobody")
    ids = [c["id"] for c in first["publicKey"]["allowCredentials"]]
    assert len(ids) == 1 and ids == [c["id"] for c in again["publicKey"]["allowCredentials"]]


async def test_a_removed_key_and_a_reset_account_open_nothing(
    client: Client, clock: FrozenClock
) -> None:
    account, key = await _with_key(client, clock)
    csrf = await sign_in(client, account, clock, step=1)
    async with services_of(client).db.session() as session:
        key_id = (await session.exec(select(WebAuthnCredential.id))).one()
    page = await client.get("/account/keys")
    assert f'data-testid="webauthn-key-{key_id}"' in await page.text()
    removed = await client.post(
        f"/account/keys/{key_id}/remove", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert removed.status == 303
    assert (await _entries(client, account.username))[-1][0] == "webauthn_removed"
    other = await another_browser(client)
    csrf2, options = await _key_options(other, account.username)
    assert (await _key_sign_in(other, csrf2, options, key.get(options), account))[0] == 401
    assert (await _entries(client, account.username))[-2][1]["reason"] == "unknown_key"
    await other.close()

    # An admin's reset drops every key of the account with its TOTP.
    await _with_key(client, clock, "carol")
    services = services_of(client)
    async with services.db.session() as session:
        carol = (await session.exec(select(User).where(col(User.username) == "carol"))).one()
    assert carol.id is not None
    await reset_account(
        services.audit, services.clock, actor=Actor.command_line(), user_id=carol.id, reason="lost"
    )
    async with services.db.session() as session:
        left = (
            await session.exec(
                select(WebAuthnCredential).where(col(WebAuthnCredential.user_id) == carol.id)
            )
        ).all()
    assert left == []
    reset = (await _entries(client, "carol"))[-1]
    assert reset[0] == "user_reset" and reset[1]["keys_removed"] == 1


async def test_passkeys_alone_only_where_the_deployment_says(
    client: Client, clock: FrozenClock
) -> None:
    csrf = await page_csrf(client)
    status, body = await _post(client, "/login/key/options", csrf, {"passkey": True})
    assert status == 403 and body["error"]["code"] == "passkeys_off"


async def test_a_passkey_alone_signs_in_where_the_deployment_allows_it(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    passwordless = settings.model_copy(update={"WEBAUTHN_PASSWORDLESS": True})
    client = await aiohttp_client(create_app(passwordless, clock))
    account, key = await _with_key(client, clock)
    csrf = await page_csrf(client)
    status, options = await _post(client, "/login/key/options", csrf, {"passkey": True})
    assert status == 200, options
    assert options["publicKey"]["allowCredentials"] == []
    assert options["publicKey"]["userVerification"] == "required"
    body = {
        "challenge_id": options["challenge_id"],
        "credential": key.get(options),
        "passkey": True,
    }
    status, answer = await _post(client, "/login/key", csrf, body)
    assert (status, answer) == (200, {"location": "/console"})
    assert (await _entries(client, account.username))[-1] == (
        "login",
        {"remote": "127.0.0.1", "method": "passkey"},
    )

    # A key that did not verify its user (no PIN, no fingerprint) is not enough on its own.
    key.verifies_user = False
    other = await another_browser(client)
    csrf = await page_csrf(other)
    status, options = await _post(other, "/login/key/options", csrf, {"passkey": True})
    body = {
        "challenge_id": options["challenge_id"],
        "credential": key.get(options),
        "passkey": True,
    }
    status, answer = await _post(other, "/login/key", csrf, body)
    assert status == 401 and answer["error"]["code"] == "login_failed"
    refused = (await _entries(client, account.username))[-1]
    assert refused[0] == "webauthn_refused" and refused[1]["stage"] == "passkey"
    assert "verif" in refused[1]["detail"]
    await other.close()
