"""The wall during real calls (issue 13, items 1, 2 and 8): a citizen's video call shows on the
wall within a second with its wait; once an operator answers, the wall shows them on the call
and the call's live thumbnail changes between two refreshes. The wall's monitor button receives
the call's video while caller and operator keep theirs; the caller's page says a supervisor is
present before that; barge-in audio reaches the caller only once asked for. Screenshots at
1920x1080 and 360x740."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests import stores
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    PHONE,
    RECORD_PEERS_JS,
    WARSAW,
    accept,
    end_from_console,
    expect_rising,
    start_call,
)
from tests.browser.waiting import wait_true

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def live_wall_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Embedded: media in the server process. Scale-out: in a media worker, over the bus."""
    server = start_server(
        tmp_path_factory.mktemp("wall-live"),
        {
            "LIFELINE_CALL_RATE_LIMIT": "100/minute",
            "LIFELINE_MEDIA_WORKERS": "1" if stores.SCALE_OUT else "0",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(live_wall_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out start-up resets PostgreSQL)."""


@pytest.fixture(scope="module")
def wall(
    browser: Browser, live_wall_server: RunningServer, page_errors: list[str]
) -> Iterator[Page]:
    secret = add_staff(live_wall_server, "sup1", "supervisor")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"wall: {error}"))
    sign_in(page, live_wall_server.base, "sup1", secret, "/wall")
    expect(page.locator("body")).to_have_attribute("data-live", "true")
    yield page
    context.close()


@pytest.fixture(scope="module")
def console(
    browser: Browser, live_wall_server: RunningServer, page_errors: list[str]
) -> Iterator[Page]:
    secret = add_staff(live_wall_server, "op1", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
    sign_in(page, live_wall_server.base, "op1", secret, "/console")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("start-shift").click()
    expect(page.get_by_test_id("shift-state")).to_have_attribute("data-state", "on")
    yield page
    context.close()


def _phone(browser: Browser, page_errors: list[str]) -> BrowserContext:
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=WARSAW,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    context.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    return context


def test_a_call_on_the_wall_with_its_wait_its_operator_and_a_live_thumbnail(
    browser: Browser,
    wall: Page,
    console: Page,
    live_wall_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    phone = _phone(browser, page_errors)
    try:
        citizen, call_id = start_call(phone, live_wall_server.base)
        # Within a second of the caller's page saying "queued", the wall has the call.
        item = wall.locator(f"[data-testid=wall-call][data-call-id='{call_id}']")
        expect(item).to_have_attribute("data-state", "queued", timeout=1_000)
        # The wait ticks on the wall, and the caller is there.
        expect(item.get_by_test_id("wall-call-wait")).to_have_text("0:02", timeout=5_000)
        expect(item).to_have_attribute("data-caller-connected", "true")
        expect(wall.locator("[data-testid=queue-count][data-channel=police]")).to_have_text("1")

        accept(console, call_id)
        expect(item).to_have_attribute("data-state", "answered")
        operator = wall.locator("[data-testid=operator-state][data-user=op1]")
        expect(operator).to_have_attribute("data-state", "in_call")
        expect(item).to_contain_text("op1")

        # Two thumbnails, one after the other, from the call's media: different pictures.
        thumbnail = item.get_by_test_id("call-thumbnail")
        expect(thumbnail).to_have_attribute("src", _jpeg_data_url(), timeout=MEDIA_TIMEOUT_MS)
        first = thumbnail.get_attribute("src")
        first_at = thumbnail.get_attribute("data-at")
        expect(thumbnail).not_to_have_attribute("data-at", first_at or "", timeout=10_000)
        second = thumbnail.get_attribute("src")
        assert first and second and first != second, "the thumbnail did not change"
        width = wall.evaluate(
            "(img) => new Promise((ok) => { const i = new Image(); i.onload = () => ok(i.width);"
            " i.src = img.src; })",
            thumbnail.element_handle(),
        )
        assert 0 < width <= 320
        wall.screenshot(path=str(artifacts / "wall-live-call-1920.png"))
        end_from_console(console, citizen)
        citizen.close()
    finally:
        phone.close()


def _jpeg_data_url() -> re.Pattern[str]:
    return re.compile(r"^data:image/jpeg;base64,/9j/")


# Packets received so far on the page's newest open peer connection's n-th audio line (the
# order of its transceivers), or -1 without one.
AUDIO_LINE_JS = """async (index) => {
  const open = (window.__peers || []).filter((pc) => pc.connectionState !== 'closed');
  const pc = open[open.length - 1];
  if (!pc) return -1;
  const line = pc.getTransceivers().filter((t) => t.receiver.track.kind === 'audio')[index];
  if (!line) return -1;
  let packets = 0;
  (await line.receiver.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp') packets += s.packetsReceived || 0;
  });
  return packets;
}"""


def _audio_line(page: Page, index: int) -> int:
    packets: int = page.evaluate(AUDIO_LINE_JS, index)
    return packets


def _audio_line_rises(page: Page, index: int, what: str) -> None:
    before = _audio_line(page, index)
    wait_true(
        page,
        f"async (a) => (await ({AUDIO_LINE_JS})(a[0])) > a[1]",
        [index, max(before, 0)],
        MEDIA_TIMEOUT_MS,
        what,
    )


def test_silent_monitor_and_barge_in_from_the_wall(
    browser: Browser,
    wall: Page,
    console: Page,
    live_wall_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    phone = _phone(browser, page_errors)
    try:
        citizen, call_id = start_call(phone, live_wall_server.base)
        accept(console, call_id)
        people = citizen.get_by_test_id("people-present")
        expect(people).to_have_attribute("data-roles", "operator")
        expect_rising(console, "framesDecoded", "[data-testid=remote-video]")

        item = wall.locator(f"[data-testid=wall-call][data-call-id='{call_id}']")
        item.get_by_test_id("monitor-call").click()
        # The caller is told at once: an operator and a supervisor are present.
        expect(people).to_have_attribute("data-roles", "operator supervisor")
        expect(people).to_be_visible()
        expect(citizen.get_by_test_id("chat-log")).to_contain_text("supervisor")
        # The wall receives the call's video, and the operator's voice on its second line.
        expect_rising(wall, "framesDecoded", "[data-testid=monitor-video]")
        _audio_line_rises(wall, 1, "the operator's voice at the monitor")
        # Caller and operator keep theirs: the caller's picture at the console, the operator's
        # voice at the caller.
        expect_rising(console, "framesDecoded", "[data-testid=remote-video]")
        _audio_line_rises(citizen, 0, "the operator's voice at the caller")
        # Silent: nothing of the supervisor reaches the caller yet.
        assert _audio_line(citizen, 1) == 0
        wall.screenshot(path=str(artifacts / "wall-monitor-1920.png"))

        wall.get_by_test_id("barge-in").click()
        expect(wall.get_by_test_id("barge-in")).to_have_attribute("aria-pressed", "true")
        expect(people).to_have_attribute("data-speaking", "true")
        _audio_line_rises(citizen, 1, "the supervisor's voice at the caller")
        _audio_line_rises(console, 1, "the supervisor's voice at the operator")
        citizen.screenshot(path=str(artifacts / "citizen-people-present-360x740.png"))

        wall.get_by_test_id("monitor-stop").click()
        expect(people).to_have_attribute("data-roles", "operator")
        expect(citizen.get_by_test_id("chat-log")).to_contain_text("left")
        end_from_console(console, citizen)
        citizen.close()
    finally:
        phone.close()


def test_the_wall_with_several_calls_and_operators(
    browser: Browser,
    wall: Page,
    console: Page,
    live_wall_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    """Issue 13, item 8: the wall at 1920x1080 with calls in every state and operators in
    several, for a person to look at (tests/artifacts/wall-several-calls-1920.png)."""
    secret = add_staff(live_wall_server, "op2", "operator")
    add_staff(live_wall_server, "op3", "operator")  # never signs in: offline
    second = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    second.set_default_timeout(TIMEOUT_MS)
    phones = [_phone(browser, page_errors) for _ in range(3)]
    try:
        other = second.new_page()
        sign_in(other, live_wall_server.base, "op2", secret, "/console")
        expect(other.get_by_test_id("connection-state")).to_have_attribute(
            "data-state", "connected"
        )
        calls = [start_call(phone, live_wall_server.base) for phone in phones]
        accept(console, calls[0][1])
        accept(other, calls[1][1])
        # One more made over HTTP whose page never connects: shown as such, not as a caller.
        absent: dict[str, str] = wall.evaluate(
            """async () => (await fetch('/api/calls', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({channel: 'police', language: 'ru', mode: 'text'}),
               })).json()"""
        )
        on_wall = "[data-testid=wall-call][data-call-id='{}']"
        for _citizen, call_id in calls[:2]:
            item = wall.locator(on_wall.format(call_id))
            expect(item).to_have_attribute("data-state", "answered")
            thumbnail = item.get_by_test_id("call-thumbnail")
            expect(thumbnail).to_have_attribute("src", _jpeg_data_url(), timeout=MEDIA_TIMEOUT_MS)
        # The waiting caller's position reaches the wall (Warsaw, from the phone).
        area = wall.locator(on_wall.format(calls[2][1])).get_by_test_id("wall-call-area")
        expect(area).to_contain_text("52.230, 21.012")
        # Past the 10 s target the waiting caller turns red.
        waiting = wall.locator(on_wall.format(calls[2][1]))
        expect(waiting).to_have_attribute("data-wait", "late", timeout=TIMEOUT_MS)
        never = wall.locator(on_wall.format(absent["call_id"]))
        expect(never).to_have_attribute("data-wait", "absent")
        absent_count = wall.locator("[data-testid=queue-absent][data-channel=police]")
        expect(absent_count).to_have_attribute("data-count", "1")
        states = {
            user: wall.locator(f"[data-testid=operator-state][data-user={user}]")
            for user in ("op1", "op2", "op3")
        }
        expect(states["op1"]).to_have_attribute("data-state", "in_call")
        expect(states["op2"]).to_have_attribute("data-state", "in_call")
        expect(states["op3"]).to_have_attribute("data-state", "offline")
        wall.screenshot(path=str(artifacts / "wall-several-calls-1920.png"))
        end_from_console(console, calls[0][0])
        end_from_console(other, calls[1][0])
    finally:
        for phone in phones:
            phone.close()
        second.close()
