"""Signing staff in over real HTTP, as a browser would: GET the form, POST it with its token."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyotp
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from sqlmodel import col, select

from server.actions.users import Actor, do_create_user
from server.core.clock import FrozenClock
from server.core.services import Services
from server.db.models import AuditEntry
from server.http.keys import SERVICES_KEY

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery staple"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def services_of(client: Client) -> Services:
    """The services of the app behind ``client`` (tests call actions on them directly)."""
    assert client.app is not None
    return client.app[SERVICES_KEY]


async def audit_rows(
    client: Client, *, action: str | None = None, subject: str | None = None
) -> list[AuditEntry]:
    """The chain's entries of ``action`` and/or about ``subject``, oldest first."""
    query = select(AuditEntry).order_by(col(AuditEntry.seq))
    if action is not None:
        query = query.where(col(AuditEntry.action) == action)
    if subject is not None:
        query = query.where(col(AuditEntry.subject) == subject)
    async with services_of(client).db.session() as session:
        return list((await session.exec(query)).all())


@dataclass
class Account:
    username: str
    password: str
    totp_secret: str

    def code(self, clock: FrozenClock, steps_ahead: int = 0) -> str:
        """The code an authenticator shows at ``clock`` (a later step: a code not used yet)."""
        return pyotp.TOTP(self.totp_secret).at(clock.now(), counter_offset=steps_ahead)


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def add_account(client: Client, username: str, role: str) -> Account:
    """An enrolled account (password set, TOTP confirmed), made as `users add` makes it."""
    app = client.app
    assert app is not None
    created = await do_create_user(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        actor=Actor.command_line("test"),
        username=username,
        role=role,
        password=PASSWORD,
        with_totp_secret=True,
    )
    assert created.user.totp_secret
    return Account(username, PASSWORD, created.user.totp_secret)


async def page_csrf(client: Client, path: str = "/login") -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return csrf_of(await response.text())


async def post_login(
    client: Client, username: str, password: str, totp: str = "", next_path: str = ""
) -> ClientResponse:
    token = await page_csrf(client)
    return await client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "totp": totp,
            "csrf_token": token,
            "next": next_path,
        },
        allow_redirects=False,
    )


async def sign_in(client: Client, account: Account, clock: FrozenClock, step: int = 0) -> str:
    """Sign in fully; returns the session's CSRF token (for the API's X-CSRF-Token)."""
    response = await post_login(
        client, account.username, account.password, account.code(clock, step)
    )
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    page = await client.get(location)
    assert page.status == 200, (location, await page.text())
    return csrf_of(await page.text())


class _SecondBrowser(TestClient[web.Request, web.Application]):
    """A client of a server another client owns: closing it leaves the server running."""

    async def close(self) -> None:
        await self.session.close()


async def another_browser(client: Client) -> Client:
    """A second browser on the same server: its own cookie jar. Close it after use."""
    other = _SecondBrowser(client.server)
    await other.start_server()
    return other
