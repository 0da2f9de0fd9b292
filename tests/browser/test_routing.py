"""Automatic distribution in the browser (docs/routing.md): an admin sets an operator's languages
on /admin; a citizen calls; the operator's console rings without a click (the loud panel, the
caller's language and wait), the operator answers with the keyboard; the wall shows them
ringing, then in the call, with their languages; after the call, wrap-up until they press R.
Screenshot of the ringing console: tests/artifacts/console-ringing.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    PHONE,
    RECORD_PEERS_JS,
    WARSAW,
    end_from_console,
    start_call,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
RING_SECS = 15

CENTRE_ZONE = "Asia/Almaty"


@pytest.fixture(scope="module")
def routing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("routing"),
        {
            "LIFELINE_ROUTING_MODE": "auto",
            # Long enough to answer with the keyboard on a loaded machine, short enough to
            # watch one ring run out.
            "LIFELINE_RING_SECS": str(RING_SECS),
            "LIFELINE_CALL_RATE_LIMIT": "100/minute",
            # The centre's own zone, not the browser's (UTC here): the wall tells times in it.
            "LIFELINE_TIME_ZONE": CENTRE_ZONE,
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(routing_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out start-up resets PostgreSQL)."""


def staff_page(
    browser: Browser, server: RunningServer, name: str, role: str, home: str, errors: list[str]
) -> Page:
    secret = add_staff(server, name, role)
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{name}: {error}"))
    sign_in(page, server.base, name, secret, home)
    return page


# Three staff sign-ins, two calls and a ring left to run out: past the default 120 s on a
# loaded machine (101 s measured with the scale-out run beside the embedded one).
@pytest.mark.timeout(300)
def test_the_console_rings_and_the_operator_answers_with_the_keyboard(
    browser: Browser, routing_server: RunningServer, page_errors: list[str], artifacts: Path
) -> None:
    admin = staff_page(browser, routing_server, "adm1", "admin", "/admin", page_errors)
    console = staff_page(browser, routing_server, "op1", "operator", "/console", page_errors)
    wall = staff_page(browser, routing_server, "sup1", "supervisor", "/wall", page_errors)

    # The admin gives op1 their languages on /admin.
    admin.reload()
    row = admin.locator("[data-testid=admin-user-row][data-username=op1]")
    for code in ("en", "kk"):
        row.locator(f"[data-testid=admin-skill][data-language={code}]").check()
    row.get_by_test_id("admin-set-skills").click()
    expect(row.locator("[data-testid=admin-skill][data-language=kk]")).to_be_checked(
        timeout=TIMEOUT_MS
    )
    expect(row.locator("[data-testid=admin-skill][data-language=ru]")).not_to_be_checked()

    expect(console.get_by_test_id("connection-state")).to_have_attribute(
        "data-state", "connected", timeout=TIMEOUT_MS
    )
    expect(console.get_by_test_id("operator-status")).to_have_attribute(
        "data-state", "available", timeout=TIMEOUT_MS
    )
    expect(wall.locator("body")).to_have_attribute("data-live", "true", timeout=TIMEOUT_MS)
    operator = wall.locator("[data-testid=operator-state][data-user=op1]")
    expect(operator).to_have_attribute("data-state", "available", timeout=TIMEOUT_MS)
    expect(operator.get_by_test_id("operator-skills")).to_have_text("EN KK", timeout=TIMEOUT_MS)

    phone = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=WARSAW,
    )
    phone.set_default_timeout(TIMEOUT_MS)
    phone.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    try:
        citizen, call_id = start_call(phone, routing_server.base, TIMEOUT_MS)
        # Nobody clicks: the call rings op1's console.
        ring = console.get_by_test_id("ring-panel")
        expect(ring).to_be_visible(timeout=TIMEOUT_MS)
        expect(ring).to_have_attribute("data-call-id", call_id, timeout=TIMEOUT_MS)
        expect(console.get_by_test_id("ring-language")).to_have_text("EN", timeout=TIMEOUT_MS)
        expect(console.get_by_test_id("ring-wait")).to_contain_text("0:0", timeout=TIMEOUT_MS)
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "ringing", timeout=TIMEOUT_MS
        )
        expect(console.get_by_test_id("ring-accept")).to_be_focused(timeout=TIMEOUT_MS)
        queued = console.locator(f"[data-testid=queue-item][data-call-id='{call_id}']")
        expect(queued).to_have_attribute("data-ringing", "op1", timeout=TIMEOUT_MS)
        expect(operator).to_have_attribute("data-state", "ringing", timeout=TIMEOUT_MS)
        on_wall = wall.locator(f"[data-testid=wall-call][data-call-id='{call_id}']")
        expect(on_wall).to_have_attribute("data-ringing", "op1", timeout=TIMEOUT_MS)
        console.screenshot(path=str(artifacts / "console-ringing.png"))
        wall.screenshot(path=str(artifacts / "wall-operator-ringing.png"))

        console.keyboard.press("a")
        expect(console.get_by_test_id("console-call-state")).to_have_attribute(
            "data-state", "live", timeout=TIMEOUT_MS
        )
        expect(ring).to_be_hidden(timeout=TIMEOUT_MS)
        expect(citizen.get_by_test_id("call-state")).to_have_attribute(
            "data-state", "answered", timeout=TIMEOUT_MS
        )
        expect(operator).to_have_attribute("data-state", "in_call", timeout=TIMEOUT_MS)
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "in_call", timeout=TIMEOUT_MS
        )

        end_from_console(console, citizen, TIMEOUT_MS)
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "wrap_up", timeout=TIMEOUT_MS
        )
        expect(operator).to_have_attribute("data-state", "wrap_up", timeout=TIMEOUT_MS)
        console.keyboard.press("r")
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "available"
        )
        expect(operator).to_have_attribute("data-state", "available", timeout=TIMEOUT_MS)

        # Step away with a reason: the wall shows it beside the operator.
        console.get_by_test_id("away-reason").fill("briefing")
        console.get_by_test_id("away-reason").press("Enter")
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "away", timeout=TIMEOUT_MS
        )
        expect(operator).to_have_attribute("data-state", "away", timeout=TIMEOUT_MS)
        expect(operator.get_by_test_id("operator-note")).to_have_text(
            "briefing", timeout=TIMEOUT_MS
        )
        wall.screenshot(path=str(artifacts / "wall-operator-away.png"))

        # Back (R), a second call rings; let it ring out: op1 is away with the missed call's
        # time on the wall, and the call waits in the queue for whoever comes next.
        console.keyboard.press("r")
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "available"
        )
        second, second_id = start_call(phone, routing_server.base, TIMEOUT_MS)
        expect(ring).to_have_attribute("data-call-id", second_id, timeout=TIMEOUT_MS)
        expect(console.get_by_test_id("operator-status")).to_have_attribute(
            "data-state", "away", timeout=(RING_SECS + 10) * 1000
        )
        expect(ring).to_be_hidden(timeout=TIMEOUT_MS)
        expect(operator).to_have_attribute("data-state", "away", timeout=TIMEOUT_MS)
        note = operator.get_by_test_id("operator-note")
        expect(note).to_have_text(re.compile(r"^missed a call at \d\d:\d\d$"))
        # In the centre's time zone, whatever the browser's.
        hours, minutes = (int(part) for part in (note.text_content() or "")[-5:].split(":"))
        centre_now = datetime.now(ZoneInfo(CENTRE_ZONE))
        off = abs((hours * 60 + minutes) - (centre_now.hour * 60 + centre_now.minute)) % 1440
        assert min(off, 1440 - off) <= 2, (note.text_content(), centre_now)
        waiting = wall.locator(f"[data-testid=wall-call][data-call-id='{second_id}']")
        expect(waiting).to_have_attribute("data-state", "queued", timeout=TIMEOUT_MS)
        wall.screenshot(path=str(artifacts / "wall-operator-missed.png"))
        second.close()
    finally:
        phone.close()
        for page in (admin, console, wall):
            page.context.close()
