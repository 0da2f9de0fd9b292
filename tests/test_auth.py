"""Staff sign-in against a real server: first login, TOTP, lockout, idle lock, logout, roles."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from sqlmodel import col, select

from server.actions.users import Actor, do_create_first_admin, do_create_user
from server.core.clock import FrozenClock
from server.db.models import User
from server.http.keys import SERVICES_KEY
from tests.staff import (
    PASSWORD,
    Client,
    add_account,
    another_browser,
    csrf_of,
    post_login,
    sign_in,
)

NEW_PASSWORD = "a much longer passphrase 2026"


async def test_first_login_forces_password_change_then_totp(
    client: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    created = await do_create_user(
        client.app[SERVICES_KEY].audit,
        clock,
        actor=Actor.command_line("test"),
        username="anna",
        role="operator",
    )
    assert created.password
    response = await post_login(client, "anna", created.password)
    assert response.status == 303
    assert response.headers["Location"] == "/account/password"
    # Nothing else opens until the steps are done.
    console = await client.get("/console", allow_redirects=False)
    assert console.headers["Location"] == "/account/password"
    api = await client.get("/api/users")
    assert api.status == 403
    assert (await api.json())["error"]["code"] == "sign_in_incomplete"

    page = await client.get("/account/password")
    token = csrf_of(await page.text())
    short = await client.post(
        "/account/password",
        data={"new_password": "short", "new_password_confirm": "short", "csrf_token": token},
    )
    assert short.status == 400
    done = await client.post(
        "/account/password",
        data={
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
            "csrf_token": token,
        },
        allow_redirects=False,
    )
    assert done.headers["Location"] == "/account/totp"

    enrol = await client.get("/account/totp")
    html = await enrol.text()
    assert "<svg" in html
    async with client.app[SERVICES_KEY].db.session() as session:
        from sqlmodel import select

        from server.db.models import User

        user = (await session.exec(select(User).where(User.username == "anna"))).one()
    assert user.totp_secret
    assert not user.totp_confirmed
    assert user.totp_secret in html
    token = csrf_of(html)
    wrong = await client.post("/account/totp", data={"totp": "000000", "csrf_token": token})
    assert wrong.status == 400
    code = pyotp.TOTP(user.totp_secret).at(clock.now())
    ok = await client.post(
        "/account/totp", data={"totp": code, "csrf_token": token}, allow_redirects=False
    )
    assert ok.status == 303
    assert ok.headers["Location"] == "/console", "the role's home, not the citizen page"
    console = await client.get("/console")
    assert console.status == 200

    # Next time: the new password and a code; the old one-time password is dead.
    client.session.cookie_jar.clear()
    old = await post_login(
        client,
        "anna",
        created.password,
        pyotp.TOTP(user.totp_secret).at(clock.now(), counter_offset=1),
    )
    assert old.status == 401
    again = await post_login(
        client, "anna", NEW_PASSWORD, pyotp.TOTP(user.totp_secret).at(clock.now(), counter_offset=1)
    )
    assert again.status == 303
    assert again.headers["Location"] == "/console"


async def test_totp_is_required_and_used_once(client: Client, clock: FrozenClock) -> None:
    account = await add_account(client, "boris", "operator")
    missing = await post_login(client, "boris", PASSWORD, "")
    assert missing.status == 401
    assert 'data-testid="form-error"' in await missing.text()
    good = await post_login(client, "boris", PASSWORD, account.code(clock))
    assert good.status == 303
    client.session.cookie_jar.clear()
    replay = await post_login(client, "boris", PASSWORD, account.code(clock))
    assert replay.status == 401, "a TOTP code must not be accepted twice"
    clock.advance(30)
    later = await post_login(client, "boris", PASSWORD, account.code(clock))
    assert later.status == 303


async def test_five_failures_make_that_address_wait(client: Client, clock: FrozenClock) -> None:
    """After five failures from one address, that address waits 1 s before its next try on the
    account, twice as long after each further failure (tests/test_login_abuse.py has the cap
    and the other addresses). A try while waiting fails like any other, even with the right
    password and code: the answer is the same 401 (no 423 telling that the account exists)."""
    account = await add_account(client, "carl", "operator")
    for _ in range(5):
        assert (await post_login(client, "carl", "wrong password!!")).status == 401
    waiting = await post_login(client, "carl", PASSWORD, account.code(clock))
    assert waiting.status == 401
    clock.advance(1)
    assert (await post_login(client, "carl", "wrong password!!")).status == 401  # now 2 s
    clock.advance(1.5)
    assert (await post_login(client, "carl", PASSWORD, account.code(clock))).status == 401
    clock.advance(0.5)
    assert (await post_login(client, "carl", PASSWORD, account.code(clock))).status == 303
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        from sqlmodel import select

        from server.db.models import AuditEntry

        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert actions.count("login_failed") == 6
    assert actions.count("login_refused") == 2
    assert actions[-1] == "login"


async def test_idle_session_asks_for_the_password_again(client: Client, clock: FrozenClock) -> None:
    account = await add_account(client, "dana", "operator")
    await sign_in(client, account, clock)
    clock.advance(14 * 60)
    assert (await client.get("/console")).status == 200
    clock.advance(14 * 60)  # active 14 minutes ago: still fine
    assert (await client.get("/console")).status == 200
    clock.advance(15 * 60 + 1)
    page = await client.get("/console", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/login?next=/console")
    assert "expired=1" in page.headers["Location"]
    login = await client.get(page.headers["Location"])
    assert 'name="password"' in await login.text()
    api = await client.get("/api/users")
    assert api.status == 401


async def test_logout_ends_the_session_at_once(client: Client, clock: FrozenClock) -> None:
    account = await add_account(client, "eve", "operator")
    token = await sign_in(client, account, clock)
    cookie = client.session.cookie_jar.filter_cookies(client.make_url("/"))["lifeline_session"]
    out = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert out.status == 303
    # Replaying the old cookie gets nothing.
    client.session.cookie_jar.update_cookies({"lifeline_session": cookie.value})
    page = await client.get("/console", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"].startswith("/login")


async def test_role_change_and_disable_take_effect_at_once(
    client: Client, aiohttp_client: object, clock: FrozenClock
) -> None:
    assert client.app is not None
    admin = await add_account(client, "root", "admin")
    admin_csrf = await sign_in(client, admin, clock)
    other = await another_browser(client)
    operator = await add_account(client, "fred", "operator")
    await sign_in(other, operator, clock)
    assert (await other.get("/console")).status == 200
    assert (await other.get("/wall")).status == 403

    users = (await (await client.get("/api/users")).json())["users"]
    fred = next(u for u in users if u["username"] == "fred")
    changed = await client.patch(
        f"/api/users/{fred['id']}",
        json={"role": "supervisor"},
        headers={"X-CSRF-Token": admin_csrf},
    )
    assert changed.status == 200, await changed.text()
    assert (await other.get("/wall")).status == 200
    assert (await other.get("/admin")).status == 403

    disabled = await client.patch(
        f"/api/users/{fred['id']}", json={"disabled": True}, headers={"X-CSRF-Token": admin_csrf}
    )
    assert disabled.status == 200
    gone = await other.get("/wall", allow_redirects=False)
    assert gone.status == 303
    refused = await post_login(other, "fred", PASSWORD, operator.code(clock, 1))
    assert refused.status == 401, "the same answer as a wrong password: nothing says disabled"
    await other.close()


async def test_last_admin_keeps_the_role(client: Client, clock: FrozenClock) -> None:
    admin = await add_account(client, "only", "admin")
    csrf = await sign_in(client, admin, clock)
    users = (await (await client.get("/api/users")).json())["users"]
    me = next(u for u in users if u["username"] == "only")
    for body in ({"role": "operator"}, {"disabled": True}):
        response = await client.patch(
            f"/api/users/{me['id']}", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 409
        assert (await response.json())["error"]["code"] == "last_admin"


async def test_admin_page_adds_disables_and_reroles(client: Client, clock: FrozenClock) -> None:
    admin = await add_account(client, "chief", "admin")
    csrf = await sign_in(client, admin, clock)
    added = await client.post(
        "/admin/users", data={"username": "Gosia", "role": "operator", "csrf_token": csrf}
    )
    assert added.status == 201
    html = await added.text()
    assert 'data-testid="one-time-password"' in html
    assert 'data-username="gosia"' in html
    # The same name again is a clear conflict, and nothing else changes.
    again = await client.post(
        "/admin/users", data={"username": "gosia", "role": "admin", "csrf_token": csrf}
    )
    assert again.status == 409
    users = (await (await client.get("/api/users")).json())["users"]
    gosia = next(u for u in users if u["username"] == "gosia")
    assert gosia["role"] == "operator"
    assert gosia["must_change_password"]
    role = await client.post(
        f"/admin/users/{gosia['id']}/role",
        data={"role": "supervisor", "csrf_token": csrf},
        allow_redirects=False,
    )
    assert role.status == 303
    off = await client.post(
        f"/admin/users/{gosia['id']}/disable", data={"csrf_token": csrf}, allow_redirects=False
    )
    assert off.status == 303
    users = (await (await client.get("/api/users")).json())["users"]
    gosia = next(u for u in users if u["username"] == "gosia")
    assert gosia["role"] == "supervisor"
    assert gosia["disabled"]


@pytest.mark.parametrize("role", ["operator", "supervisor", "internal_security"])
async def test_only_admins_reach_admin(client: Client, clock: FrozenClock, role: str) -> None:
    account = await add_account(client, f"user-{role.replace('_', '-')}", role)
    await sign_in(client, account, clock)
    page = await client.get("/admin")
    assert page.status == 403
    api = await client.get("/api/users")
    assert api.status == 403
    assert (await api.json())["error"]["code"] == "role_forbidden"


async def test_clock_is_the_apps(client: Client, clock: FrozenClock) -> None:
    assert client.app is not None
    assert client.app[SERVICES_KEY].clock is clock


async def test_an_admin_cannot_disable_themselves(client: Client, clock: FrozenClock) -> None:
    await add_account(client, "second-admin", "admin")
    me = await add_account(client, "first-admin", "admin")
    csrf = await sign_in(client, me, clock)
    page = await client.get("/admin")
    assert 'data-testid="admin-self"' in await page.text()
    users = (await (await client.get("/api/users")).json())["users"]
    mine = next(u for u in users if u["username"] == "first-admin")
    response = await client.patch(
        f"/api/users/{mine['id']}", json={"disabled": True}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "cannot_disable_self"


@pytest.mark.parametrize(
    "next_path",
    [
        "//evil.example/",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/%09/evil.example" + "x" * 600,
        "javascript:alert(1)",
    ],
)
async def test_sign_in_never_redirects_off_site(
    client: Client, clock: FrozenClock, next_path: str
) -> None:
    """Browsers drop tabs and newlines in a URL and read a backslash as a slash: each of these
    would leave the site; the sign-in sends the user to their home page instead."""
    account = await add_account(client, "nina", "operator")
    response = await post_login(
        client, account.username, account.password, account.code(clock), next_path
    )
    assert response.status == 303
    assert response.headers["Location"] == "/console"


async def test_sign_in_returns_to_a_path_on_the_site(client: Client, clock: FrozenClock) -> None:
    account = await add_account(client, "nina", "operator")
    response = await post_login(
        client, account.username, account.password, account.code(clock), "/console?tab=threats"
    )
    assert response.headers["Location"] == "/console?tab=threats"


async def test_two_nodes_starting_at_once_make_one_first_admin(client: Client) -> None:
    """Two nodes on an empty database race to create the first admin: one does, the other
    finds it (no crash, no second admin)."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    made = await asyncio.gather(
        *(do_create_first_admin(services.audit, services.clock, username="admin") for _ in range(2))
    )
    assert sum(1 for m in made if m is not None) == 1
    async with services.db.session() as session:
        admins = (await session.exec(select(User).where(col(User.role) == "admin"))).all()
    assert [a.username for a in admins] == ["admin"]


def test_users_add_on_an_unmigrated_database_says_so_in_one_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(tmp_path),
        "LIFELINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "users", "add", "bob", "--role", "operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "not ready" in done.stderr and "migrate" in done.stderr
    assert "Traceback" not in done.stderr
