"""The supervisor's wall follows the queue live: a new call counts as waiting, an answered one
moves to the live calls, operators show as available or in a call, and an internal-security
call never shows on a supervisor's wall."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def wall_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("wall"), {"LIFELINE_CALL_RATE_LIMIT": "100/minute"}
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(wall_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out start-up resets PostgreSQL)."""


@pytest.fixture(scope="module")
def wall(browser: Browser, wall_server: RunningServer, page_errors: list[str]) -> Iterator[Page]:
    secret = add_staff(wall_server, "sup1", "supervisor")
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"wall: {error}"))
    sign_in(page, wall_server.base, "sup1", secret, "/wall")
    expect(page.locator("body")).to_have_attribute("data-live", "true")
    yield page
    context.close()


def _call(page: Page, base: str, channel: str) -> dict[str, str]:
    """A citizen's call, made over HTTP from a page of the same origin."""
    reply: dict[str, str] = page.evaluate(
        """async ([base, channel]) => {
          const response = await fetch(`${base}/api/calls`, {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({channel, language: 'en', mode: 'text'})});
          return response.json();
        }""",
        [base, channel],
    )
    return reply


def test_the_wall_follows_the_queue(
    browser: Browser, wall: Page, wall_server: RunningServer, artifacts: Path
) -> None:
    police = wall.locator("[data-testid=queue-count][data-channel=police]")
    expect(police).to_have_text("0")
    expect(wall.locator("[data-testid=queue-count][data-channel=internal_security]")).to_have_count(
        0
    )

    helper = browser.new_page()
    helper.goto(f"{wall_server.base}/healthz")
    first = _call(helper, wall_server.base, "police")
    hidden = _call(helper, wall_server.base, "internal_security")
    expect(police).to_have_text("1")
    item = wall.locator(f"[data-testid=wall-call][data-call-id='{first['call_id']}']")
    expect(item).to_have_attribute("data-state", "queued")
    expect(wall.locator(f"[data-call-id='{hidden['call_id']}']")).to_have_count(0)

    # An operator answers on the console: the wall shows it live, no longer waiting.
    secret = add_staff(wall_server, "op9", "operator")
    operator = browser.new_page()
    sign_in(operator, wall_server.base, "op9", secret, "/console")
    state = wall.locator("[data-testid=operator-state][data-user=op9]")
    # The wall asks for the operators' states every 5 s: wait longer than one round.
    expect(state).to_have_attribute("data-state", "available", timeout=TIMEOUT_MS)
    free = wall.locator("[data-testid=operators-available][data-channel=police]")
    expect(free).to_have_text("1", timeout=TIMEOUT_MS)
    operator.locator(f"[data-testid=queue-item][data-call-id='{first['call_id']}']").click()
    operator.get_by_test_id("accept-call").click()
    expect(item).to_have_attribute("data-state", "answered")
    expect(item).to_contain_text("op9")
    expect(police).to_have_text("0")
    expect(state).to_have_attribute("data-state", "in_call", timeout=TIMEOUT_MS)
    expect(free).to_have_text("0", timeout=TIMEOUT_MS)
    wall.screenshot(path=str(artifacts / "wall-live-1920.png"))
    operator.close()
    expect(state).to_have_attribute("data-state", "in_call")  # still holds the call
    helper.close()


def test_signing_out_in_another_tab_takes_the_wall_to_the_sign_in_page(
    browser: Browser, wall_server: RunningServer
) -> None:
    """The server closes a revoked session's socket and says why: the page goes to the sign-in
    page instead of sitting on a dead feed."""
    secret = add_staff(wall_server, "sup2", "supervisor")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        wall = context.new_page()
        sign_in(wall, wall_server.base, "sup2", secret, "/wall")
        expect(wall.locator("body")).to_have_attribute("data-live", "true")
        other = context.new_page()  # the same session, in a second tab
        other.goto(f"{wall_server.base}/wall")
        other.get_by_test_id("logout").click()
        other.wait_for_url(f"{wall_server.base}/login**")
        wall.wait_for_url(f"{wall_server.base}/login?expired=1&next=%2Fwall")
    finally:
        context.close()


def test_a_flooding_callers_call_is_marked_and_listed_last(
    browser: Browser, wall: Page, wall_server: RunningServer, artifacts: Path
) -> None:
    """A caller's page that floods its socket keeps its call, marked and behind the others, on
    the wall and on an operator's console."""
    helper = browser.new_page()
    helper.goto(f"{wall_server.base}/healthz")
    flooder = _call(helper, wall_server.base, "police")
    calm = _call(helper, wall_server.base, "police")
    secret = add_staff(wall_server, "op10", "operator")
    operator = browser.new_page(viewport={"width": 1920, "height": 1080})
    sign_in(operator, wall_server.base, "op10", secret, "/console")
    # The console has its queue before the flood: the mark must reach it as an update.
    expect(operator.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    for call in (flooder, calm):
        queued_call = f"[data-testid=queue-item][data-call-id='{call['call_id']}']"
        expect(operator.locator(queued_call)).to_have_count(1)
    refused = helper.evaluate(
        """async ([base, token]) => {
          const { io } = await import('/static/vendor/socket.io-client/socket.io.esm.min.js');
          const socket = io(`${base}/citizen`, {transports: ['websocket'],
                                                 auth: {token, last_seq: 0}});
          await new Promise((resolve) => socket.on('connect', resolve));
          const chat = (n) => ({client_id: `flood-${String(n).padStart(4, '0')}`, body: 'x'});
          // All at once, as a flooding page does: far past the burst the allowance allows.
          const replies = await Promise.all(
            [...Array(80).keys()].map((n) => socket.emitWithAck('chat', chat(n))));
          return replies.filter((r) => !r.ok).map((r) => r.error.code);
        }""",
        [wall_server.base, flooder["token"]],
    )
    assert refused and set(refused) == {"rate_limited"}
    on_wall = wall.locator(f"[data-testid=wall-call][data-call-id='{flooder['call_id']}']")
    expect(on_wall).to_have_attribute("data-marks", "flooding")
    expect(on_wall.get_by_test_id("wall-call-marks")).to_be_visible()
    last_on_wall = wall.locator("[data-testid=wall-call]").last
    expect(last_on_wall).to_have_attribute("data-call-id", flooder["call_id"])
    queued = operator.locator("[data-testid=queue-item]")
    expect(queued.last).to_have_attribute("data-call-id", flooder["call_id"])
    expect(queued.last).to_have_attribute("data-marks", "flooding")
    expect(queued.last.get_by_test_id("queue-item-marks")).to_be_visible()
    expect(
        operator.locator(f"[data-testid=queue-item][data-call-id='{calm['call_id']}']")
    ).to_have_attribute("data-marks", "")
    operator.screenshot(path=str(artifacts / "console-marked-call-1920.png"))
    wall.screenshot(path=str(artifacts / "wall-marked-call-1920.png"))
    operator.close()
    helper.close()
