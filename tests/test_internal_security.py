"""The internal-security channel's own accounts and its callers' privacy (issue 14, items 5, 10).

Only internal security (or the command line on the server) makes, re-roles, disables or
re-enables an internal-security account: an admin who could would sign in as one and read a
misconduct caller's chat and location. Every attempt is refused, recorded, and shown to the unit
on /security. A misconduct caller's address is kept in the shared audit chain only as a keyed
hash, and the logs name neither the call nor the caller's addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlmodel import col, select

from config import Settings
from server.core.clock import FrozenClock
from server.core.logs import JsonFormatter, setup_logging
from server.db.models import AuditEntry
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import Peer, base_url, citizen, console
from tests.staff import PASSWORD, Account, Client, add_account, another_browser, sign_in

MEDIA_TIMEOUT_SECS = 20.0
# The misconduct caller's addresses: the phone's HTTP connection comes from this loopback address
# (any of 127/8 is this machine), its trickled candidates name the others.
CALLER = "127.0.0.2"
CANDIDATE_INSIDE = "127.0.0.3"  # in the test peer networks: the media node checks it
CANDIDATE_OUTSIDE = "192.0.2.56"  # outside them: dropped
SDP_CANDIDATE_OUTSIDE = "192.0.2.55"
IS = "internal_security"


async def _signed_in(
    client: Client, clock: FrozenClock, name: str, role: str
) -> tuple[Client, str]:
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, name, role), clock)
    return browser, csrf


@pytest.fixture
async def admin(client: Client, clock: FrozenClock) -> AsyncIterator[tuple[Client, str]]:
    """A signed-in admin ``adam`` and its session's CSRF token."""
    browser, csrf = await _signed_in(client, clock, "adam", "admin")
    yield browser, csrf
    await browser.close()


@pytest.fixture
async def officer(client: Client, clock: FrozenClock) -> AsyncIterator[tuple[Client, str]]:
    """A signed-in internal-security officer ``ivan`` (made as `users add` makes one)."""
    browser, csrf = await _signed_in(client, clock, "ivan", IS)
    yield browser, csrf
    await browser.close()


async def _users(admin: Client) -> dict[str, dict[str, Any]]:
    response = await admin.get("/api/users")
    assert response.status == 200
    return {u["username"]: u for u in (await response.json())["users"]}


async def _access_changes(officer: Client) -> list[dict[str, Any]]:
    response = await officer.get("/api/security/access-changes")
    assert response.status == 200, await response.text()
    changes: list[dict[str, Any]] = (await response.json())["changes"]
    return changes


def _refused_as_internal_security_only(status: int, body: dict[str, Any]) -> None:
    assert status == 403, body
    assert body["error"]["code"] == "internal_security_only", body


async def test_an_admin_cannot_create_an_internal_security_account(
    admin: tuple[Client, str],
) -> None:
    browser, csrf = admin
    api = await browser.post(
        "/api/users", json={"username": "mole", "role": IS}, headers={"X-CSRF-Token": csrf}
    )
    body = await api.json()
    _refused_as_internal_security_only(api.status, body)
    assert "one_time_password" not in body
    # The admin page's form: the same refusal, said on the page.
    page = await browser.post(
        "/admin/users", data={"username": "mole2", "role": IS, "csrf_token": csrf}
    )
    assert page.status == 403
    assert 'data-code="internal_security_only"' in await page.text()
    assert 'data-testid="one-time-password"' not in await page.text()
    assert {"mole", "mole2"}.isdisjoint(await _users(browser))


async def test_an_admin_cannot_give_the_internal_security_role(
    client: Client, admin: tuple[Client, str]
) -> None:
    browser, csrf = admin
    await add_account(client, "puppet", "operator")
    users = await _users(browser)
    for who in ("puppet", "adam"):  # someone the admin controls, or the admin itself
        patch = await browser.patch(
            f"/api/users/{users[who]['id']}", json={"role": IS}, headers={"X-CSRF-Token": csrf}
        )
        _refused_as_internal_security_only(patch.status, await patch.json())
    form = await browser.post(
        f"/admin/users/{users['puppet']['id']}/role", data={"role": IS, "csrf_token": csrf}
    )
    assert form.status == 403
    after = await _users(browser)
    assert (after["puppet"]["role"], after["adam"]["role"]) == ("operator", "admin")


async def test_an_admin_cannot_take_the_role_from_an_officer(
    client: Client, admin: tuple[Client, str]
) -> None:
    browser, csrf = admin
    await add_account(client, "ivan", IS)
    ivan = (await _users(browser))["ivan"]
    for role in ("operator", "admin"):
        patch = await browser.patch(
            f"/api/users/{ivan['id']}", json={"role": role}, headers={"X-CSRF-Token": csrf}
        )
        _refused_as_internal_security_only(patch.status, await patch.json())
    assert (await _users(browser))["ivan"]["role"] == IS


async def test_an_admin_cannot_disable_or_re_enable_an_officer(
    client: Client, clock: FrozenClock, admin: tuple[Client, str], officer: tuple[Client, str]
) -> None:
    """Disabling would lock the unit out; re-enabling a former officer's account (and clearing
    its lock) would hand its sign-in back."""
    browser, csrf = admin
    ivan_browser, ivan_csrf = officer
    await add_account(client, "olena", IS)
    users = await _users(browser)
    ivan, olena = users["ivan"], users["olena"]

    refused = await browser.patch(
        f"/api/users/{ivan['id']}", json={"disabled": True}, headers={"X-CSRF-Token": csrf}
    )
    _refused_as_internal_security_only(refused.status, await refused.json())
    form = await browser.post(f"/admin/users/{ivan['id']}/disable", data={"csrf_token": csrf})
    assert form.status == 403
    assert (await ivan_browser.get("/console")).status == 200  # still signed in

    # The unit disables a colleague; an admin cannot bring the account back.
    done = await ivan_browser.post(
        f"/security/officers/{olena['id']}/disable",
        data={"csrf_token": ivan_csrf},
        allow_redirects=False,
    )
    assert done.status == 303
    for attempt in (
        browser.patch(
            f"/api/users/{olena['id']}", json={"disabled": False}, headers={"X-CSRF-Token": csrf}
        ),
        browser.post(f"/admin/users/{olena['id']}/enable", data={"csrf_token": csrf}),
    ):
        assert (await attempt).status == 403
    assert (await _users(browser))["olena"]["disabled"]


async def test_an_admin_cannot_sign_in_to_the_misconduct_channel(
    client: Client, clock: FrozenClock, admin: tuple[Client, str]
) -> None:
    """The whole attempt: an account the admin controls, the role asked for, a sign-in, the
    misconduct call's chat and location read. It ends at the first step."""
    browser, csrf = admin
    puppet = await add_account(client, "puppet", "operator")
    puppet_id = (await _users(browser))["puppet"]["id"]
    await browser.patch(
        f"/api/users/{puppet_id}", json={"role": IS}, headers={"X-CSRF-Token": csrf}
    )
    misconduct = await _start_call(client, IS)
    desk = await another_browser(client)
    try:
        await sign_in(desk, puppet, clock)
        async with console(desk) as puppet_console:
            accepted = await puppet_console.call("accept", {"call_id": misconduct["call_id"]})
            joined = await puppet_console.call("join", {"call_id": misconduct["call_id"]})
    finally:
        await desk.close()
    assert accepted["ok"] is False and accepted["error"]["code"] == "call_gone", accepted
    assert joined["ok"] is False and joined["error"]["code"] == "call_not_found", joined


def _users_add(settings: Settings, name: str, role: str) -> Account:
    """``python -m server users add NAME --role ROLE --password-stdin`` on the test's database."""
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_DATABASE_URL": settings.database_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "users", "add", name, "--role", role, "--password-stdin"],
        input=PASSWORD + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    uri = re.search(r"otpauth://\S+", done.stdout)
    assert uri, done.stdout
    secret = parse_qs(urlsplit(uri.group(0)).query)["secret"][0]
    return Account(name, PASSWORD, secret)


async def test_the_command_line_makes_the_first_officer_and_the_unit_sees_it(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    ivan = _users_add(settings, "ivan", IS)
    browser = await another_browser(client)
    try:
        await sign_in(browser, ivan, clock)
        changes = await _access_changes(browser)
        page = await browser.get("/security")
        html = await page.text()
    finally:
        await browser.close()
    assert [(c["actor"], c["attempt"], c["username"], c["to"], c["outcome"]) for c in changes] == [
        ("cli", "create", "ivan", IS, "done")
    ]
    assert page.status == 200
    assert re.search(
        r'data-testid="access-change"[^>]*data-actor="cli"[^>]*data-attempt="create"'
        r'[^>]*data-username="ivan"[^>]*data-outcome="done"',
        html,
    ), html


async def test_an_officer_adds_a_colleague_on_the_security_page(
    officer: tuple[Client, str], admin: tuple[Client, str]
) -> None:
    browser, csrf = officer
    page = await browser.post("/security/officers", data={"username": "olena", "csrf_token": csrf})
    assert page.status == 201, await page.text()
    assert 'data-testid="one-time-password"' in await page.text()
    assert (await _users(admin[0]))["olena"]["role"] == IS
    assert ("ivan", "create", "olena", "done") in [
        (c["actor"], c["attempt"], c["username"], c["outcome"])
        for c in await _access_changes(browser)
    ]


async def test_the_unit_sees_an_admins_attempts(
    client: Client, admin: tuple[Client, str], officer: tuple[Client, str]
) -> None:
    browser, csrf = admin
    await add_account(client, "puppet", "operator")
    puppet_id = (await _users(browser))["puppet"]["id"]
    ivan_id = (await _users(browser))["ivan"]["id"]
    for method, path, body in (
        ("POST", "/api/users", {"username": "mole", "role": IS}),
        ("PATCH", f"/api/users/{puppet_id}", {"role": IS}),
        ("PATCH", f"/api/users/{ivan_id}", {"disabled": True}),
    ):
        response = await browser.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
        assert response.status == 403
    # The admin page offers no way to it either.
    admin_page = await (await browser.get("/admin")).text()
    assert f'<option value="{IS}"' not in admin_page
    assert 'data-testid="admin-managed-by-security"' in admin_page

    ivan_browser, _ = officer
    refused = [
        (c["actor"], c["attempt"], c["username"], c["from"], c["to"], c["code"])
        for c in await _access_changes(ivan_browser)
        if c["outcome"] == "refused"
    ]
    assert refused == [
        ("adam", "disable", "ivan", IS, IS, "internal_security_only"),
        ("adam", "role", "puppet", "operator", IS, "internal_security_only"),
        ("adam", "create", "mole", None, IS, "internal_security_only"),
    ]
    html = await (await ivan_browser.get("/security")).text()
    assert len(re.findall(r'data-actor="adam"[^>]*data-outcome="refused"', html)) == 3
    # Recorded in the chain, which still holds.
    assert client.app is not None
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.ok, report.broken


# -- the misconduct caller's privacy ---------------------------------------------------------


async def _start_call(client: Client, channel: str) -> dict[str, Any]:
    """A call started from the caller's own address (``CALLER``), as a phone would."""
    connector = aiohttp.TCPConnector(local_addr=(CALLER, 0))
    async with aiohttp.ClientSession(connector=connector) as phone:
        response = await phone.post(
            f"{base_url(client)}/api/calls",
            json={"channel": channel, "language": "en", "mode": "video"},
        )
        assert response.status == 201, await response.text()
        started: dict[str, Any] = await response.json()
    return started


async def _call_created(client: Client, call_id: str) -> dict[str, Any]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        entry = (
            await session.exec(
                select(AuditEntry).where(
                    col(AuditEntry.action) == "call_created",
                    col(AuditEntry.subject) == f"call:{call_id}",
                )
            )
        ).one()
    data: dict[str, Any] = json.loads(entry.data)
    return data


async def test_a_misconduct_calls_audit_entry_holds_only_a_keyed_hash_of_the_caller(
    client: Client, settings: Settings
) -> None:
    misconduct = await _call_created(client, (await _start_call(client, IS))["call_id"])
    police = await _call_created(client, (await _start_call(client, "police"))["call_id"])
    assert police["remote"] == CALLER  # the address the server saw, kept for a police call
    assert CALLER not in json.dumps(misconduct)
    # HMAC-SHA256 under the node's key (PSEUDONYM_KEY unset: the file made in DATA_DIR).
    key = (Path(settings.DATA_DIR) / "pseudonym.key").read_text().strip().encode()
    expected = hmac.new(key, f"remote:{CALLER}".encode(), hashlib.sha256).hexdigest()
    assert misconduct == {"channel": IS, "mode": "video", "remote_hash": expected}


@pytest.fixture
def production_logs(caplog: pytest.LogCaptureFixture) -> Any:
    """The logging the command line sets up (LOG_LEVEL=INFO), with caplog's handler on it."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    names = ("aioice", "aiortc", "aiohttp.access")
    saved = {name: logging.getLogger(name).level for name in names}
    setup_logging("json", "INFO")
    root.addHandler(caplog.handler)
    yield caplog
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def _with_candidates(phone: Peer) -> Callable[[str], Awaitable[str]]:
    """The test phone's offer, answered over the citizen socket, with one more candidate line
    (outside the peer networks) and without end-of-candidates (so more may be trickled)."""

    async def answer(sdp: str) -> str:
        lines = [line for line in sdp.splitlines() if line != "a=end-of-candidates"]
        first = next(i for i, line in enumerate(lines) if line.startswith("a=candidate:"))
        extra = f"a=candidate:7 1 udp 2122260223 {SDP_CANDIDATE_OUTSIDE} 9 typ host"
        lines.insert(first, extra)
        offer = "\r\n".join(lines) + "\r\n"
        reply = await phone.call("media_offer", {"type": "offer", "sdp": offer})
        assert reply["ok"], reply
        return str(reply["sdp"])

    return answer


async def test_logs_of_a_misconduct_call_hold_neither_its_id_nor_the_callers_addresses(
    client: Client,
    clock: FrozenClock,
    officer: tuple[Client, str],
    production_logs: pytest.LogCaptureFixture,
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    ivan, _ = officer
    started = await _start_call(client, IS)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, started["token"]) as phone, console(ivan) as desk:
            peers.append(await citizen_peer(_with_candidates(phone)))
            for address in (CANDIDATE_INSIDE, CANDIDATE_OUTSIDE):
                trickled = await phone.call(
                    "media_ice",
                    {
                        "candidate": f"candidate:8 1 udp 2122260223 {address} 50000 typ host",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    },
                )
                assert trickled["ok"], trickled
            await wait_until(
                lambda: hub.stats(call_id)["citizen"]["video_received"] > 10,
                MEDIA_TIMEOUT_SECS,
                "the caller's video",
            )
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            chat = {"call_id": call_id, "client_id": "desk-0001", "body": "we hear you"}
            assert (await desk.call("chat", chat))["ok"]
            fix = {"lat": 43.238, "lon": 76.945, "accuracy": 20.0, "timestamp": 1.79e12}
            assert (await phone.call("location", fix))["ok"]
            snap = await desk.call("snapshot", {"call_id": call_id})
            assert snap["ok"], snap
            assert (await ivan.get(snap["url"])).status == 200
            missing = await ivan.get(f"/api/calls/{call_id}/snapshots/999999")  # refused, logged
            assert missing.status == 404
            ended = await desk.call("end_call", {"call_id": call_id, "disposition": "recorded"})
            assert ended["ok"], ended
    finally:
        for peer in peers:
            await peer.close()
    lines = [JsonFormatter().format(record) for record in production_logs.records]
    # The media session did log, under the call's pseudonym ...
    assert any(re.search(r"call is-[0-9a-f]{16}: citizen peer", line) for line in lines), lines
    # ... and nothing logged names the call or any of the caller's addresses.
    secrets = (call_id, CALLER, CANDIDATE_INSIDE, CANDIDATE_OUTSIDE, SDP_CANDIDATE_OUTSIDE)
    leaks = [line for line in lines if any(secret in line for secret in secrets)]
    assert leaks == []
