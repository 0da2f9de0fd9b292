"""/admin's Open311 API keys in Chromium: an admin issues a key for a partner app, sees its
secret once, a partner posting with it passes the per-address limit, and the admin revokes it
with a reason; the partner's next post is refused, and the audit chain names who and why.
Screenshots at 1920x1080: the secret shown once, and the list after the revocation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from tests.browser.conftest import (
    RunningServer,
    read_with_server_settings,
    start_server,
    stop_server,
)
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
CONSOLE_SCREEN: ViewportSize = {"width": 1920, "height": 1080}
WARSAW = (52.2297, 21.0122)
PARTNER = "City FixMyStreet"

# The chain's entries about Open311 keys, read with the server's own settings.
KEY_AUDIT_PY = """
import asyncio, json
from sqlmodel import col, select
from config import load_settings
from server.db.engine import Database
from server.db.models import AuditEntry

async def main() -> None:
    db = Database(load_settings().database_url)
    async with db.session() as session:
        rows = (await session.exec(select(AuditEntry).where(
            col(AuditEntry.subject).startswith("open311_key:")).order_by(col(AuditEntry.seq)))).all()
    await db.close()
    print(json.dumps([{"actor": r.actor, "action": r.action, "data": json.loads(r.data)}
                      for r in rows]))

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("open311-keys"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(keys_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out resets PostgreSQL with asyncio.run())."""


def post_request(server: RunningServer, **extra: str) -> tuple[int, Any]:
    """A partner's server posting a report (GeoReport v2, a form), as plain HTTP."""
    fields = {
        "service_code": "vandalism",
        "lat": str(WARSAW[0]),
        "long": str(WARSAW[1]),
        "description": "Graffiti on the tram shelter",
        **extra,
    }
    request = urllib.request.Request(
        f"{server.base}/open311/v2/requests.json",
        data=urllib.parse.urlencode(fields).encode(),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_an_admin_issues_a_key_sees_it_once_and_revokes_it(
    browser: Browser, keys_server: RunningServer, artifacts: Path, page_errors: list[str]
) -> None:
    totp = add_staff(keys_server, "adm.nowak", "admin")
    context = browser.new_context(viewport=CONSOLE_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"admin: {error}"))
    try:
        sign_in(page, keys_server.base, "adm.nowak", totp, "/admin")
        section = page.get_by_test_id("open311-keys")
        expect(section).to_have_attribute("data-ready", "true")
        expect(page.get_by_test_id("open311-keys-empty")).to_be_visible()

        # A reason is asked for before anything is sent.
        page.get_by_test_id("open311-key-partner").fill(PARTNER)
        page.get_by_test_id("open311-key-limit").fill("20")
        page.get_by_test_id("open311-key-issue").click()
        expect(page.get_by_test_id("open311-key-error")).to_have_attribute(
            "data-code", "reason_required"
        )
        page.get_by_test_id("open311-key-reason").fill("Pilot agreed with the city council")
        page.get_by_test_id("open311-key-issue").click()

        box = page.get_by_test_id("open311-key-secret-box")
        expect(box).to_be_visible()
        expect(page.get_by_test_id("open311-key-secret-title")).to_contain_text(PARTNER)
        secret = page.get_by_test_id("open311-key-secret").inner_text().strip()
        assert len(secret) >= 40, secret
        expect(page.get_by_test_id("open311-key-error")).to_be_hidden()
        row = page.locator(f'[data-testid="open311-key-row"][data-partner="{PARTNER}"]')
        expect(row).to_have_attribute("data-state", "active")
        expect(row.get_by_test_id("open311-key-today")).to_have_text("0")
        box.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "admin-open311-key-issued-1920.png"))

        # The partner posts twice from its one address: past the public one a day.
        for _ in range(2):
            status, body = post_request(keys_server, api_key=secret)
            assert status == 201, body

        page.get_by_test_id("open311-key-secret-done").click()
        expect(box).to_be_hidden()
        assert secret not in page.content()
        page.reload()
        expect(section).to_have_attribute("data-ready", "true")
        assert secret not in page.content()
        expect(row.get_by_test_id("open311-key-today")).to_have_text("2")
        expect(row.get_by_test_id("open311-key-last-used")).not_to_have_text("never")
        expect(box).to_be_hidden()

        # Revoking asks for a reason too.
        row.get_by_test_id("open311-key-revoke").click()
        expect(page.get_by_test_id("open311-key-error")).to_have_attribute(
            "data-code", "reason_required"
        )
        row.get_by_test_id("open311-key-revoke-reason").fill("The pilot ended")
        row.get_by_test_id("open311-key-revoke").click()
        expect(row).to_have_attribute("data-state", "revoked")
        expect(row.get_by_test_id("open311-key-revoked-note")).to_contain_text("The pilot ended")
        expect(row.get_by_test_id("open311-key-revoke")).to_have_count(0)
        page.get_by_test_id("open311-key-partner").fill("County reporting app")
        page.get_by_test_id("open311-key-reason").fill("Second partner, for the layout")
        page.get_by_test_id("open311-key-issue").click()
        expect(page.get_by_test_id("open311-key-row")).to_have_count(2)
        page.get_by_test_id("open311-key-secret-done").click()
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "admin-open311-key-revoked-1920.png"))
    finally:
        context.close()

    status, body = post_request(keys_server, api_key=secret)
    assert status == 403, body
    assert body[0]["description"].startswith("invalid_api_key: ")

    entries = read_with_server_settings(keys_server, KEY_AUDIT_PY)
    assert [(e["actor"], e["action"], e["data"]["reason"]) for e in entries] == [
        ("adm.nowak", "open311_key_issued", "Pilot agreed with the city council"),
        ("adm.nowak", "open311_key_revoked", "The pilot ended"),
        ("adm.nowak", "open311_key_issued", "Second partner, for the layout"),
    ]
