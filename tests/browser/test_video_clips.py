"""A video clip sent during a call, in real Chromium: the caller's phone picks an MP4 (made
with PyAV) with the photo button; the console shows it in a player that plays it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.clips import make_clip

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
PHONE: ViewportSize = {"width": 360, "height": 740}
CONSOLE_SCREEN: ViewportSize = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("clips"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def desk(browser: Browser, clip_server: RunningServer) -> Iterator[Page]:
    secret = add_staff(clip_server, "vera", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, clip_server.base, "vera", secret, "/console")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("start-shift").click()
    yield page
    context.close()


def test_a_clip_sent_during_a_call_plays_on_the_console(
    browser: Browser, clip_server: RunningServer, desk: Page, artifacts: Path
) -> None:
    phone = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    phone.set_default_timeout(TIMEOUT_MS)
    citizen = phone.new_page()
    citizen.goto(f"{clip_server.base}/")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    citizen.get_by_test_id("start-text-call").tap()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
    expect(desk.get_by_test_id("queue-item")).to_have_count(1)
    desk.get_by_test_id("accept-call").click()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")

    clip = make_clip("mp4", frames=45)
    citizen.get_by_test_id("photo-input").set_input_files(
        {"name": "scene.mp4", "mimeType": "video/mp4", "buffer": clip}
    )
    expect(citizen.get_by_test_id("chat-clip")).to_have_count(1)
    player = desk.get_by_test_id("chat-clip")
    expect(player).to_have_count(1)
    # It is a player that has read the clip: its picture's size is the clip's.
    desk.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=chat-clip]');"
        " return v && v.readyState >= 1 && v.videoWidth === 160; }"
    )
    served = desk.evaluate(
        "async (url) => { const r = await fetch(url); return r.headers.get('X-Content-SHA256'); }",
        player.get_attribute("src"),
    )
    assert served == hashlib.sha256(clip).hexdigest()
    desk.screenshot(path=str(artifacts / "console-call-clip.png"))
    citizen.screenshot(path=str(artifacts / "citizen-call-clip-360x740.png"))
    phone.close()
