"""The lost phone, end to end in Chromium: an admin resets an operator on /admin with a reason;
the operator's open console is signed out; they sign in with the one-time password, must choose
a new password and enrol TOTP again; the lost phone's codes are refused; every step is in the
audit chain and ``evidence verify`` still passes. Then "sign out everywhere", and an
internal-security account an admin may not touch.

TOTP codes are computed with pyotp, as the authenticator app would (the Authenticator of
test_first_admin.py: each code of a step not used before, within the server's drift window).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer, read_with_server_settings
from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.browser.test_first_admin import (
    Authenticator,
    change_password,
    enrol_totp,
    login,
    logout,
    path_is,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
ADMIN = "chief"
OPERATOR = "op.nowak"
OFFICER = "is.wojcik"
REASON = "lost phone before the night shift (ticket 4711)"
NEW_PASSWORD = "Copper lighthouse 58 gulls"

# The chain's entries about one account, oldest first, read with the server's own settings.
ENTRIES_PY = """
import asyncio, json, sys
from sqlmodel import col, select
from config import load_settings
from server.db.engine import Database
from server.db.models import AuditEntry

async def main() -> None:
    db = Database(load_settings().database_url)
    async with db.session() as session:
        rows = (await session.exec(select(AuditEntry)
                .where(col(AuditEntry.subject) == sys.argv[1]).order_by(col(AuditEntry.seq)))).all()
    await db.close()
    print(json.dumps([{"action": r.action, "actor": r.actor, "data": json.loads(r.data)}
                      for r in rows]))

asyncio.run(main())
"""


@pytest.fixture
def admin_context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def operator_context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def entries(server: RunningServer, username: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = read_with_server_settings(server, ENTRIES_PY, f"user:{username}")
    return found


def row(page: Page, username: str) -> Any:
    return page.locator(f"[data-testid=admin-user-row][data-username='{username}']")


def recover(page: Page, username: str, button: str, reason: str) -> None:
    """Open the row's recovery, give the reason, press ``button`` (a recovery-* hook)."""
    recovery = row(page, username).get_by_test_id("recovery")
    recovery.get_by_test_id("recovery-open").click()
    recovery.get_by_test_id("recovery-reason").fill(reason)
    recovery.get_by_test_id(button).click()


def test_an_admin_resets_a_lost_phone_and_the_operator_enrols_again(
    live_server: RunningServer,
    admin_context: BrowserContext,
    operator_context: BrowserContext,
    artifacts: Path,
    page_errors: list[str],
) -> None:
    base = live_server.base
    admin_secret = add_staff(live_server, ADMIN, "admin")
    old_phone = Authenticator(add_staff(live_server, OPERATOR, "operator"))

    # The operator is at the console, on the phone that is about to be lost.
    console = operator_context.new_page()
    console.on("pageerror", lambda exc: page_errors.append(str(exc)))
    login(console, base, OPERATOR, STAFF_PASSWORD, old_phone.next_code())
    expect(console).to_have_url(path_is("/console"))
    expect(console.locator("body")).to_have_attribute("data-ready", "true")

    admin = admin_context.new_page()
    admin.on("pageerror", lambda exc: page_errors.append(str(exc)))
    login(admin, base, ADMIN, STAFF_PASSWORD, pyotp.TOTP(admin_secret).now())
    expect(admin).to_have_url(path_is("/admin"))
    expect(row(admin, ADMIN).get_by_test_id("recovery-self")).to_be_visible()
    recovery = row(admin, OPERATOR).get_by_test_id("recovery")
    recovery.get_by_test_id("recovery-open").click()
    recovery.get_by_test_id("recovery-reason").fill(REASON)
    admin.screenshot(path=str(artifacts / "admin-recovery-1920.png"))
    recovery.get_by_test_id("recovery-reset").click()

    notice = admin.get_by_test_id("recovery-notice")
    expect(notice).to_have_attribute("data-action", "reset")
    expect(notice).to_have_attribute("data-username", OPERATOR)
    once = admin.get_by_test_id("one-time-password").inner_text().strip()
    assert len(once) >= 12, f"a weak one-time password: {once!r}"
    expect(row(admin, OPERATOR).get_by_test_id("badge-no-totp")).to_be_visible()
    expect(row(admin, OPERATOR).get_by_test_id("badge-must-change")).to_be_visible()
    admin.screenshot(path=str(artifacts / "admin-reset-done-1920.png"))
    admin.goto(f"{base}/admin")
    expect(admin.get_by_test_id("one-time-password")).to_have_count(0)

    # The open console is signed out at once (its socket told), and goes to the sign-in page.
    expect(console).to_have_url(path_is("/login"))

    # The operator, with a new phone: the one-time password, a new password, TOTP again.
    login(console, base, OPERATOR, once)
    expect(console).to_have_url(path_is("/account/password"))
    console.set_viewport_size({"width": 360, "height": 740})
    expect(console.get_by_test_id("password-forced")).to_be_visible()
    console.screenshot(path=str(artifacts / "forced-password-change-360.png"))
    change_password(console, NEW_PASSWORD)
    new_phone = enrol_totp(console)
    assert new_phone.secret != old_phone.secret
    expect(console).to_have_url(path_is("/console"))
    console.set_viewport_size({"width": 1280, "height": 900})
    logout(console)

    # The lost phone's code (a step never used) no longer opens the account; the new one does.
    login(console, base, OPERATOR, NEW_PASSWORD, old_phone.next_code())
    expect(console.get_by_test_id("form-error")).to_be_visible()
    expect(console).to_have_url(path_is("/login"))
    login(console, base, OPERATOR, NEW_PASSWORD, new_phone.next_code())
    expect(console).to_have_url(path_is("/console"))

    steps = [(e["action"], e["actor"]) for e in entries(live_server, OPERATOR)]
    reset_at = steps.index(("user_reset", ADMIN))
    assert steps[reset_at:] == [
        ("user_reset", ADMIN),
        ("login", OPERATOR),
        ("password_changed", OPERATOR),
        ("totp_enrolled", OPERATOR),
        ("logout", OPERATOR),
        ("login_failed", OPERATOR),
        ("login", OPERATOR),
    ], steps
    chain = entries(live_server, OPERATOR)
    assert chain[reset_at]["data"]["reason"] == REASON
    assert chain[reset_at]["data"]["totp_dropped"] is True
    assert chain[reset_at + 5]["data"]["reason"] == "bad_totp"

    # "Sign out everywhere": the console goes to the sign-in page by itself, and another page
    # of the same browser finds no session at its next request.
    archive = operator_context.new_page()
    archive.goto(f"{base}/archive")
    expect(archive).to_have_url(path_is("/archive"))
    recover(admin, OPERATOR, "recovery-end-sessions", "handover to the day shift")
    expect(admin.get_by_test_id("recovery-notice")).to_have_attribute("data-action", "end-sessions")
    expect(admin.get_by_test_id("recovery-sessions-ended")).to_have_attribute("data-count", "1")
    expect(console).to_have_url(path_is("/login"))
    archive.reload()
    expect(archive).to_have_url(path_is("/login"))
    assert entries(live_server, OPERATOR)[-1]["action"] == "user_sessions_ended"

    verify = subprocess.run(
        [sys.executable, "-m", "server", "evidence", "verify"],
        env=live_server.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit chain intact"), verify.stdout


def test_an_admin_may_not_reset_an_internal_security_account(
    live_server: RunningServer, admin_context: BrowserContext, page_errors: list[str]
) -> None:
    base = live_server.base
    add_staff(live_server, OFFICER, "internal_security")
    admin_secret = add_staff(live_server, "chief2", "admin")
    admin = admin_context.new_page()
    admin.on("pageerror", lambda exc: page_errors.append(str(exc)))
    login(admin, base, "chief2", STAFF_PASSWORD, pyotp.TOTP(admin_secret).now())
    expect(admin).to_have_url(path_is("/admin"))
    officer_row = row(admin, OFFICER)
    expect(officer_row.get_by_test_id("admin-managed-by-security")).to_be_visible()
    expect(officer_row.get_by_test_id("recovery")).to_have_count(0)

    # The form the page does not offer, sent anyway: refused, and the attempt entered.
    user_id = officer_row.get_attribute("data-user-id")
    token = admin.locator("input[name=csrf_token]").first.get_attribute("value")
    assert user_id and token
    answer = admin.request.post(
        f"{base}/admin/users/{user_id}/reset", form={"reason": REASON, "csrf_token": token}
    )
    assert answer.status == 403
    assert re.search(r'data-code="internal_security_only"', answer.text())
    refused = entries(live_server, OFFICER)[-1]
    assert (refused["action"], refused["actor"]) == ("account_change_refused", "chief2")
    assert refused["data"]["attempt"] == "reset"
    assert [e["action"] for e in entries(live_server, OFFICER)].count("user_reset") == 0
