"""The archive in Chromium (issue 12, "Done when" 1): a call recorded through the live-call flow
is found in the archive by a word of its chat, opened only with a reason, and played back with
the map marker moving and the chat lines lighting up as the recording passes their time; the
view and each segment played are in the audit chain with that reason, and the chain verifies.

The call: a phone in Warsaw that moves during the call and reloads its page once (a second
recording segment), answered at a console. A supervisor finds and plays it, at 1366x768; the
pages are also shot on a tablet and a 360-px phone for a person to look at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Geolocation, Page, ViewportSize, expect

from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    MEDIA_TIMEOUT_MS,
    PHONE,
    RECORD_PEERS_JS,
    TIMEOUT_MS,
    WARSAW,
    accept,
    chat,
    end_from_console,
    expect_rising,
    start_call,
)
from tests.browser.waiting import wait_true

pytestmark = pytest.mark.browser

DESK: ViewportSize = {"width": 1366, "height": 768}
TABLET: ViewportSize = {"width": 820, "height": 1180}
# Some 600 m north-east of WARSAW: where the caller has walked to by the second half.
MOVED: Geolocation = {"latitude": 52.2347, "longitude": 21.0182, "accuracy": 20}
WORD = "kingfisher"
REASON = "Case 2026/0042: review of the call"
PLAYBACK_TIMEOUT_MS = 30_000

# The call's audit entries, read with the server's own settings.
AUDIT_PY = """
import asyncio, json, sys
from sqlmodel import col, select
from config import load_settings
from server.db.engine import Database
from server.db.models import AuditEntry

async def main() -> None:
    db = Database(load_settings().database_url)
    async with db.session() as session:
        rows = (await session.exec(select(AuditEntry).where(
            col(AuditEntry.subject) == "call:" + sys.argv[1]).order_by(col(AuditEntry.seq)))).all()
    await db.close()
    print(json.dumps([{"seq": r.seq, "actor": r.actor, "action": r.action,
                       "data": json.loads(r.data)} for r in rows]))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def archive_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("archive"),
        {"LIFELINE_MEDIA_ADDRESSES": "127.0.0.1", "LIFELINE_CALL_RATE_LIMIT": "100/minute"},
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(archive_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out resets PostgreSQL with asyncio.run())."""


def _audit(server: RunningServer, call_id: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-c", AUDIT_PY, call_id],
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    entries: list[dict[str, Any]] = json.loads(out)
    return entries


def _signed_in_page(
    browser: Browser,
    server: RunningServer,
    name: str,
    role: str,
    home: str,
    page_errors: list[str],
    viewport: ViewportSize,
) -> tuple[BrowserContext, Page]:
    secret = add_staff(server, name, role)
    context = browser.new_context(viewport=viewport, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"{name}: {error}"))
    sign_in(page, server.base, name, secret, home)
    return context, page


@pytest.fixture(scope="module")
def recorded_call(browser: Browser, archive_server: RunningServer, page_errors: list[str]) -> str:
    """A call made in Chromium: chat with WORD, the caller moving from WARSAW to MOVED, a
    reload of the caller's page between (two segments), ended with a disposition."""
    context, console = _signed_in_page(
        browser, archive_server, "op1", "operator", "/console", page_errors, DESK
    )
    context.add_init_script(RECORD_PEERS_JS)
    console.reload()
    expect(console.locator("body")).to_have_attribute("data-ready", "true")
    expect(console.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    console.get_by_test_id("start-shift").click()
    phone = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=WARSAW,
    )
    phone.set_default_timeout(TIMEOUT_MS)
    phone.add_init_script(RECORD_PEERS_JS)
    phone.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    try:
        citizen, call_id = start_call(phone, archive_server.base)
        accept(console, call_id)
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
        expect_rising(console, "framesDecoded", "[data-testid=remote-video]")
        chat(citizen, f"I can see a {WORD} by the river")
        expect(console.get_by_test_id("chat-log")).to_contain_text(WORD)
        citizen.wait_for_timeout(1500)  # video recorded at the first place (wall time, no clock)
        phone.set_geolocation(MOVED)
        console.wait_for_function(
            "(lat) => Number(document.querySelector('[data-testid=caller-location]')"
            ".dataset.lat) === lat",
            arg=MOVED["latitude"],
        )
        citizen.reload()  # a new peer connection: the recording goes on in segment 2
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
        expect_rising(console, "framesDecoded", "[data-testid=remote-video]")
        chat(console, "Stay where you are, a patrol is coming")
        citizen.wait_for_timeout(1500)
        end_from_console(console, citizen)
    finally:
        phone.close()
        context.close()
    wait_segments(archive_server, call_id, 2)
    return call_id


def wait_segments(server: RunningServer, call_id: str, count: int) -> None:
    """Until the call's last segment is closed, hashed and stored (after the end, on the media
    node's own time): polled, bounded."""
    import time

    deadline = time.monotonic() + MEDIA_TIMEOUT_MS / 1000
    while True:
        rows = call_media(server, call_id)["recordings"]
        if len(rows) >= count and all(r["sha256"] for r in rows):
            return
        assert time.monotonic() < deadline, f"segments not stored: {rows}"
        time.sleep(0.5)


MARKER_PATH_JS = """() => {
  const paths = [...document.querySelectorAll('#record-map path.leaflet-interactive')];
  return paths.length ? paths[paths.length - 1].getAttribute('d') : null;
}"""


# The module's server and call (made in its fixtures, counted here) and its playback: 85 s
# embedded and 190 s scale-out (a fresh PostgreSQL schema, Redis) at a load average of 11-15 on
# 2 cores, beyond the suite's 120 s.
@pytest.mark.timeout(300)
def test_a_recorded_call_is_found_by_a_chat_word_and_played_with_the_marker_moving(
    browser: Browser,
    archive_server: RunningServer,
    recorded_call: str,
    page_errors: list[str],
    artifacts: Path,
    tmp_path: Path,
) -> None:
    call_id = recorded_call
    context, page = _signed_in_page(
        browser, archive_server, "sup1", "supervisor", "/wall", page_errors, DESK
    )
    try:
        page.get_by_test_id("nav-archive").click()
        page.wait_for_url(f"{archive_server.base}/archive")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.keyboard.press("/")
        expect(page.get_by_test_id("archive-query")).to_be_focused()
        page.keyboard.type(WORD.upper())
        page.get_by_test_id("archive-search").click()
        results = page.get_by_test_id("archive-result")
        expect(results).to_have_count(1)
        expect(results).to_have_attribute("data-call-id", call_id)
        expect(page.get_by_test_id("archive-count")).to_have_attribute("data-total", "1")
        page.screenshot(path=str(artifacts / "archive-search-1366.png"))

        results.click()
        page.wait_for_url(f"{archive_server.base}/archive/calls/{call_id}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("justification")).to_be_focused()
        # Before a reason: no record on the page, and the recording refused to this session.
        expect(page.get_by_test_id("record-body")).to_be_hidden()
        expect(page.get_by_test_id("playback")).to_be_hidden()
        assert WORD not in page.content()
        refused = page.request.get(f"{archive_server.base}/api/calls/{call_id}/recordings/1")
        assert refused.status == 400
        assert refused.json()["error"]["code"] == "reason_required"
        page.get_by_test_id("justification-submit").click()
        expect(page.get_by_test_id("justification-error")).to_have_attribute(
            "data-code", "reason_required"
        )
        expect(page.get_by_test_id("record-body")).to_be_hidden()
        assert not [e for e in _audit(archive_server, call_id) if e["action"] == "record_viewed"]
        page.screenshot(path=str(artifacts / "archive-reason-1366.png"))

        page.get_by_test_id("justification").fill(REASON)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("record-body")).to_be_visible()
        expect(page.get_by_test_id("view-reason")).to_contain_text(REASON)
        expect(page.get_by_test_id("record-chat")).to_contain_text(WORD)
        expect(page.get_by_test_id("record-disposition")).to_have_text("Advice given")
        present = page.get_by_test_id("record-present").locator("li")
        expect(present.first).to_have_attribute("data-user", "op1")
        line = page.get_by_test_id("record-chat").locator("li", has_text=WORD)
        expect(line).to_have_attribute("data-reached", "false")
        video = page.get_by_test_id("playback")
        expect(video).to_have_attribute("data-segment", "1")
        position = page.get_by_test_id("record-position")
        expect(position).to_have_attribute("data-lat", str(WARSAW["latitude"]))
        first_path = page.evaluate(MARKER_PATH_JS)
        assert first_path, "no marker on the map"

        page.evaluate(
            "() => { const v = document.querySelector('[data-testid=playback]');"
            " v.muted = true; v.playbackRate = 2; return v.play(); }"
        )
        wait_true(
            page,
            "() => document.querySelector('[data-testid=playback]').currentTime > 0.3",
            None,
            PLAYBACK_TIMEOUT_MS,
            "the recording to play",
        )
        assert page.evaluate("() => document.querySelector('[data-testid=playback]').videoWidth")
        expect(line).to_have_attribute("data-reached", "true", timeout=PLAYBACK_TIMEOUT_MS)
        page.screenshot(path=str(artifacts / "archive-record-playing-1366.png"))
        # The caller walked on: the marker follows as the recording reaches that time, by the
        # second segment at the latest (played on by itself when the first ends).
        expect(position).to_have_attribute(
            "data-lat", str(MOVED["latitude"]), timeout=PLAYBACK_TIMEOUT_MS
        )
        assert page.evaluate(MARKER_PATH_JS) != first_path, "the marker did not move"
        expect(video).to_have_attribute("data-segment", "2", timeout=PLAYBACK_TIMEOUT_MS)
        wait_true(
            page,
            "() => document.querySelector('[data-testid=playback]').currentTime > 0.3",
            None,
            PLAYBACK_TIMEOUT_MS,
            "the second segment to play",
        )
        page.screenshot(path=str(artifacts / "archive-record-moved-1366.png"))
        # The legal hold (retention's route), from the record: a reason, then the button.
        expect(page.get_by_test_id("legal-hold-state")).to_have_attribute("data-held", "false")
        page.get_by_test_id("legal-hold").click()
        expect(page.get_by_test_id("legal-hold-error")).to_have_attribute(
            "data-code", "reason_required"
        )
        page.get_by_test_id("legal-hold-reason").fill("Court order 12/2026")
        page.get_by_test_id("legal-hold").click()
        expect(page.get_by_test_id("legal-hold-state")).to_have_attribute("data-held", "true")
        expect(page.get_by_test_id("legal-hold-state")).to_contain_text("Court order 12/2026")
        # The signed bundle (the custody's route), from the record, with the view's reason.
        expect(page.get_by_test_id("export-reason")).to_have_value(REASON)
        with page.expect_download() as download:
            page.get_by_test_id("export-bundle").click()
        bundle = tmp_path / "bundle.zip"
        download.value.save_as(bundle)
        expect(page.get_by_test_id("export-state")).to_have_attribute("data-state", "done")
        with zipfile.ZipFile(bundle) as archive:
            assert "manifest.json" in archive.namelist()
        page.set_viewport_size(TABLET)
        page.screenshot(path=str(artifacts / "archive-record-tablet.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=str(artifacts / "archive-record-360.png"), full_page=True)
    finally:
        context.close()

    entries = _audit(archive_server, call_id)
    viewed = [e for e in entries if e["action"] == "record_viewed"]
    assert len(viewed) == 1
    assert viewed[0]["actor"] == "sup1"
    assert viewed[0]["data"] == {"reason": REASON, "remote": "127.0.0.1", "role": "supervisor"}
    played = [e for e in entries if e["action"] == "recording_played"]
    # Segments 1 and 2 in order (on a loaded machine the page may re-offer once by itself: a
    # third segment, which playback may have reached meanwhile); each entered once.
    numbers = [e["data"]["segment"] for e in played]
    assert numbers[:2] == [1, 2] and numbers == list(range(1, len(numbers) + 1)), played
    for entry in played:
        assert entry["actor"] == "sup1"
        assert entry["data"]["reason"] == REASON
        assert entry["data"]["view_entry"] == viewed[0]["seq"]
    exported = [e for e in entries if e["action"] == "evidence_exported"]
    assert len(exported) == 1 and exported[0]["actor"] == "sup1"
    assert exported[0]["data"]["reason"] == REASON
    held = [e for e in entries if e["action"] == "legal_hold_set"]
    assert len(held) == 1 and held[0]["actor"] == "sup1"
    assert held[0]["data"]["reason"] == "Court order 12/2026"
    verify = subprocess.run(
        [sys.executable, "-m", "server", "evidence", "verify"],
        env=archive_server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_the_search_page_on_a_tablet_and_a_phone(
    browser: Browser, archive_server: RunningServer, page_errors: list[str], artifacts: Path
) -> None:
    """Looked at by a person: the form, the map and its area buttons fit; nothing overflows."""
    context, page = _signed_in_page(
        browser, archive_server, "adm2", "admin", "/admin", page_errors, TABLET
    )
    try:
        page.goto(f"{archive_server.base}/archive")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        page.get_by_test_id("area-draw").click()
        box = page.get_by_test_id("archive-map").bounding_box()
        assert box is not None
        for dx, dy in ((0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)):
            page.mouse.click(box["x"] + box["width"] * dx, box["y"] + box["height"] * dy)
        expect(page.get_by_test_id("area-state")).to_have_attribute("data-state", "drawing")
        page.get_by_test_id("area-finish").click()
        expect(page.get_by_test_id("area-state")).to_have_attribute("data-state", "drawn")
        page.get_by_test_id("archive-search").click()
        expect(page.get_by_test_id("archive-count")).not_to_have_attribute("data-total", "")
        assert "area=" in page.url
        page.screenshot(path=str(artifacts / "archive-search-tablet.png"), full_page=True)
        page.set_viewport_size(PHONE)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow} px wider than a phone"
        page.screenshot(path=str(artifacts / "archive-search-360.png"), full_page=True)
        for lang, search in (("ru", "Искать"), ("kk", "Іздеу"), ("pl", "Szukaj")):
            page.goto(f"{archive_server.base}/archive?lang={lang}")
            expect(page.locator("body")).to_have_attribute("data-ready", "true")
            expect(page.get_by_test_id("archive-search")).to_have_text(search)
            expect(page.get_by_test_id("area-state")).not_to_contain_text("archive.")
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{lang}: the page is {overflow} px wider than a phone"
        page.screenshot(path=str(artifacts / "archive-search-360-pl.png"), full_page=True)
        page.goto(f"{archive_server.base}/archive?lang=en")
    finally:
        context.close()
