"""The live call in two real Chromium contexts: a citizen's phone and an operator's console.

Issue 4, "Done when" 1 and 4: the citizen taps call, the operator sees it in the queue and accepts;
chat crosses both ways; the caller's location reaches the console map with its accuracy; media
flows both ways (the operator's video decodes, the citizen receives the operator's audio); a
reload of the citizen's page resumes the call without losing or doubling a chat message.
Screenshots for a person to look at go to ``tests/artifacts``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Geolocation,
    Page,
    ViewportSize,
    expect,
)

from tests import stores
from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.waiting import wait_true

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
# Media needs the caller's offer, ICE on loopback and a first keyframe: give it longer.
MEDIA_TIMEOUT_MS = 30_000
PHONE: ViewportSize = {"width": 360, "height": 740}
CONSOLE_SCREEN: ViewportSize = {"width": 1920, "height": 1080}
WARSAW: Geolocation = {"latitude": 52.2297, "longitude": 21.0122, "accuracy": 15}
COORDINATE_TOLERANCE = 1e-6
# Playwright's own default for an expect; a module on a loaded machine passes its own.
EXPECT_TIMEOUT_MS = 5_000.0

# Before any page script runs: keep every RTCPeerConnection the page makes, so the test can read
# its getStats(). It changes nothing the page does.
RECORD_PEERS_JS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peers.push(this); }
  };
})();"""

# Inbound counters of the page's newest open peer connection, and the remote video's size.
INBOUND_JS = """async (selector) => {
  const open = (window.__peers || []).filter((pc) => pc.connectionState !== 'closed');
  const pc = open[open.length - 1];
  const result = { peers: open.length, framesDecoded: 0, audioPackets: 0, videoWidth: 0 };
  const video = selector ? document.querySelector(selector) : null;
  result.videoWidth = video ? video.videoWidth : 0;
  if (!pc) return result;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') result.framesDecoded += s.framesDecoded || 0;
    if (s.kind === 'audio') result.audioPackets += s.packetsReceived || 0;
  });
  return result;
}"""

# True once `counter` has risen past `above` (async: polled by wait_true).
RISING_JS = (
    f"async ([selector, counter, above]) => (await ({INBOUND_JS})(selector))[counter] > above"
)


@pytest.fixture(scope="module")
def call_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server whose media node gathers on loopback, where Chromium's candidates are too.

    Embedded: media in the server process (``make run``'s default). Scale-out: in two media
    worker processes, reached over the bus."""
    server = start_server(
        tmp_path_factory.mktemp("live-call"),
        {
            "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
            "LIFELINE_CALL_RATE_LIMIT": "100/minute",
            "LIFELINE_MEDIA_WORKERS": "2" if stores.SCALE_OUT else "0",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(call_server: RunningServer) -> None:
    """Start the server before Chromium: in scale-out mode its start resets PostgreSQL with
    ``asyncio.run()``, which fails once sync Playwright's event loop runs in this thread."""


@pytest.fixture(scope="module")
def console(browser: Browser, call_server: RunningServer, page_errors: list[str]) -> Iterator[Page]:
    """Operator op1, signed in with password and TOTP, on /console at 1920x1080, on shift."""
    secret = add_staff(call_server, "op1", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
    sign_in(page, call_server.base, "op1", secret, "/console")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    page.get_by_test_id("start-shift").click()  # the gesture that unlocks the alert tone
    expect(page.get_by_test_id("shift-state")).to_have_attribute("data-state", "on")
    yield page
    context.close()


def new_phone(browser: Browser, page_errors: list[str]) -> BrowserContext:
    """A phone with the fake camera and microphone, and a fake position in Warsaw; its page
    errors go to ``page_errors``. Close it."""
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


@pytest.fixture
def phone(browser: Browser, page_errors: list[str]) -> Iterator[BrowserContext]:
    """The phone of ``new_phone``, for one test."""
    context = new_phone(browser, page_errors)
    yield context
    context.close()


def start_call(
    phone: BrowserContext, base: str, timeout_ms: float = EXPECT_TIMEOUT_MS
) -> tuple[Page, str]:
    """The citizen taps "Video call"; returns the page and the call's id once it is queued."""
    citizen = phone.new_page()
    citizen.goto(f"{base}/")
    expect(citizen.locator("body")).to_have_attribute("data-ready", "true", timeout=timeout_ms)
    citizen.get_by_test_id("start-video-call").tap()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute(
        "data-state", "queued", timeout=timeout_ms
    )
    stored: dict[str, Any] = json.loads(
        citizen.evaluate("() => sessionStorage.getItem('lifeline.call')")
    )
    call_id: str = stored["callId"]
    return citizen, call_id


def accept(console: Page, call_id: str) -> None:
    item = console.locator(f"[data-testid=queue-item][data-call-id='{call_id}']")
    expect(item).to_be_visible()
    item.click()  # select it: accept takes the selected call
    console.get_by_test_id("accept-call").click()
    expect(item).to_have_count(0)
    expect(console.get_by_test_id("console-call-state")).to_have_attribute("data-state", "live")


def end_from_console(console: Page, citizen: Page, timeout_ms: float = EXPECT_TIMEOUT_MS) -> None:
    console.get_by_test_id("end-call").click()
    console.get_by_test_id("disposition").select_option("advice_given")
    console.get_by_test_id("end-note").fill("Browser test call")
    console.get_by_test_id("end-confirm").click()
    expect(console.get_by_test_id("console-call-state")).to_have_attribute(
        "data-state", "ended", timeout=timeout_ms
    )
    expect(citizen.get_by_test_id("call-state")).to_have_attribute(
        "data-state", "ended", timeout=timeout_ms
    )


def chat(page: Page, text: str) -> None:
    page.get_by_test_id("chat-input").fill(text)
    page.get_by_test_id("chat-send").click()


def chat_lines(page: Page, text: str) -> int:
    """How many chat lines say exactly ``text``."""
    exact = re.compile(f"^{re.escape(text)}$")
    count: int = page.get_by_test_id("chat-log").locator(".chat-text", has_text=exact).count()
    return count


def expect_located(console: Page) -> None:
    where = console.get_by_test_id("caller-location")
    expect(where).not_to_have_attribute("data-lat", "")
    console.wait_for_function(
        """([lat, lon, tolerance]) => {
          const el = document.querySelector('[data-testid=caller-location]');
          return Math.abs(Number(el.dataset.lat) - lat) < tolerance
            && Math.abs(Number(el.dataset.lon) - lon) < tolerance;
        }""",
        arg=[WARSAW["latitude"], WARSAW["longitude"], COORDINATE_TOLERANCE],
    )
    assert float(where.get_attribute("data-accuracy") or "nan") == WARSAW["accuracy"]


def inbound(page: Page, selector: str | None = None) -> dict[str, int]:
    counters: dict[str, int] = page.evaluate(INBOUND_JS, selector)
    return counters


def expect_rising(page: Page, counter: str, selector: str | None = None) -> None:
    """The counter of the page's newest peer connection rises (media keeps arriving)."""
    wait_true(page, RISING_JS, [selector, counter, 0], MEDIA_TIMEOUT_MS, f"{counter} > 0")
    before = inbound(page, selector)[counter]
    wait_true(
        page, RISING_JS, [selector, counter, before], MEDIA_TIMEOUT_MS, f"{counter} > {before}"
    )


def test_call_answered_with_chat_and_location(
    phone: BrowserContext, console: Page, call_server: RunningServer, artifacts: Path
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    expect(citizen.get_by_test_id("call-hint")).to_be_visible()
    citizen.screenshot(path=str(artifacts / "live-citizen-queued-360.png"))

    item = console.locator(f"[data-testid=queue-item][data-call-id='{call_id}']")
    expect(item).to_be_visible()
    expect(item).to_have_attribute("data-channel", "police")
    expect(item.locator(".q-place")).to_contain_text("52.22970")
    console.screenshot(path=str(artifacts / "live-console-queue-1920.png"))
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")

    chat(citizen, "There is a fire on the third floor")
    expect(console.get_by_test_id("chat-log")).to_contain_text("There is a fire on the third floor")
    chat(console, "Help is on the way. Are you safe?")
    expect(citizen.get_by_test_id("chat-log")).to_contain_text("Help is on the way. Are you safe?")
    expect_located(console)
    citizen.screenshot(path=str(artifacts / "live-citizen-answered-360.png"))
    console.screenshot(path=str(artifacts / "live-console-call-1920.png"))

    assert chat_lines(citizen, "There is a fire on the third floor") == 1
    assert chat_lines(console, "Help is on the way. Are you safe?") == 1
    end_from_console(console, citizen)


# The caller's page as a script: fix A, fix B, then A again as a page resends a fix whose
# acknowledgement it lost, then a chat line (the console has had all three fixes once it shows it).
RESEND_FIX_SCRIPT = """
import asyncio, json, sys
import socketio

async def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(base, namespaces=["/citizen"], transports=["websocket"],
                      auth={"token": token, "last_seq": 0}, headers={"Origin": base})
    a = {"lat": 52.1, "lon": 21.1, "accuracy": 5, "timestamp": 1_700_000_000_000}
    b = {"lat": 52.2, "lon": 21.2, "accuracy": 5, "timestamp": 1_700_000_005_000}
    replies = [await sio.call("location", fix, namespace="/citizen", timeout=10)
               for fix in (a, b, a)]
    replies.append(await sio.call("chat", {"client_id": "resent-fix-marker", "body": "fixes sent"},
                                  namespace="/citizen", timeout=10))
    await sio.disconnect()
    print(json.dumps(replies))

asyncio.run(main())
"""


def test_a_fix_sent_again_does_not_move_the_console_map_back(
    phone: BrowserContext, console: Page, call_server: RunningServer
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    stored = json.loads(citizen.evaluate("() => sessionStorage.getItem('lifeline.call')"))
    done = subprocess.run(
        [sys.executable, "-c", RESEND_FIX_SCRIPT, call_server.base, stored["token"]],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    first, second, again, marker = json.loads(done.stdout)
    assert first["ok"] and second["ok"] and again["ok"] and marker["ok"], done.stdout
    assert again["seq"] == first["seq"] < second["seq"]  # stored once, answered with its seq
    expect(console.get_by_test_id("chat-log")).to_contain_text("fixes sent")
    # Every fix came before the chat line: the map is at B, where the caller is now.
    expect(console.get_by_test_id("caller-location")).to_have_attribute("data-lat", "52.2")
    end_from_console(console, citizen)


def test_reload_resumes_the_call_without_losing_or_doubling_chat(
    phone: BrowserContext, console: Page, call_server: RunningServer
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    said = ["first from the caller", "second from the caller"]
    for text in said:
        chat(citizen, text)
    chat(console, "first from the operator")
    expect(citizen.get_by_test_id("chat-log")).to_contain_text("first from the operator")
    expect(console.get_by_test_id("chat-log")).to_contain_text(said[-1])

    citizen.reload()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    expect(console.get_by_test_id("console-call-state")).to_have_attribute("data-state", "live")
    chat(citizen, "after the reload")
    chat(console, "operator after the reload")
    expect(console.get_by_test_id("chat-log")).to_contain_text("after the reload")
    expect(citizen.get_by_test_id("chat-log")).to_contain_text("operator after the reload")

    for text in [*said, "first from the operator", "after the reload"]:
        assert chat_lines(citizen, text) == 1, f"the citizen shows {text!r} not once"
        assert chat_lines(console, text) == 1, f"the console shows {text!r} not once"
    end_from_console(console, citizen)


def test_media_flows_both_ways_and_after_a_reload(
    phone: BrowserContext, console: Page, call_server: RunningServer, artifacts: Path
) -> None:
    """Needs the server's media session (media/hub.py) to answer both offers and relay."""
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")

    video = "[data-testid=remote-video]"
    expect_rising(console, "framesDecoded", video)
    console.wait_for_function(
        "(selector) => document.querySelector(selector).videoWidth > 0", arg=video
    )
    expect_rising(citizen, "audioPackets")
    console.get_by_test_id("take-snapshot").click()
    snapshot = console.get_by_test_id("snapshots").locator("li.snapshot")
    expect(snapshot).to_have_count(1)
    expect(snapshot).to_have_attribute("data-sha256", re.compile(r"^[0-9a-f]{64}$"))
    console.screenshot(path=str(artifacts / "live-console-video-1920.png"))

    citizen.reload()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    # New frames at the operator: from the citizen's new peer connection, through the server.
    console.wait_for_function(
        "() => document.querySelector('[data-testid=console-call-state]').dataset.state === 'live'"
    )
    expect_rising(console, "framesDecoded", video)
    expect_rising(citizen, "audioPackets")
    end_from_console(console, citizen)
    check_recording(call_server, call_id)


def check_recording(server: RunningServer, call_id: str) -> None:
    """Issue 4, "Done when" 2: the call's segments (one per peer connection of the caller) are
    stored with their hashes, play with video and audio, and the audit chain verifies."""
    import hashlib

    import av

    rows = call_media(server, call_id)["recordings"]
    # The reload started segment 2. On a loaded machine the page may also re-offer once by
    # itself (a stalled link): a further segment, numbered on, never a file written twice.
    segments = [row["segment"] for row in rows]
    assert len(segments) >= 2 and segments == list(range(1, len(segments) + 1)), rows
    assert len({row["path"] for row in rows}) == len(rows), rows
    for row in rows:
        path = Path(row["path"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row["sha256"]
        with av.open(str(path)) as container:
            kinds = {stream.type for stream in container.streams}
            packets = sum(1 for packet in container.demux(video=0) if packet.size)
        assert {"video", "audio"} <= kinds
        assert packets > 0
    verify = subprocess.run(
        [sys.executable, "-m", "server", "evidence", "verify"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_text_only_call_without_location_asks_for_the_address(
    browser: Browser, console: Page, call_server: RunningServer, page_errors: list[str]
) -> None:
    """A silent call: no camera, no microphone, location refused; the chat carries the call."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_PEERS_JS)
    context.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    try:
        citizen = context.new_page()
        citizen.goto(f"{call_server.base}/")
        expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
        citizen.get_by_test_id("start-text-call").tap()
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
        expect(citizen.locator(".chat-system").last).to_be_visible()
        assert citizen.evaluate("() => window.__peers.length") == 0, "a text call made a peer"
        stored = json.loads(citizen.evaluate("() => sessionStorage.getItem('lifeline.call')"))
        item = console.locator(f"[data-testid=queue-item][data-call-id='{stored['callId']}']")
        expect(item).to_be_visible()
        accept(console, stored["callId"])
        chat(citizen, "Main street 5, flat 12")
        expect(console.get_by_test_id("chat-log")).to_contain_text("Main street 5, flat 12")
        expect(console.get_by_test_id("caller-location")).to_have_attribute("data-lat", "")
        end_from_console(console, citizen)
    finally:
        context.close()


def test_a_photo_sent_during_the_call_reaches_the_console(
    phone: BrowserContext, console: Page, call_server: RunningServer, tmp_path: Path
) -> None:
    """The citizen picks a photo; both chat logs show it once, and the console's copy loads."""
    from PIL import Image

    picture = tmp_path / "scene.jpg"
    Image.new("RGB", (400, 300), (30, 120, 200)).save(picture, "JPEG")
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    citizen.get_by_test_id("photo-input").set_input_files(str(picture))
    for page in (citizen, console):
        photo = page.get_by_test_id("chat-log").locator("[data-testid=chat-photo]")
        expect(photo).to_have_count(1)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=chat-photo]').naturalWidth === 400"
        )
    citizen.reload()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    expect(citizen.get_by_test_id("chat-log").locator("[data-testid=chat-photo]")).to_have_count(1)
    end_from_console(console, citizen)


def test_the_operator_turns_the_call_into_a_threat_report(
    phone: BrowserContext, console: Page, call_server: RunningServer
) -> None:
    """Issue 5: a live call becomes a threat report at the caller's position, from the console."""
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect_located(console)

    console.get_by_test_id("call-to-report").click()
    dialog = console.get_by_test_id("report-dialog")
    expect(dialog).to_be_visible()
    category = console.get_by_test_id("report-category")
    expect(category.locator("option[value=illegal_car_racing]")).to_have_text("Illegal car racing")
    # Without a category, nothing is sent: the select is required, the dialog stays.
    console.get_by_test_id("report-confirm").click()
    expect(dialog).to_be_visible()
    assert category.evaluate("(select) => !select.validity.valid")
    expect(console.get_by_test_id("call-report-created")).to_have_count(0)
    category.select_option("illegal_car_racing")
    console.get_by_test_id("report-description").fill("Caller reports street racing nightly")
    console.get_by_test_id("report-confirm").click()
    expect(dialog).to_be_hidden()
    created = console.get_by_test_id("call-report-created").last
    report_id = int(created.get_attribute("data-report-id") or "0")
    expect(created.locator(".chat-text")).to_have_text(f"Report #{report_id} created")

    listed = console.request.get(f"{call_server.base}/api/staff/reports")
    assert listed.ok, listed.text()
    [report] = [r for r in listed.json()["reports"] if r["id"] == report_id]
    assert report["category"] == "illegal_car_racing"
    assert report["source"] == "call" and report["call_id"] == call_id
    assert report["description"] == "Caller reports street racing nightly"
    assert abs(report["lat"] - WARSAW["latitude"]) < COORDINATE_TOLERANCE
    assert abs(report["lon"] - WARSAW["longitude"]) < COORDINATE_TOLERANCE
    end_from_console(console, citizen)


def test_the_operator_transfers_the_call_back_to_the_queue(
    phone: BrowserContext, console: Page, call_server: RunningServer, artifacts: Path
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    console.keyboard.press("t")  # the transfer dialog: back to the police queue, cold
    console.get_by_test_id("transfer-target").select_option("queue:police")
    expect(console.get_by_test_id("transfer-cold")).to_be_checked()
    console.get_by_test_id("transfer-note").fill("Needs a Kazakh speaker")
    console.get_by_test_id("transfer-send").click()
    # The console lets the call go; it is back in the queue, and the caller waits again.
    expect(console.get_by_test_id("console-call-state")).to_have_attribute(
        "data-state", "transferred"
    )
    item = console.locator(f"[data-testid=queue-item][data-call-id='{call_id}']")
    expect(item).to_be_visible()
    expect(item.get_by_test_id("queue-item-note")).to_contain_text("Needs a Kazakh speaker")
    expect(console.get_by_test_id("transfer-call")).to_be_disabled()
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
    console.screenshot(path=str(artifacts / "live-console-transferred-1920.png"))
    accept(console, call_id)  # someone takes it (here, the same console)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    end_from_console(console, citizen)


# The page's first answer to its `queue` request held back until a `queue.call_added` event has
# been handed over (then the answer follows it): a list made before a call, arriving after it.
HOLD_QUEUE_ANSWER_JS = """(() => {
  const Native = window.WebSocket;
  window.__queueRace = { held: false, released: false };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      const race = window.__queueRace;
      let held = null;
      this.addEventListener('message', (event) => {
        const text = typeof event.data === 'string' ? event.data : '';
        if (race.released) return;
        if (!race.held && text.startsWith('43/console,') && text.includes('"calls"')) {
          race.held = true;
          held = text;
          event.stopImmediatePropagation();
        } else if (held !== null && text.includes('queue.call_added')) {
          race.released = true;
          const answer = held;
          held = null;
          setTimeout(() => this.onmessage(new MessageEvent('message', { data: answer })), 0);
        }
      });
    }
  };
})();"""


def test_a_call_added_while_the_queue_loads_is_not_lost(
    browser: Browser,
    phone: BrowserContext,
    console: Page,
    call_server: RunningServer,
    page_errors: list[str],
) -> None:
    """The console's queue request answered with a list made before a new call, whose event
    arrived first: the call stays in the queue (the list used to replace it)."""
    secret = add_staff(call_server, "op_race", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(HOLD_QUEUE_ANSWER_JS)
    try:
        racing = context.new_page()
        racing.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
        sign_in(racing, call_server.base, "op_race", secret, "/console")
        racing.wait_for_function("() => window.__queueRace.held")
        first, first_id = start_call(phone, call_server.base)
        racing.wait_for_function("() => window.__queueRace.released")
        # A later call's event comes after the held answer on the same socket: once it shows,
        # the answer has been applied.
        second, second_id = start_call(phone, call_server.base)
        queued = "[data-testid=queue-item][data-call-id='{}']"
        expect(racing.locator(queued.format(second_id))).to_be_visible()
        expect(racing.locator(queued.format(first_id))).to_be_visible()
        for citizen, call_id in ((first, first_id), (second, second_id)):
            accept(console, call_id)
            end_from_console(console, citizen)
    finally:
        context.close()
