"""Issue 17, item 1: a message thread in real Chromium. A citizen on a 360x740 phone (Kazakh)
writes with a photo and a video clip the page records itself (MediaRecorder on the fake
camera); an operator claims the thread on the console's Messages tab and answers; the citizen
sees the answer live and again after a reload, and the stored clip's SHA-256 is the one of the
bytes the page sent. Screenshots of the thread page in two languages and of the Messages tab."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
PHONE: ViewportSize = {"width": 360, "height": 740}
CONSOLE_SCREEN: ViewportSize = {"width": 1280, "height": 800}

# Records ~1.5 s of the fake camera into a WebM, puts it in the attach input as a person
# picking a file would, and answers with the SHA-256 of exactly those bytes.
RECORD_CLIP = """async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 } });
  const recorder = new MediaRecorder(stream, { mimeType: 'video/webm;codecs=vp8' });
  const parts = [];
  recorder.ondataavailable = (event) => parts.push(event.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  await new Promise((resolve) => setTimeout(resolve, 1500));
  recorder.stop();
  await stopped;
  stream.getTracks().forEach((track) => track.stop());
  const blob = new Blob(parts, { type: 'video/webm' });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  const file = new File([blob], 'scene.webm', { type: 'video/webm' });
  const picked = new DataTransfer();
  picked.items.add(file);
  const input = document.querySelector('[data-testid=message-attach]');
  input.files = picked.files;
  input.dispatchEvent(new Event('change', { bubbles: true }));
  const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
  return { sha256: hex, size: bytes.length };
}"""

SHA256_OF_URL = """async (url) => {
  const response = await fetch(url);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return { header: response.headers.get('X-Content-SHA256'),
           body: [...digest].map((b) => b.toString(16).padStart(2, '0')).join('') };
}"""


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messages_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("messages"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def desk(browser: Browser, messages_server: RunningServer) -> Iterator[Page]:
    secret = add_staff(messages_server, "aigerim", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, messages_server.base, "aigerim", secret, "/console")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("tab-messages").click()
    expect(page.get_by_test_id("messages-panel")).to_have_attribute("data-ready", "true")
    yield page
    context.close()


def _phone(browser: Browser, locale: str) -> Page:
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
        locale=locale,
        permissions=["camera"],
    )
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def test_a_citizen_writes_with_a_photo_and_a_clip_and_reads_the_answer(
    browser: Browser, messages_server: RunningServer, desk: Page, artifacts: Path
) -> None:
    citizen = _phone(browser, "kk-KZ")
    citizen.goto(f"{messages_server.base}/?lang=kk")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    citizen.get_by_test_id("start-message").tap()
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    expect(citizen.get_by_test_id("thread-state")).to_have_attribute("data-state", "new")
    expect(citizen.get_by_test_id("thread-heading")).to_have_text("Полицияға жазыңыз")
    citizen.screenshot(path=str(artifacts / "thread-new-kk-360x740.png"))

    citizen.get_by_test_id("message-input").fill(
        "Абай/Достық қиылысында мас жүргізуші ақ Ladaға отырды"
    )
    citizen.get_by_test_id("message-attach").set_input_files(
        {"name": "car.jpg", "mimeType": "image/jpeg", "buffer": _jpeg()}
    )
    citizen.get_by_test_id("message-send").tap()
    expect(citizen.get_by_test_id("thread-state")).to_have_attribute("data-state", "open")
    expect(citizen.get_by_test_id("thread-message")).to_have_count(1)
    expect(citizen.get_by_test_id("message-log").get_by_test_id("chat-photo")).to_have_count(1)
    expect(citizen.get_by_test_id("thread-attached")).to_be_hidden()

    recorded = citizen.evaluate(RECORD_CLIP)
    assert recorded["size"] > 1000
    citizen.get_by_test_id("message-send").tap()
    expect(citizen.get_by_test_id("thread-message")).to_have_count(2)
    expect(citizen.get_by_test_id("message-log").get_by_test_id("chat-clip")).to_have_count(1)
    expect(citizen.get_by_test_id("thread-error")).to_be_hidden()

    # The operator's list shows the thread, live, with its two unread messages.
    item = desk.get_by_test_id("thread-item")
    expect(item).to_have_count(1)
    expect(item).to_have_attribute("data-unread", "2")
    expect(item).to_have_attribute("data-state", "open")
    expect(desk.get_by_test_id("tab-messages-count")).to_be_visible()
    item.click()
    desk.keyboard.press("t")  # the claim shortcut
    expect(desk.get_by_test_id("thread-detail-state")).to_have_attribute("data-state", "claimed")
    expect(item).to_have_attribute("data-unread", "0")
    expect(citizen.get_by_test_id("thread-state")).to_have_attribute("data-state", "claimed")

    clip = desk.get_by_test_id("thread-log").get_by_test_id("chat-clip")
    expect(clip).to_have_count(1)
    desk.wait_for_function(
        "() => { const v = document.querySelector('[data-testid=thread-log] video');"
        " return v && v.readyState >= 1 && v.videoWidth > 0; }"
    )
    stored = desk.evaluate(SHA256_OF_URL, clip.get_attribute("src"))
    assert stored["header"] == stored["body"] == recorded["sha256"]
    expect(desk.get_by_test_id("thread-log").get_by_test_id("chat-photo")).to_have_count(1)

    desk.locator("body").click(position={"x": 5, "y": 780})  # out of any field
    desk.keyboard.press("y")  # the reply shortcut (R is the operator's Ready)
    expect(desk.get_by_test_id("thread-reply-input")).to_be_focused()
    desk.get_by_test_id("thread-reply-input").fill("Патруль жолда, 5 минутта болады")
    desk.get_by_test_id("thread-reply-send").click()
    answer = citizen.locator("[data-testid=thread-message][data-sender=operator]")
    expect(answer).to_contain_text("Патруль жолда")  # live, over Socket.IO
    desk.screenshot(path=str(artifacts / "console-messages-tab.png"))
    citizen.screenshot(path=str(artifacts / "thread-answered-kk-360x740.png"), full_page=True)

    citizen.reload()
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    expect(citizen.get_by_test_id("thread-message")).to_have_count(3)
    expect(answer).to_contain_text("Патруль жолда")  # again, from the database
    expect(citizen.get_by_test_id("thread-keep")).to_be_visible()
    link = citizen.get_by_test_id("thread-link").input_value()

    # The link opens the whole thread on another phone (a fresh browser, nothing stored).
    other = _phone(browser, "kk-KZ")
    other.goto(link)
    expect(other.get_by_test_id("thread-message")).to_have_count(3)
    other.context.close()

    desk.get_by_test_id("thread-disposition").select_option("dispatched")
    desk.get_by_test_id("thread-close").click()
    expect(desk.get_by_test_id("thread-detail-state")).to_have_attribute("data-state", "closed")
    expect(citizen.get_by_test_id("thread-state")).to_have_attribute("data-state", "closed")
    expect(citizen.get_by_test_id("thread-form")).to_be_hidden()
    citizen.context.close()


def test_the_thread_page_in_polish_refuses_a_fake_video_clearly(
    browser: Browser, messages_server: RunningServer, artifacts: Path
) -> None:
    citizen = _phone(browser, "pl-PL")
    citizen.goto(f"{messages_server.base}/thread?lang=pl")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    expect(citizen.get_by_test_id("thread-heading")).to_have_text("Napisz do policji")
    citizen.get_by_test_id("message-input").fill("Podejrzany mężczyzna przy szkole")
    citizen.get_by_test_id("message-send").tap()
    expect(citizen.get_by_test_id("thread-message")).to_have_count(1)
    expect(citizen.get_by_test_id("message-input")).to_have_value("")
    citizen.get_by_test_id("message-attach").set_input_files(
        {"name": "film.mp4", "mimeType": "video/mp4", "buffer": b"<html><body>x</body></html>"}
    )
    citizen.get_by_test_id("message-send").tap()
    error = citizen.get_by_test_id("thread-error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("data-code", "not_an_image")
    expect(error).to_contain_text("Nic nie wysłano")
    expect(citizen.get_by_test_id("thread-message")).to_have_count(1)
    citizen.screenshot(path=str(artifacts / "thread-refused-pl-360x740.png"))

    # Quick exit forgets the thread on this phone: the page opens empty afterwards.
    citizen.get_by_test_id("quick-exit").tap()
    citizen.wait_for_url(lambda url: "/thread" not in url)
    citizen.goto(f"{messages_server.base}/thread?lang=pl")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    expect(citizen.get_by_test_id("thread")).to_have_attribute("data-state", "new")
    expect(citizen.get_by_test_id("thread-message")).to_have_count(0)
    citizen.context.close()
