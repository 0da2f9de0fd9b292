"""``python -m server users list | disable | reset`` as real subprocesses on the test's database,
beside a running server that sees what they did."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from sqlmodel import col, select

from config import Settings
from server.core.clock import FrozenClock
from server.db.models import AuditEntry
from tests.staff import Client, add_account, another_browser, post_login, services_of, sign_in

REASON = "lost phone, ticket 4711"


def users(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m server users ARGS`` with the test's database (and Redis, in scale-out)."""
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_DATABASE_URL": settings.database_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "server", "users", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table(stdout: str) -> dict[str, list[str]]:
    """``users list``'s rows by name (the header checked, the columns split on 2+ spaces)."""
    lines = stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["name", "role", "disabled", "totp", "last sign-in"]
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    return {row[0]: row[1:] for row in rows}


async def test_users_list_shows_role_disabled_totp_and_last_sign_in(
    client: Client, settings: Settings, clock: FrozenClock
) -> None:
    root = await add_account(client, "root", "admin")
    await add_account(client, "olga", "operator")
    await sign_in(client, root, clock)
    done = users(settings, "list")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["olga", "root"], "by name"
    assert rows["olga"] == ["operator", "no", "yes", "never"]
    assert rows["root"][:3] == ["admin", "no", "yes"]
    assert rows["root"][3] == clock.now().strftime("%Y-%m-%d %H:%M UTC")


async def test_users_disable_signs_the_account_out(
    client: Client, settings: Settings, clock: FrozenClock
) -> None:
    await add_account(client, "root", "admin")
    olga = await add_account(client, "olga", "operator")
    desk = await another_browser(client)
    try:
        await sign_in(desk, olga, clock)
        done = users(settings, "disable", "olga")
        assert (done.returncode, done.stdout) == (0, "disabled olga (operator)\n"), done.stderr
        gone = await desk.get("/console", allow_redirects=False)
        assert gone.status == 303 and gone.headers["Location"].startswith("/login")
    finally:
        await desk.close()
    again = users(settings, "disable", "olga")
    assert (again.returncode, again.stdout) == (0, "olga is disabled already\n")
    assert table(users(settings, "list").stdout)["olga"][1] == "yes"


async def test_users_reset_prints_a_one_time_password_that_signs_in_to_the_forced_change(
    client: Client, settings: Settings, clock: FrozenClock
) -> None:
    olga = await add_account(client, "olga", "operator")
    done = users(settings, "reset", "OLGA", "--reason", REASON)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "reset olga (operator); sessions ended: 0"
    match = re.fullmatch(r"one-time password: (\S+) \(must be changed .*\)", lines[1])
    assert match, done.stdout
    assert table(users(settings, "list").stdout)["olga"][2] == "no", "TOTP to be enrolled again"
    assert (await post_login(client, "olga", olga.password, olga.code(clock))).status == 401
    first = await post_login(client, "olga", match.group(1))
    assert first.status == 303 and first.headers["Location"] == "/account/password"
    async with services_of(client).db.session() as session:
        entry = (
            await session.exec(select(AuditEntry).where(col(AuditEntry.action) == "user_reset"))
        ).one()
    assert (entry.actor, entry.subject) == ("cli", "user:olga")
    assert json.loads(entry.data)["reason"] == REASON


async def test_an_unknown_user_or_a_refusal_is_one_line_and_exit_2(
    client: Client, settings: Settings
) -> None:
    await add_account(client, "root", "admin")
    for args in (
        ("reset", "nobody", "--reason", REASON),
        ("disable", "nobody"),
        ("reset", "root", "--reason", "   "),
        ("disable", "root"),  # the last active admin
    ):
        done = users(settings, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stdout == ""
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "nobody" in users(settings, "disable", "nobody").stderr
    assert "admin" in users(settings, "disable", "root").stderr
    missing = users(settings, "reset", "root")
    assert missing.returncode == 2 and "--reason" in missing.stderr
