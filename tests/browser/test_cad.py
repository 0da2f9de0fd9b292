"""The CAD hand-off in real Chromium (docs/cad.md): a citizen calls with the fake camera and a
position, the operator answers and they chat; the console's "EIDO for CAD" link downloads the
call's document, which passes the project's JSON Schema and holds the chat and the position.
The CAD's webhook (an aiohttp receiver on a loopback port, in a thread, checking each signature
itself) is down: with one try allowed, the answer's and the end's posts are dead-lettered, and
/admin lists both; once the CAD is back, "Retry now" delivers one, signed, and it leaves the
list. Screenshots: cad-console-1920.png, cad-admin-dead-letters-1920.png,
cad-admin-after-retry-1920.png."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import queue
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp import web
from playwright.sync_api import Browser, Page, expect

from tests import stores
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    accept,
    chat,
    end_from_console,
    expect_located,
    new_phone,
    start_call,
)

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
WAIT_SECS = 15.0
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "server" / "actions" / "eido.schema.json").read_text()
)


@dataclass(frozen=True)
class Post:
    status: int
    event: str
    signed: bool
    body: bytes


class CadReceiver:
    """The CAD's end in a thread of its own: 503 while ``down`` is set, else 200; 401 to a post
    whose signature does not verify with the shared secret."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.down = threading.Event()
        self.posts: queue.Queue[Post] = queue.Queue()
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "the receiver did not start"

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def next(self) -> Post:
        return self.posts.get(timeout=WAIT_SECS)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Lifeline-Timestamp", "")
        mac = hmac.new(self.secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(
            request.headers.get("X-Lifeline-Signature", ""), f"sha256={mac}"
        )
        status = 401 if not signed else 503 if self.down.is_set() else 200
        self.posts.put(Post(status, request.headers.get("X-Lifeline-Event", ""), signed, body))
        return web.json_response({}, status=status)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/eido", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/eido"
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()


@pytest.fixture(scope="module")
def cad() -> Iterator[CadReceiver]:
    receiver = CadReceiver(secrets.token_hex(32).encode())
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def cad_server(
    tmp_path_factory: pytest.TempPathFactory, cad: CadReceiver
) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("cad")
    secret_file = data / "cad-webhook.secret"
    secret_file.write_bytes(cad.secret)
    server = start_server(
        data,
        {
            "LIFELINE_CAD_WEBHOOK_URL": cad.url,
            "LIFELINE_CAD_WEBHOOK_SECRET_FILE": str(secret_file),
            # One try: a post the CAD refuses is on /admin's list at once.
            "LIFELINE_CAD_WEBHOOK_ATTEMPTS": "1",
            "LIFELINE_CAD_AGENCY_ID": "browser-centre.example",
            "LIFELINE_MEDIA_WORKERS": "2" if stores.SCALE_OUT else "0",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(cad_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out start-up resets PostgreSQL)."""


def _staff_page(
    browser: Browser, server: RunningServer, name: str, role: str, home: str, page_errors: list[str]
) -> Page:
    secret = add_staff(server, name, role)
    context = browser.new_context(viewport=CONSOLE_SCREEN, permissions=["microphone"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"{name}: {error}"))
    sign_in(page, server.base, name, secret, home)
    return page


def _document(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


@pytest.mark.timeout(240)
def test_eido_from_the_console_and_a_dead_letter_retried_from_admin(
    browser: Browser,
    cad_server: RunningServer,
    cad: CadReceiver,
    page_errors: list[str],
    artifacts: Path,
) -> None:
    cad.down.set()
    desk = _staff_page(browser, cad_server, "dora", "operator", "/console", page_errors)
    expect(desk.locator("body")).to_have_attribute("data-ready", "true")
    expect(desk.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    link = desk.get_by_test_id("eido-download")
    expect(link).to_be_hidden()
    phone = new_phone(browser, page_errors)
    try:
        citizen, call_id = start_call(phone, cad_server.base, TIMEOUT_MS)
        accept(desk, call_id)
        answered = cad.next()
        assert (answered.event, answered.signed, answered.status) == ("answered", True, 503)
        chat(citizen, "A car is burning in the yard")
        expect(desk.get_by_test_id("chat-log")).to_contain_text("burning in the yard")
        expect_located(desk)

        expect(link).to_be_visible()
        expect(link).to_have_attribute("data-call-id", call_id)
        desk.screenshot(path=str(artifacts / "cad-console-1920.png"))
        with desk.expect_download() as download:
            link.click()
        assert download.value.suggested_filename == f"call-{call_id}.eido.json"
        document = _document(download.value.path())
        jsonschema.Draft202012Validator(SCHEMA).validate(document)
        assert document["callComponent"][0]["callStateRegistryText"] == "callAnswered"
        comments = " ".join(n["notesActionComments"] for n in document["notesComponent"])
        assert "A car is burning in the yard" in comments
        assert (
            "<gml:pos>52.2297000 21.0122000</gml:pos>"
            in document["locationComponent"][-1]["locationByValue"]
        )

        end_from_console(desk, citizen, TIMEOUT_MS)
        ended = cad.next()
        assert (ended.event, ended.signed, ended.status) == ("ended", True, 503)
    finally:
        phone.close()

    admin = _staff_page(browser, cad_server, "ada", "admin", "/admin", page_errors)
    section = admin.get_by_test_id("cad-dead-letters")
    expect(section).to_have_attribute("data-ready", "true")
    rows = admin.get_by_test_id("cad-dead-letter")
    expect(rows).to_have_count(2)
    ended_row = admin.locator(
        f"[data-testid=cad-dead-letter][data-event=ended][data-call-id='{call_id}']"
    )
    expect(ended_row).to_contain_text("HTTP 503")
    section.scroll_into_view_if_needed()
    admin.screenshot(path=str(artifacts / "cad-admin-dead-letters-1920.png"), full_page=True)

    cad.down.clear()
    ended_row.get_by_test_id("cad-retry-now").click()
    delivered = cad.next()
    assert (delivered.event, delivered.signed, delivered.status) == ("ended", True, 200)
    final = json.loads(delivered.body)
    jsonschema.Draft202012Validator(SCHEMA).validate(final)
    assert (
        final["incidentComponent"]["dispositionComponent"][0]["dispositionCommonRegistryCode"]
        == "advice_given"
    )
    expect(rows).to_have_count(1)
    expect(admin.get_by_test_id("cad-retry-error")).to_be_hidden()
    admin.screenshot(path=str(artifacts / "cad-admin-after-retry-1920.png"), full_page=True)
    admin.context.close()
    desk.context.close()
