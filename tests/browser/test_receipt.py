"""Issue 12, "Done when" 8: the receipt shown at the end of a browser call matches the sealed
record, and the check page confirms it; a receipt with one changed character is refused.

The live-call flow of test_live_call.py (its server, console and phone): a recorded video call
ends from the console; the phone's ended screen (360x740) shows the receipt in view; it is
compared with the ``call_sealed`` entry in the database and with the record recomputed there;
it is saved as a file; its link opens ``/receipt``, which says it matches, and says it does not
once one character of the seal is changed. Screenshots go to ``tests/artifacts``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer, call_media
from tests.browser.test_live_call import (  # the live-call flow and its fixtures
    PHONE,
    _server_before_browser,
    accept,
    call_server,
    chat,
    console,
    end_from_console,
    expect_rising,
    phone,
    start_call,
)

pytestmark = pytest.mark.browser

__all__ = ["_server_before_browser", "call_server", "console", "phone"]

SEAL = re.compile(r"^[0-9a-f]{64}$")

# The call's seal entry and the seal of its record recomputed now, with the server's settings.
SEALED_PY = """
import asyncio, json, sys
from config import load_settings
from server.actions import call_seal
from server.db.engine import Database

async def main() -> None:
    db = Database(load_settings().database_url)
    async with db.session() as session:
        entry = await call_seal.sealed_entry(session, sys.argv[1])
        recomputed = await call_seal.recompute(session, entry) if entry else None
    await db.close()
    print(json.dumps(None if entry is None else {
        "seq": entry.seq, "at": entry.at.isoformat(), "actor": entry.actor,
        "data": json.loads(entry.data), "recomputed": recomputed}))

asyncio.run(main())
"""


def sealed(server: RunningServer, call_id: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", SEALED_PY, call_id],
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def catalogue(server: RunningServer, lang: str) -> dict[str, str]:
    with urllib.request.urlopen(f"{server.base}/i18n/{lang}.json", timeout=10) as response:
        messages: dict[str, str] = json.loads(response.read())
    return messages


def expect_receipt(citizen: Page, call_id: str) -> str:
    """The ended screen shows the call's receipt, in view; returns its seal."""
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "ended")
    receipt = citizen.get_by_test_id("call-receipt")
    expect(receipt).to_have_attribute("data-state", "shown")
    expect(receipt).to_have_attribute("data-call-id", call_id)
    expect(receipt).to_have_attribute("data-seal", SEAL)
    expect(receipt).to_be_in_viewport()
    seal = receipt.get_attribute("data-seal") or ""
    expect(receipt.locator("[data-field=seal]")).to_have_text(seal)
    expect(receipt.locator("[data-field=call_id]")).to_have_text(call_id)
    expect(receipt.get_by_test_id("receipt-save")).to_be_in_viewport()
    return seal


def test_the_receipt_of_a_recorded_call_matches_its_sealed_record_and_checks(
    phone: BrowserContext, console: Page, call_server: RunningServer, artifacts: Path
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    chat(citizen, "Someone is breaking into the car")
    expect(console.get_by_test_id("chat-log")).to_contain_text("Someone is breaking into the car")
    expect_rising(console, "framesDecoded", "[data-testid=remote-video]")
    end_from_console(console, citizen)

    seal = expect_receipt(citizen, call_id)
    citizen.screenshot(path=str(artifacts / "receipt-citizen-ended-360.png"))
    citizen.emulate_media(color_scheme="dark")
    citizen.screenshot(path=str(artifacts / "receipt-citizen-ended-360-dark.png"))

    # The receipt is the sealed record's: the seal in the chain, the record's hash now, and
    # it covers every recording segment the call stored (the last closed after the end).
    entry = sealed(call_server, call_id)
    assert entry["actor"] == "system:seal"
    assert entry["data"]["seal"] == seal
    assert entry["recomputed"] == seal
    segments = [row["segment"] for row in call_media(call_server, call_id)["recordings"]]
    assert segments, "a video call is recorded"
    assert entry["data"]["segments"] == segments, (entry, segments)
    assert entry["data"]["media"] == "closed", entry["data"]

    with citizen.expect_download() as download:
        citizen.get_by_test_id("receipt-save").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == f"lifeline-receipt-{call_id}.txt"
    assert call_id in saved and seal in saved
    assert f"/receipt#call={call_id}&seal={seal}" in saved

    # Its link opens the check page, which checks at once: it matches.
    citizen.get_by_test_id("receipt-open-check").click()
    citizen.wait_for_url(re.compile(r"/receipt#"))
    result = citizen.get_by_test_id("receipt-result")
    expect(result).to_have_attribute("data-valid", "true")
    expect(citizen.get_by_test_id("receipt-call-id")).to_have_value(call_id)
    citizen.screenshot(path=str(artifacts / "receipt-check-valid-360-dark.png"))

    # One changed character: refused.
    changed = seal[:20] + ("0" if seal[20] != "0" else "1") + seal[21:]
    citizen.get_by_test_id("receipt-seal").fill(changed)
    expect(result).to_be_hidden()  # the old verdict goes with the old value
    citizen.get_by_test_id("receipt-check").click()
    expect(result).to_have_attribute("data-valid", "false")
    expect(result).to_be_in_viewport()
    citizen.screenshot(path=str(artifacts / "receipt-check-invalid-360-dark.png"))
    # ... and so is the right seal with another call's id.
    other = call_id[:-1] + ("0" if call_id[-1] != "0" else "1")
    citizen.get_by_test_id("receipt-call-id").fill(other)
    citizen.get_by_test_id("receipt-seal").fill(seal)
    citizen.get_by_test_id("receipt-check").click()
    expect(result).to_have_attribute("data-valid", "false")
    # Typed by hand from paper: upper case and spaces are the same receipt.
    spaced = " ".join(seal[i : i + 8] for i in range(0, 64, 8)).upper()
    citizen.get_by_test_id("receipt-call-id").fill(call_id.upper())
    citizen.get_by_test_id("receipt-seal").fill(spaced)
    citizen.get_by_test_id("receipt-check").click()
    expect(result).to_have_attribute("data-valid", "true")


def test_a_text_call_the_caller_ends_shows_its_receipt_in_their_language(
    browser: Browser, call_server: RunningServer, artifacts: Path
) -> None:
    """Kazakh: the receipt's texts come from the catalogue; the caller hangs up themself."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        citizen = context.new_page()
        citizen.goto(f"{call_server.base}/?lang=kk")
        expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
        citizen.get_by_test_id("start-text-call").tap()
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "queued")
        stored = json.loads(citizen.evaluate("() => sessionStorage.getItem('lifeline.call')"))
        citizen.get_by_test_id("end-call").tap()
        citizen.get_by_test_id("end-call").tap()  # End asks for a second tap
        seal = expect_receipt(citizen, stored["callId"])
        kk = catalogue(call_server, "kk")
        receipt = citizen.get_by_test_id("call-receipt")
        expect(receipt.locator("h2")).to_have_text(kk["receipt.title"])
        expect(receipt.get_by_test_id("receipt-save")).to_have_text(kk["receipt.save"])
        assert kk["receipt.title"] != catalogue(call_server, "en")["receipt.title"]
        citizen.screenshot(path=str(artifacts / "receipt-citizen-ended-360-kk.png"))
        entry = sealed(call_server, stored["callId"])
        assert entry["data"] == {
            "seal": seal,
            "form": "lifeline-call-record/1",
            "segments": [],
            "media": "none",
        }
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["en", "ru", "kk", "pl"])
def test_the_check_page_in_each_language(
    browser: Browser, call_server: RunningServer, artifacts: Path, lang: str
) -> None:
    """Translated, its hooks in place; a value that is no receipt is refused on the page."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, color_scheme="dark")
    try:
        page = context.new_page()
        page.goto(f"{call_server.base}/receipt?lang={lang}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        texts = catalogue(call_server, lang)
        expect(page.locator("h1")).to_have_text(texts["receipt.check_title"])
        expect(page.get_by_test_id("receipt-check")).to_have_text(texts["receipt.check"])
        expect(page.get_by_test_id("receipt-result")).to_be_hidden()
        page.get_by_test_id("receipt-call-id").fill("12345")
        page.get_by_test_id("receipt-seal").fill("abc")
        page.get_by_test_id("receipt-check").click()
        result = page.get_by_test_id("receipt-result")
        expect(result).to_have_attribute("data-valid", "false")
        expect(result).to_have_text(texts["receipt.bad_input"])
        page.screenshot(path=str(artifacts / f"receipt-check-360-dark-{lang}.png"))
    finally:
        context.close()
