"""Bad input of every kind: a clear 4xx with a reason and a log line; nothing stored changes."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from sqlmodel import col, select

from server.core.clock import FrozenClock
from server.db.models import AuditEntry, StaffSession, User
from server.http.keys import SERVICES_KEY
from tests.staff import PASSWORD, Client, add_account, post_login, sign_in


async def _stored(client: Client) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        users = (await session.exec(select(User).order_by(col(User.id)))).all()
        sessions = (await session.exec(select(StaffSession))).all()
        audit = (await session.exec(select(AuditEntry))).all()
    return {
        "users": [u.model_dump() for u in users],
        "sessions": len(sessions),
        "audit": len(audit),
    }


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lifeline.http" and r.getMessage() == "refused"]


@pytest.fixture
async def admin(client: Client, clock: FrozenClock) -> str:
    account = await add_account(client, "boss", "admin")
    return await sign_in(client, account, clock)


async def _assert_error(response: Any, status: int, code: str) -> None:
    assert response.status == status, await response.text()
    body = await response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


@pytest.mark.parametrize(
    ("name", "kwargs", "status", "code"),
    [
        (
            "malformed json",
            {"data": b"{not json", "ctype": "application/json"},
            400,
            "malformed_json",
        ),
        (
            "not json at all",
            {"data": b"username=x", "ctype": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ("wrong types", {"json": {"username": 42, "role": ["operator"]}}, 422, "invalid"),
        ("missing field", {"json": {"username": "zed"}}, 422, "invalid"),
        (
            "extra field",
            {"json": {"username": "zed", "role": "operator", "is_admin": True}},
            422,
            "invalid",
        ),
        ("unknown role", {"json": {"username": "zed", "role": "god"}}, 400, "invalid_role"),
        (
            "bad username",
            {"json": {"username": "<script>", "role": "operator"}},
            400,
            "invalid_username",
        ),
        (
            "oversize body",
            {"data": b'{"username": "' + b"x" * 2_000_000 + b'"}', "ctype": "application/json"},
            413,
            "body_too_large",
        ),
    ],
)
async def test_bad_api_bodies_are_refused(
    client: Client,
    admin: str,
    caplog: pytest.LogCaptureFixture,
    name: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = await _stored(client)
    caplog.set_level(logging.INFO, logger="lifeline.http")
    headers = {"X-CSRF-Token": admin}
    if "json" in kwargs:
        response = await client.post("/api/users", json=kwargs["json"], headers=headers)
    else:
        headers["Content-Type"] = kwargs["ctype"]
        body = io.BytesIO(kwargs["data"])
        response = await client.post("/api/users", data=body, headers=headers)
    await _assert_error(response, status, code)
    assert _refusals(caplog), f"{name}: no log line"
    assert await _stored(client) == before, f"{name}: something stored changed"


async def test_missing_or_wrong_csrf_is_refused(
    client: Client, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lifeline.http")
    before = await _stored(client)
    for headers in ({}, {"X-CSRF-Token": "forged-token-forged-token"}):
        response = await client.post(
            "/api/users", json={"username": "mallory", "role": "admin"}, headers=headers
        )
        await _assert_error(response, 403, "csrf_failed")
    form = await client.post("/admin/users", data={"username": "mallory", "role": "admin"})
    assert form.status == 403
    assert "text/html" in form.headers["Content-Type"]
    logout = await client.post("/logout", data={}, allow_redirects=False)
    assert logout.status == 403
    assert len(_refusals(caplog)) == 4
    assert await _stored(client) == before


async def test_login_without_csrf_cookie_is_refused(client: Client) -> None:
    await add_account(client, "gail", "operator")
    before = await _stored(client)
    response = await client.post(
        "/login",
        data={"username": "gail", "password": PASSWORD, "totp": "123456"},
        allow_redirects=False,
    )
    assert response.status == 403
    assert await _stored(client) == before


async def test_wrong_password_and_unknown_user(
    client: Client, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    account = await add_account(client, "hugo", "operator")
    caplog.set_level(logging.INFO, logger="lifeline.auth")
    before = await _stored(client)
    wrong = await post_login(client, "hugo", "not the password", account.code(clock))
    unknown = await post_login(client, "nobody", PASSWORD, account.code(clock))
    for response in (wrong, unknown):
        assert response.status == 401
        html = await response.text()
        assert 'data-testid="form-error"' in html
    reasons = [getattr(r, "reason", "") for r in caplog.records if r.name == "lifeline.auth"]
    assert reasons == ["bad_password", "unknown_user"]
    after = await _stored(client)
    # The attempts are in the audit chain, and counted; the account itself is as it was.
    assert after["sessions"] == before["sessions"] == 0
    assert after["audit"] == before["audit"] + 2
    hugo_before, hugo_after = before["users"][0], after["users"][0]
    assert hugo_after["failed_logins"] == 1
    assert {k: v for k, v in hugo_after.items() if k != "failed_logins"} == {
        k: v for k, v in hugo_before.items() if k != "failed_logins"
    }


async def test_expired_session_gets_401_on_the_api(
    client: Client, admin: str, clock: FrozenClock
) -> None:
    clock.advance(16 * 60)
    before = await _stored(client)
    response = await client.post(
        "/api/users",
        json={"username": "late", "role": "operator"},
        headers={"X-CSRF-Token": admin},
    )
    await _assert_error(response, 401, "session_expired")
    after = await _stored(client)
    assert after["users"] == before["users"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/no-such-thing", 404, "not_found"),
        ("GET", "/no/such/page", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("PATCH", "/api/users/abc", 401, "unauthorized"),
        ("GET", "/i18n/xx.json", 404, "unknown_language"),
    ],
)
async def test_unknown_routes(
    client: Client,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    caplog.set_level(logging.INFO, logger="lifeline.http")
    response = await client.request(method, path, headers={"Accept": "application/json"})
    await _assert_error(response, status, code)
    assert _refusals(caplog)


async def test_browsers_get_a_page_not_json(client: Client) -> None:
    response = await client.get("/no/such/page", headers={"Accept": "text/html"})
    assert response.status == 404
    assert "text/html" in response.headers["Content-Type"]
    html = await response.text()
    assert "Traceback" not in html
    with pytest.raises(json.JSONDecodeError):
        json.loads(html)


async def test_patch_with_nothing_to_change(client: Client, admin: str) -> None:
    response = await client.patch("/api/users/1", json={}, headers={"X-CSRF-Token": admin})
    await _assert_error(response, 400, "empty_update")
    missing = await client.patch(
        "/api/users/999", json={"role": "operator"}, headers={"X-CSRF-Token": admin}
    )
    await _assert_error(missing, 404, "user_not_found")


async def test_a_bad_role_beside_a_good_change_changes_nothing(
    client: Client, admin: str, clock: FrozenClock
) -> None:
    await add_account(client, "ivo", "operator")
    users = (await (await client.get("/api/users")).json())["users"]
    ivo = next(u for u in users if u["username"] == "ivo")
    before = await _stored(client)
    response = await client.patch(
        f"/api/users/{ivo['id']}",
        json={"disabled": True, "role": "god"},
        headers={"X-CSRF-Token": admin},
    )
    await _assert_error(response, 400, "invalid_role")
    assert await _stored(client) == before
