"""Account recovery against a real server: an admin resets a colleague who lost their phone,
lifts the wait after failed sign-ins, signs an account out everywhere; each with a reason and in
the audit chain; internal-security accounts and the admin's own refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pyotp
from sqlmodel import col, select

from server.actions.users import Actor, do_create_user
from server.core.clock import FrozenClock
from server.db.models import AuditEntry, User
from tests.sockets import console
from tests.staff import (
    PASSWORD,
    Account,
    Client,
    add_account,
    another_browser,
    csrf_of,
    page_csrf,
    post_login,
    services_of,
    sign_in,
)

REASON = "lost phone before the night shift"
NEW_PASSWORD = "a much longer passphrase 2026"
OTP_RE = re.compile(r'data-testid="one-time-password">([^<]+)<')


async def _user(client: Client, username: str) -> User:
    async with services_of(client).db.session() as session:
        return (await session.exec(select(User).where(col(User.username) == username))).one()


async def _entries(client: Client, username: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The chain's entries about ``username``: (action, actor, data), oldest first."""
    async with services_of(client).db.session() as session:
        rows = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.subject) == f"user:{username}")
                .order_by(col(AuditEntry.seq))
            )
        ).all()
    return [(row.action, row.actor, json.loads(row.data)) for row in rows]


async def _admin_post(
    client: Client, path: str, reason: str, page: str = "/admin"
) -> tuple[int, str]:
    """A recovery form of /admin (or of ``page``), submitted as the page's button would."""
    token = await page_csrf(client, page)
    response = await client.post(
        path, data={"reason": reason, "csrf_token": token}, allow_redirects=False
    )
    return response.status, await response.text()


async def test_a_reset_signs_out_and_asks_for_a_new_password_and_totp(
    client: Client, clock: FrozenClock
) -> None:
    await sign_in(client, await add_account(client, "root", "admin"), clock)
    olga = await add_account(client, "olga", "operator")
    desk = await another_browser(client)
    try:
        await sign_in(desk, olga, clock)
        user = await _user(client, "olga")
        status, html = await _admin_post(client, f"/admin/users/{user.id}/reset", REASON)
        assert status == 200, html
        assert 'data-testid="recovery-notice"' in html and 'data-action="reset"' in html
        match = OTP_RE.search(html)
        assert match, "the one-time password is shown"
        once = match.group(1).strip()
        # Shown once: the page again does not have it.
        assert once not in await (await client.get("/admin")).text()

        # The operator's open browser is signed out at its next request.
        gone = await desk.get("/console", allow_redirects=False)
        assert gone.status == 303 and gone.headers["Location"].startswith("/login")
        after = await _user(client, "olga")
        assert after.must_change_password and after.totp_secret is None
        assert not after.totp_confirmed
        # The old password no longer opens anything; the one-time one does, to the forced change.
        desk.session.cookie_jar.clear()
        old = await post_login(desk, "olga", PASSWORD, olga.code(clock, 1))
        assert old.status == 401
        first = await post_login(desk, "olga", once)
        assert first.status == 303 and first.headers["Location"] == "/account/password"
        token = csrf_of(await (await desk.get("/account/password")).text())
        changed = await desk.post(
            "/account/password",
            data={
                "new_password": NEW_PASSWORD,
                "new_password_confirm": NEW_PASSWORD,
                "csrf_token": token,
            },
            allow_redirects=False,
        )
        assert changed.headers["Location"] == "/account/totp"
        enrol = await (await desk.get("/account/totp")).text()
        secret = (await _user(client, "olga")).totp_secret
        assert secret and secret != olga.totp_secret and secret in enrol
        done = await desk.post(
            "/account/totp",
            data={"totp": pyotp.TOTP(secret).at(clock.now()), "csrf_token": csrf_of(enrol)},
            allow_redirects=False,
        )
        assert done.headers["Location"] == "/console"

        # The lost phone's codes open nothing; the new authenticator's do.
        desk.session.cookie_jar.clear()
        stale = await post_login(desk, "olga", NEW_PASSWORD, olga.code(clock, 1))
        assert stale.status == 401
        fresh = Account("olga", NEW_PASSWORD, secret)
        assert (await post_login(desk, "olga", NEW_PASSWORD, fresh.code(clock, 1))).status == 303
    finally:
        await desk.close()

    steps = [(action, actor) for action, actor, _ in await _entries(client, "olga")]
    assert steps[-7:] == [
        ("user_reset", "root"),
        ("login_failed", "olga"),
        ("login", "olga"),
        ("password_changed", "olga"),
        ("totp_enrolled", "olga"),
        ("login_failed", "olga"),
        ("login", "olga"),
    ]
    reset = next(
        data for action, _, data in await _entries(client, "olga") if action == "user_reset"
    )
    assert reset["reason"] == REASON and reset["role"] == "operator"
    assert reset["totp_dropped"] is True and reset["sessions_ended"] == 1
    assert (await services_of(client).audit.verify()).ok


async def test_each_action_needs_a_reason(client: Client, clock: FrozenClock) -> None:
    await sign_in(client, await add_account(client, "root", "admin"), clock)
    await add_account(client, "olga", "operator")
    user = await _user(client, "olga")
    for action in ("reset", "unlock", "end-sessions"):
        status, html = await _admin_post(client, f"/admin/users/{user.id}/{action}", "   ")
        assert status == 400, action
        assert 'data-code="reason_required"' in html
    assert (await _user(client, "olga")).password_hash == user.password_hash
    assert [a for a, _, _ in await _entries(client, "olga")] == ["user_created"]


async def test_the_api_says_the_same_in_json(client: Client, clock: FrozenClock) -> None:
    csrf = await sign_in(client, await add_account(client, "root", "admin"), clock)
    await add_account(client, "olga", "operator")
    user = await _user(client, "olga")
    headers = {"X-CSRF-Token": csrf}
    missing = await client.post(f"/api/users/{user.id}/reset", json={}, headers=headers)
    assert missing.status == 422
    assert (await missing.json())["error"]["code"] in {"invalid", "unknown_field"}
    long = await client.post(
        f"/api/users/{user.id}/unlock", json={"reason": "x" * 501}, headers=headers
    )
    assert (await long.json())["error"]["code"] == "reason_too_long"
    unknown = await client.post(
        "/api/users/9999/end-sessions", json={"reason": REASON}, headers=headers
    )
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "user_not_found"
    no_csrf = await client.post(f"/api/users/{user.id}/reset", json={"reason": REASON})
    assert (await no_csrf.json())["error"]["code"] == "csrf_failed"
    reset = await client.post(
        f"/api/users/{user.id}/reset", json={"reason": REASON}, headers=headers
    )
    assert reset.status == 200
    body = await reset.json()
    assert len(body["one_time_password"]) >= 12
    assert body["user"]["must_change_password"] and not body["user"]["totp_confirmed"]


async def test_ending_the_sessions_closes_the_console_on_its_node(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    await sign_in(client, await add_account(client, "root", "admin"), clock)
    user = await _user(client, "olga")
    async with console(operator) as desk:
        status, html = await _admin_post(client, f"/admin/users/{user.id}/end-sessions", REASON)
        assert status == 200, html
        assert 'data-testid="recovery-sessions-ended" data-count="1"' in html
        assert (await desk.next_event("session.ended"))["reason"] == "revoked"
        await desk.until_closed()
    gone = await operator.get("/console", allow_redirects=False)
    assert gone.status == 303 and gone.headers["Location"].startswith("/login")
    # The password and TOTP stay: this was a sign-out, not a reset.
    assert (await _user(client, "olga")).totp_confirmed
    ended = [d for a, _, d in await _entries(client, "olga") if a == "user_sessions_ended"]
    assert ended == [{"role": "operator", "reason": REASON, "sessions_ended": 1}]


async def test_lifting_the_lock_lets_the_waiting_address_try_again(
    client: Client, clock: FrozenClock
) -> None:
    await sign_in(client, await add_account(client, "root", "admin"), clock)
    olga = await add_account(client, "olga", "operator")
    desk = await another_browser(client)
    try:
        for _ in range(services_of(client).settings.LOGIN_MAX_FAILURES + 1):
            assert (await post_login(desk, "olga", "wrong password", "")).status == 401
        users = (await (await client.get("/api/users")).json())["users"]
        assert next(u for u in users if u["username"] == "olga")["locked"] is True
        page = await (await client.get("/admin")).text()
        assert 'data-testid="badge-locked"' in page
        waiting = await post_login(desk, "olga", PASSWORD, olga.code(clock))
        assert waiting.status == 401, "the address waits, even with the right password"

        user = await _user(client, "olga")
        status, html = await _admin_post(client, f"/admin/users/{user.id}/unlock", REASON)
        assert status == 200, html
        assert 'data-action="unlock"' in html and 'data-testid="badge-locked"' not in html
        assert (await post_login(desk, "olga", PASSWORD, olga.code(clock, 1))).status == 303
    finally:
        await desk.close()
    lifted = [d for a, _, d in await _entries(client, "olga") if a == "user_unlocked"]
    assert lifted == [{"role": "operator", "reason": REASON, "waits_lifted": 1}]


async def test_internal_security_accounts_are_the_units_own(
    client: Client, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, await add_account(client, "root", "admin"), clock)
    officer = await add_account(client, "ira", "internal_security")
    await add_account(client, "igor", "internal_security")
    ira = await _user(client, "ira")
    for action in ("reset", "unlock", "end-sessions"):
        status, html = await _admin_post(client, f"/admin/users/{ira.id}/{action}", REASON)
        assert status == 403, action
        assert 'data-code="internal_security_only"' in html
    api = await client.post(
        f"/api/users/{ira.id}/reset", json={"reason": REASON}, headers={"X-CSRF-Token": csrf}
    )
    assert api.status == 403
    assert (await api.json())["error"]["code"] == "internal_security_only"
    assert (await _user(client, "ira")).password_hash == ira.password_hash
    refused = [d for a, _, d in await _entries(client, "ira") if a == "account_change_refused"]
    assert [d["attempt"] for d in refused] == ["reset", "unlock", "end_sessions", "reset"]
    assert all(d["code"] == "internal_security_only" for d in refused)

    # Another officer may, on the unit's page; its list shows the refusals and the reset.
    unit = await another_browser(client)
    try:
        await sign_in(unit, officer, clock)
        igor = await _user(client, "igor")
        status, html = await _admin_post(
            unit, f"/security/officers/{igor.id}/reset", "officer's phone stolen", "/security"
        )
        assert status == 200, html
        # But an officer resets no one else, and the API is the admins'.
        root = await _user(client, "root")
        status, html = await _admin_post(
            unit, f"/security/officers/{root.id}/reset", REASON, "/security"
        )
        assert status == 403 and 'data-code="role_forbidden"' in html
        api = await unit.post(
            f"/api/users/{igor.id}/unlock",
            json={"reason": REASON},
            headers={"X-CSRF-Token": csrf_of(await (await unit.get("/security")).text())},
        )
        assert (await api.json())["error"]["code"] == "role_forbidden"
        changes = (await (await unit.get("/api/security/access-changes")).json())["changes"]
    finally:
        await unit.close()
    listed = [(c["attempt"], c["username"], c["outcome"]) for c in changes]
    assert ("reset", "igor", "done") in listed
    assert ("reset", "ira", "refused") in listed and ("end_sessions", "ira", "refused") in listed


async def test_not_on_the_admins_own_account(client: Client, clock: FrozenClock) -> None:
    await sign_in(client, await add_account(client, "root", "admin"), clock)
    # A second admin, so "the last admin" is not why.
    await do_create_user(
        services_of(client).audit,
        clock,
        actor=Actor.command_line("test"),
        username="second",
        role="admin",
        password=PASSWORD,
    )
    root = await _user(client, "root")
    for action in ("reset", "unlock", "end-sessions"):
        status, html = await _admin_post(client, f"/admin/users/{root.id}/{action}", REASON)
        assert status == 409, action
        assert 'data-code="own_account"' in html
    assert (await client.get("/admin")).status == 200, "still signed in"
    page = await (await client.get("/admin")).text()
    assert 'data-testid="recovery-self"' in page
    assert [a for a, _, _ in await _entries(client, "root")][-1] == "login"


async def test_an_officer_resets_another_on_the_units_page(
    client: Client, clock: FrozenClock
) -> None:
    ira = await add_account(client, "ira", "internal_security")
    await add_account(client, "igor", "internal_security")
    await sign_in(client, ira, clock)
    page = await (await client.get("/security")).text()
    assert page.count('data-testid="recovery"') == 1, "igor's row; ira's own has none"
    assert 'data-testid="recovery-self"' in page
    igor = await _user(client, "igor")
    token = csrf_of(page)
    done = await client.post(
        f"/security/officers/{igor.id}/reset",
        data={"reason": "officer's phone stolen", "csrf_token": token},
    )
    html = await done.text()
    assert done.status == 200, html
    assert OTP_RE.search(html) and 'data-action="reset"' in html
    assert 'data-attempt="reset"' in html, "the access changes list the reset"
    assert (await _user(client, "igor")).must_change_password
