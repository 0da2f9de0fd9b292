"""Issue 13: the three-word code in real Chromium, for a call the caller starts (invited calls
are in test_invites.py). The caller's phone (360x740, dark theme) and the operator's console
show the same three words once the call is answered, the phone explains them in the caller's
language, and the screenshot of the phone is kept for a person to look at (item 8)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from server.security.call_code import WORD_LISTS
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
PHONE: ViewportSize = {"width": 360, "height": 740}
CONSOLE_SCREEN: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("code"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def desk(browser: Browser, code_server: RunningServer) -> Iterator[Page]:
    secret = add_staff(code_server, "marta", "operator")
    _name_on_admin(browser, code_server, "marta", "Marta Kowalczyk", "4521")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, code_server.base, "marta", secret, "/console")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("start-shift").click()
    yield page
    context.close()


def _name_on_admin(
    browser: Browser, server: RunningServer, username: str, name: str, badge: str
) -> None:
    """An admin sets what callers are shown of the operator, on /admin."""
    secret = add_staff(server, "root", "admin")
    context = browser.new_context(viewport=CONSOLE_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, server.base, "root", secret, "/admin")
    row = page.locator(f"[data-testid=admin-user-row][data-username={username}]")
    row.get_by_test_id("admin-display-name").fill(name)
    row.get_by_test_id("admin-badge").fill(badge)
    row.get_by_test_id("admin-set-identity").click()
    page.wait_for_url(f"{server.base}/admin")
    expect(row.get_by_test_id("admin-badge")).to_have_value(badge)
    context.close()


def _words(page: Page) -> list[str]:
    code = page.get_by_test_id("verification-code")
    expect(code).not_to_be_empty()
    return (code.text_content() or "").split()


def test_a_callers_phone_and_the_console_show_the_same_three_words(
    browser: Browser, code_server: RunningServer, desk: Page, artifacts: Path
) -> None:
    phone = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
        locale="kk-KZ",
        permissions=["camera", "microphone"],
    )
    phone.set_default_timeout(TIMEOUT_MS)
    citizen = phone.new_page()
    citizen.goto(f"{code_server.base}/?lang=kk")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    citizen.get_by_test_id("start-video-call").tap()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
    expect(citizen.get_by_test_id("verification-box")).to_be_hidden()  # no words while waiting

    expect(desk.get_by_test_id("queue-item")).to_have_count(1)
    desk.get_by_test_id("accept-call").click()
    expect(desk.get_by_test_id("console-call-state")).to_have_attribute("data-state", "live")
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")

    on_phone, on_console = _words(citizen), _words(desk)
    assert on_phone == on_console
    assert len(on_phone) == 3 and set(on_phone) <= set(WORD_LISTS["kk"])
    box = citizen.get_by_test_id("verification-box")
    expect(box).to_contain_text("полиция")  # the Kazakh explanation, not the English
    expect(citizen.get_by_test_id("operator-identity")).to_have_text(
        "Сіздің операторыңыз: Marta Kowalczyk, жетон 4521"
    )
    expect(box).to_be_in_viewport()
    # Who is on the call, beside the code (the wall's people-present): in view on the phone too.
    present = citizen.get_by_test_id("people-present")
    expect(present).to_have_attribute("data-roles", "operator")
    expect(present).to_be_in_viewport()
    citizen.screenshot(path=str(artifacts / "citizen-code-360x740.png"))

    # A reload picks the call up again with the same words.
    citizen.reload()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    assert _words(citizen) == on_console

    desk.get_by_test_id("end-call").click()
    desk.get_by_test_id("disposition").select_option("advice_given")
    desk.get_by_test_id("end-confirm").click()
    expect(desk.get_by_test_id("console-call-state")).to_have_attribute("data-state", "ended")
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "ended")
    expect(citizen.get_by_test_id("verification-box")).to_be_hidden()
    expect(desk.get_by_test_id("verification-box")).to_be_hidden()
    phone.close()
