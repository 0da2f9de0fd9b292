"""Directory sign-in in Chromium: a real ``python -m server run`` with LDAP_URL pointing at a slapd
of the test's own (tests/ldap_directory.py); an operator signs in on /login with the directory's
password and their TOTP code and reaches the console; the Lifeline password made by
``users add`` is refused with the page's one message; the break-glass admin stays local.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.ldap_directory import PEOPLE, SERVICE_DN, SERVICE_PASSWORD, Directory, Person

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
OLGA = Person("olga", "olga's directory passphrase")


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    server = Directory(tmp_path / "slapd", [OLGA])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(tmp_path: Path, directory: Directory) -> Iterator[RunningServer]:
    secret = tmp_path / "bind-password"
    secret.write_text(SERVICE_PASSWORD + "\n")
    env = {
        "LIFELINE_LDAP_URL": directory.url,
        "LIFELINE_LDAP_BIND_DN": SERVICE_DN,
        "LIFELINE_LDAP_BIND_PASSWORD_FILE": str(secret),
        "LIFELINE_LDAP_USER_BASE": PEOPLE,
        "LIFELINE_LDAP_TIMEOUT_SECS": "2",
        "LIFELINE_LDAP_LOCAL_ACCOUNTS": "admin",
    }
    # In a thread: in scale-out mode start_server resets PostgreSQL with asyncio.run(), which
    # the thread of sync Playwright's event loop refuses (tests/browser/test_first_admin.py).
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(start_server, tmp_path / "data", env).result()
    yield running
    stop_server(running)


def login(page: Page, base: str, username: str, password: str, totp: str) -> None:
    page.goto(f"{base}/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("input[name=totp]").fill(totp)
    page.get_by_test_id("login-submit").click()


def test_an_operator_signs_in_with_the_directory_password(
    browser: Browser, server: RunningServer
) -> None:
    secret = add_staff(server, OLGA.uid, "operator")
    totp = pyotp.TOTP(secret)
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        # The account's Lifeline password is not the one: the same message as any failure.
        login(page, server.base, OLGA.uid, STAFF_PASSWORD, totp.now())
        expect(page.get_by_test_id("form-error")).to_contain_text("Sign-in failed")

        login(page, server.base, OLGA.uid, OLGA.password, totp.now())
        expect(page).to_have_url(re.compile(r"/console$"))
        expect(page.get_by_test_id("logout")).to_be_visible()
    finally:
        context.close()
    # The break-glass admin is local: the first start's one-time password still opens it.
    assert server.admin_password
    page = browser.new_page()
    try:
        login(page, server.base, "admin", server.admin_password, "")
        expect(page).to_have_url(re.compile(r"/account/password$"))
    finally:
        page.close()
