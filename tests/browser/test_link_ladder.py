"""The degradation ladder (issue 17 item 2), in real Chromium at 360x740 against a real server:
video -> audio only -> text, from measured link quality, and back up.

The link is degraded for real and only for this call: the test constrains the caller page's own
video sender (``RTCRtpSender.setParameters`` with ``maxFramerate`` 1, through the peer
connections the test's init script keeps), so the caller's page measures one frame sent a
second and the operator's console one decoded. Nothing on the page is there for the test; the
rule (console_ui/static/js/link_quality.js) sees what getStats says. Lifting the constraint
lets the link measure good again, and the call climbs back to video.

The rule's own hysteresis (how many seconds down, how many up) is checked on the module itself,
loaded in the browser and fed qualities one second at a time.

Screenshots for a person to look at go to ``tests/artifacts`` (ladder-*.png).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests import stores
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    INBOUND_JS,
    PHONE,
    RECORD_PEERS_JS,
    WARSAW,
    accept,
    end_from_console,
)
from tests.browser.waiting import wait_true

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
MEDIA_TIMEOUT_MS = 30_000
# Down: SETTLE_SECS + DOWN_AFTER_SECS of samples (5 s) plus the event's way; up: 2 + 5 (7 s).
LADDER_TIMEOUT_MS = 20_000
REMOTE_VIDEO = "[data-testid=remote-video]"

# The caller's newest open peer connection's video sender: constrained to one frame a second,
# or freed. It answers whether a track is on the sender now (the ladder takes it off on audio).
CONSTRAIN_JS = """async (fps) => {
  const open = window.__peers.filter((pc) => pc.connectionState !== 'closed');
  const senders = open[open.length - 1].getSenders();
  const sender = senders.find((s) => s.track?.kind === 'video' || s.__video);
  sender.__video = true;
  const parameters = sender.getParameters();
  for (const encoding of parameters.encodings) {
    if (fps) { encoding.maxFramerate = fps; } else { delete encoding.maxFramerate; }
  }
  await sender.setParameters(parameters);
  return Boolean(sender.track);
}"""

# Whether the caller's newest peer connection has a track on its video sender.
SENDS_VIDEO_JS = """() => {
  const open = window.__peers.filter((pc) => pc.connectionState !== 'closed');
  return open[open.length - 1].getSenders().some((s) => s.track?.kind === 'video');
}"""

FRAMES_JS = f"async () => (await ({INBOUND_JS})({json.dumps(REMOTE_VIDEO)})).framesDecoded"

# The rule alone: qualities fed one second at a time, the rung after each.
RULE_JS = """async (qualities) => {
  const { Ladder } = await import('/static/js/link_quality.js');
  const ladder = new Ladder();
  ladder.reset('video');
  return qualities.map((quality) => { ladder.feed(quality); return ladder.rung; });
}"""


@pytest.fixture(scope="module")
def ladder_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One media node (a worker in scale-out) that admits one call's media and refuses any
    more (every load threshold at 0, MEDIA_GUARANTEED_SESSIONS 1): each test but the last has
    one call at a time; the last holds two."""
    server = start_server(
        tmp_path_factory.mktemp("link-ladder"),
        {
            "LIFELINE_MEDIA_WORKERS": "1" if stores.SCALE_OUT else "0",
            "LIFELINE_MEDIA_GUARANTEED_SESSIONS": "1",
            "LIFELINE_MEDIA_OVERLOAD_SUSTAINED_SECS": "0",
            "LIFELINE_MEDIA_MAX_CPU_PERCENT": "0",
            "LIFELINE_MEDIA_MAX_HOST_CPU_PERCENT": "0",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(ladder_server: RunningServer) -> None:
    """The server starts before Chromium (scale-out resets PostgreSQL with asyncio.run)."""


@pytest.fixture(scope="module")
def console(
    browser: Browser, ladder_server: RunningServer, page_errors: list[str]
) -> Iterator[Page]:
    """Operator ladder-op, signed in on /console at 1920x1080, on shift."""
    secret = add_staff(ladder_server, "ladder-op", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
    sign_in(page, ladder_server.base, "ladder-op", secret, "/console")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("start-shift").click()
    expect(page.get_by_test_id("shift-state")).to_have_attribute("data-state", "on")
    yield page
    context.close()


def new_phone(
    browser: Browser, page_errors: list[str], lang: str, scheme: Literal["light", "dark"]
) -> BrowserContext:
    """A 360x740 phone with the fake camera and microphone, in ``lang``, light or dark."""
    context = browser.new_context(
        color_scheme=scheme,
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=WARSAW,
        locale=lang,
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    context.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    return context


def answered_video_call(
    browser: Browser,
    console: Page,
    server: RunningServer,
    page_errors: list[str],
    lang: str,
    scheme: Literal["light", "dark"] = "light",
) -> tuple[BrowserContext, Page]:
    """A video call in ``lang``, answered, its video decoding at the console, both pages on
    the video rung."""
    phone = new_phone(browser, page_errors, lang, scheme)
    citizen = phone.new_page()
    citizen.goto(f"{server.base}/?lang={lang}")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
    citizen.get_by_test_id("start-video-call").tap()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
    call_id = json.loads(citizen.evaluate("() => sessionStorage.getItem('lifeline.call')"))[
        "callId"
    ]
    accept(console, call_id)
    wait_true(console, f"async () => (await ({FRAMES_JS})()) > 30", None, MEDIA_TIMEOUT_MS, "video")
    for page in (citizen, console):
        indicator = page.get_by_test_id("link-quality")
        expect(indicator).to_be_visible()
        expect(indicator).to_have_attribute("data-rung", "video")
    return phone, citizen


def expect_rung(pages: tuple[Page, ...], rung: str) -> None:
    for page in pages:
        expect(page.get_by_test_id("link-quality")).to_have_attribute(
            "data-rung", rung, timeout=LADDER_TIMEOUT_MS
        )


def test_the_rule_steps_down_after_3_seconds_and_up_after_5(
    console: Page,
) -> None:
    """Two poor seconds are not enough to drop video, three are; on audio one bad second in
    the good ones starts the count again; three bad seconds on audio leave for text."""
    poor, good, bad = "poor", "good", "bad"
    settle = [good, good]  # SETTLE_SECS after a change do not count
    rungs = console.evaluate(
        RULE_JS,
        [
            *settle,
            *[poor, poor, good, poor, poor, poor],  # down on the third poor in a row
            *settle,
            *[good, good, good, good, bad],  # a bad second restarts the count
            *[good] * 5,
            *settle,
            *[bad, bad, bad],  # up after five good; down again
        ],
    )
    assert rungs[:7] == ["video"] * 7, rungs
    assert rungs[7] == "audio", rungs  # the third poor second in a row
    assert rungs[8:15] == ["audio"] * 7, rungs  # settling, four good, one bad: no climb
    assert rungs[19] == "video", rungs  # five good seconds in a row
    assert rungs[20:] == ["video", "video", "video", "video", "audio"], rungs
    after_audio = console.evaluate(
        RULE_JS.replace("ladder.reset('video')", "ladder.reset('audio')"),
        [*settle, bad, bad, bad, *settle, poor, poor, poor, poor, poor],
    )
    assert after_audio[4] == "text", after_audio
    assert after_audio[-1] == "audio", after_audio  # five seconds not bad climb from text


def test_a_degraded_call_steps_down_to_audio_and_back_up_to_video(
    browser: Browser,
    console: Page,
    ladder_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    """Acceptance 2: the caller's sender held to one frame a second; both pages step down to
    audio (the camera off the sender, the operator's frames stop); freed, the link measures
    good and both climb back to video, the operator decoding again."""
    phone, citizen = answered_video_call(browser, console, ladder_server, page_errors, "en")
    try:
        assert citizen.evaluate(CONSTRAIN_JS, 1) is True
        expect_rung((citizen, console), "audio")
        expect(citizen.get_by_test_id("link-quality")).to_have_attribute("data-quality", "poor")
        expect(citizen.get_by_test_id("link-quality")).to_contain_text("Audio only")
        expect(console.get_by_test_id("link-quality")).to_contain_text("Audio only")
        assert citizen.evaluate(SENDS_VIDEO_JS) is False, "the camera is still on the sender"
        paused = console.get_by_test_id("video-paused")
        expect(paused).to_be_visible()
        expect(paused).to_have_attribute("data-rung", "audio")
        citizen.screenshot(path=str(artifacts / "ladder-audio-en-360.png"))
        console.screenshot(path=str(artifacts / "ladder-audio-console-en.png"))

        assert citizen.evaluate(CONSTRAIN_JS, 0) is False  # freed, while on audio
        expect_rung((citizen, console), "video")
        assert citizen.evaluate(SENDS_VIDEO_JS) is True
        expect(paused).to_be_hidden()
        at_climb: int = console.evaluate(FRAMES_JS)
        wait_true(
            console,
            f"async (above) => (await ({FRAMES_JS})()) > above",
            at_climb + 30,
            MEDIA_TIMEOUT_MS,
            "the operator decoding video again",
        )
        expect(citizen.get_by_test_id("link-quality")).to_have_attribute("data-quality", "good")
        expect(citizen.get_by_test_id("link-quality")).to_contain_text("Video")
    finally:
        # The module shares one console: a failure here must not leave it on this call.
        if console.get_by_test_id("console-call-state").get_attribute("data-state") == "live":
            end_from_console(console, citizen)
        phone.close()


def test_screenshot_of_a_call_degraded_to_audio_in_russian_in_the_dark(
    browser: Browser,
    console: Page,
    ladder_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    """Acceptance 5 (its "degraded to audio"): the same step down on a Russian page in a phone's
    dark mode, its indicator and hint in Russian."""
    phone, citizen = answered_video_call(browser, console, ladder_server, page_errors, "ru", "dark")
    try:
        citizen.evaluate(CONSTRAIN_JS, 1)
        expect_rung((citizen, console), "audio")
        indicator = citizen.get_by_test_id("link-quality")
        expect(indicator).to_contain_text("Только звук")
        expect(indicator.locator("[data-field=hint]")).to_be_visible()
        citizen.screenshot(path=str(artifacts / "ladder-audio-ru-360.png"))
    finally:
        if console.get_by_test_id("console-call-state").get_attribute("data-state") == "live":
            end_from_console(console, citizen)
        phone.close()


def test_a_call_refused_media_for_load_is_on_text_then_starts_at_audio_and_climbs(
    browser: Browser,
    console: Page,
    ladder_server: RunningServer,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    """Admission: while one call's media fills the node, a second call's offer is refused
    (media_busy): its page is on text and says what is not available, no quality claimed.
    When the first call ends, the retried offer is admitted: the call starts at audio (the
    camera off the sender) and climbs to video by itself."""
    first_phone, first = answered_video_call(browser, console, ladder_server, page_errors, "en")
    second_phone = new_phone(browser, page_errors, "en", "light")
    try:
        second = second_phone.new_page()
        second.goto(f"{ladder_server.base}/?lang=en")
        expect(second.locator("body")).to_have_attribute("data-ready", "true")
        second.get_by_test_id("start-video-call").tap()
        indicator = second.get_by_test_id("link-quality")
        expect(indicator).to_have_attribute("data-rung", "text")
        expect(indicator).to_have_attribute("data-quality", "")
        expect(indicator.locator("[data-field=hint]")).to_have_text(
            "Video and sound are not available right now. Keep writing here."
        )
        expect(indicator.locator("[data-field=quality]")).to_be_hidden()
        second.screenshot(path=str(artifacts / "ladder-busy-en-360.png"))

        end_from_console(console, first)
        expect(indicator).to_have_attribute("data-rung", "audio", timeout=LADDER_TIMEOUT_MS)
        assert second.evaluate(SENDS_VIDEO_JS) is False, "admitted straight to video"
        expect(indicator).to_have_attribute("data-rung", "video", timeout=LADDER_TIMEOUT_MS)
        assert second.evaluate(SENDS_VIDEO_JS) is True
        expect(indicator).to_have_attribute("data-quality", "good")
    finally:
        if console.get_by_test_id("console-call-state").get_attribute("data-state") == "live":
            end_from_console(console, first)
        second_phone.close()  # its waiting call is abandoned after the grace
        first_phone.close()
