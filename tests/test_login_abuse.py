"""Sign-in under abuse (issue 14, item 9), against a real server on an ephemeral port.

A common password is refused wherever a password is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import col, select

from server.actions.users import Actor, do_create_user
from server.core.clock import FrozenClock
from server.core.errors import AppError
from server.db.models import User
from server.http.keys import SERVICES_KEY
from server.security.passwords import password_problem
from tests.staff import PASSWORD, Client, csrf_of, post_login

COMMON_PASSWORDS = [
    "password1234",
    "P@ssw0rd2024!",
    "qwertyuiop123",
    "iloveyou2024",
    "aaaaaaaaaaaa",
]


def test_common_passwords_are_refused_and_passphrases_pass() -> None:
    """zxcvbn's bundled lists and patterns: the common passwords and their usual variations
    are refused; long passphrases of unrelated words are not."""
    for password in COMMON_PASSWORDS:
        assert password_problem(password, password, "olga") == "password.error.common", password
    for password in (PASSWORD, "Sturdy violet 93 harbour", "zq8-Vn2!pLk0-river"):
        assert password_problem(password, password, "olga") is None, password


async def test_a_common_password_is_refused_where_a_password_is_set(
    client: Client, clock: FrozenClock
) -> None:
    """An account made with a password, and the password change (the first admin's and every
    account's first sign-in, and any later one), in the page's language."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    with pytest.raises(AppError) as refused:
        await do_create_user(
            services.audit,
            clock,
            actor=Actor.command_line("test"),
            username="weak",
            role="operator",
            password="password1234",
        )
    assert refused.value.code.value == "password_refused"
    async with services.db.session() as session:
        assert (await session.exec(select(User).where(col(User.username) == "weak"))).all() == []

    created = await do_create_user(
        services.audit, clock, actor=Actor.command_line("test"), username="anna", role="operator"
    )
    assert created.password
    assert (await post_login(client, "anna", created.password)).status == 303
    for lang, text in (("en", "too common"), ("pl", "zbyt popularne")):
        page = await client.get(f"/account/password?lang={lang}")
        token = csrf_of(await page.text())
        weak = await client.post(
            "/account/password",
            data={
                "new_password": "password1234",
                "new_password_confirm": "password1234",
                "csrf_token": token,
            },
        )
        assert weak.status == 400
        assert text in await weak.text()


def test_users_add_refuses_a_common_password(tmp_path: Path) -> None:
    """`users add --password-stdin` refuses it, saying why (exit 2)."""
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(tmp_path),
        "LIFELINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "users",
            "add",
            "bob",
            "--role",
            "operator",
            "--password-stdin",
        ],
        input="password1234\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "common password" in done.stderr
