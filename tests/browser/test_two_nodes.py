"""Run as a centre would (issue 19): two nodes behind nginx at one URL, in real Chromium.

The centre is ``tests/edge.py``'s: nodes A and B on PostgreSQL and Redis, one ``STORAGE_DIR``,
node A's media in a media worker process (``MEDIA_WORKERS=1``), node B's in the node itself,
Debian's nginx in front with the repository's own configuration. Every browser goes through
nginx, pinned to a node by a cookie; pages and their sockets keep one origin, the URL the nodes
are told is theirs. The citizen is on node A, the operator's console on node B: the call, its
chat, its location and its media cross between the nodes over Redis. The caller's photo is
uploaded to A and shown at the console from B; the snapshot is stored by B; the recording is
written by A's worker; then each is fetched through nginx from either node, and nginx's own
access log says which upstream answered each request.

In the embedded test run the nodes get a PostgreSQL database (``lifeline_two_nodes``) and a
Redis database (12) of their own; in the scale-out run, the run's own.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from config import Settings
from server.core.outages import Outages
from signaling.server import create_sio
from tests.browser import test_live_call as live
from tests.browser.conftest import call_media
from tests.browser.staff import add_staff, sign_in
from tests.edge import PIN_COOKIE, START_TIMEOUT_SECS, TEMPLATE, Centre, fetch, run_centre

# One pass: two nodes on a PostgreSQL database and a Redis of their own in either pass.
pytestmark = [pytest.mark.browser, pytest.mark.one_pass]

EMBEDDED_DATABASE = "lifeline_two_nodes"
EMBEDDED_REDIS_DB = 12
VIDEO = "[data-testid=remote-video]"


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    with run_centre(
        tmp_path_factory.mktemp("centre"),
        database=EMBEDDED_DATABASE,
        redis_db=EMBEDDED_REDIS_DB,
        extra_env={"LIFELINE_CALL_RATE_LIMIT": "100/minute"},
    ) as centre:
        yield centre


@pytest.fixture(scope="module", autouse=True)
def _centre_before_browser(centre: Centre) -> None:
    """The nodes first: their stores are prepared with ``asyncio.run()``, which fails once
    sync Playwright's event loop runs in this thread."""


def _context(browser: Browser, centre: Centre, pin: str, **options: Any) -> BrowserContext:
    context = browser.new_context(ignore_https_errors=True, **options)
    context.set_default_timeout(live.TIMEOUT_MS)
    context.add_init_script(live.RECORD_PEERS_JS)
    context.add_cookies([{"name": PIN_COOKIE, "value": pin, "url": centre.base}])
    return context


def _pin(context: BrowserContext, centre: Centre, pin: str) -> None:
    context.add_cookies([{"name": PIN_COOKIE, "value": pin, "url": centre.base}])


def _media_nodes(centre: Centre, pin: str = "") -> list[str]:
    status, _headers, body = fetch(f"{centre.base}/readyz", pin=pin)
    assert status == 200, body
    nodes: list[str] = json.loads(body)["media_nodes"]
    return nodes


def test_the_one_url_balances_and_pins_each_node(centre: Centre) -> None:
    """Unpinned requests go round both nodes; a pinned one reaches its node only (/readyz
    names the node's own media nodes: A's worker, B itself)."""
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while _media_nodes(centre, "b") != ["node-b"]:  # B's hub joins the bus once it listens
        assert time.monotonic() < deadline, _media_nodes(centre, "b")
        time.sleep(0.2)
    assert _media_nodes(centre, "a") == ["node-a.m1"]
    seen = {tuple(_media_nodes(centre)) for _ in range(4)}
    assert seen == {("node-a.m1",), ("node-b",)}


def test_a_body_over_the_upload_limit_gets_the_nodes_own_answer(centre: Centre) -> None:
    """nginx takes what the nodes take (MAX_UPLOAD_BYTES), and refuses more as a node would."""
    limit = Settings().MAX_UPLOAD_BYTES
    status, headers, body = fetch(
        f"{centre.base}/api/calls/x/photos", method="POST", data=b"x" * (limit + 1)
    )
    assert status == 413
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "body_too_large"
    # At the limit it reaches a node, which asks for the call's token.
    status, _headers, body = fetch(
        f"{centre.base}/api/calls/x/photos", method="POST", data=b"x" * limit
    )
    assert status == 401, body


def test_the_proxy_outwaits_engineio_pings() -> None:
    """nginx must not close a quiet websocket before Engine.IO itself would (ping interval plus
    ping timeout): the node decides when a page is gone."""
    sio = create_sio(Settings(), Outages())
    allowed = sio.eio.ping_interval + sio.eio.ping_timeout
    sockets = TEMPLATE.read_text().split("location /socket.io/", 1)[1].split("}", 1)[0]
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive} (\d+)s;", sockets)
        assert match, f"no {directive} on /socket.io/"
        assert int(match.group(1)) > allowed, (directive, allowed)
    assert "proxy_buffering off;" in sockets
    assert "proxy_set_header Upgrade $http_upgrade;" in sockets


def _fetch_in(context: BrowserContext, url: str) -> tuple[int, dict[str, str], bytes]:
    """A request with the context's cookies (its staff session and its pin)."""
    response = context.request.get(url)
    return response.status, response.headers, response.body()


def test_a_call_through_the_balancer_is_answered_on_the_other_node(
    browser: Browser, centre: Centre, artifacts: Path, page_errors: list[str], tmp_path: Path
) -> None:
    from PIL import Image

    node_a, node_b = centre.nodes["a"], centre.nodes["b"]
    secret = add_staff(node_b, "op1", "operator")
    desk = _context(browser, centre, "b", viewport=live.CONSOLE_SCREEN, permissions=["microphone"])
    phone = _context(
        browser,
        centre,
        "a",
        viewport=live.PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=live.WARSAW,
    )
    phone.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    try:
        console = desk.new_page()
        console.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
        sign_in(console, centre.base, "op1", secret, "/console")
        expect(console.locator("body")).to_have_attribute("data-ready", "true")
        expect(console.get_by_test_id("connection-state")).to_have_attribute(
            "data-state", "connected"
        )
        console.get_by_test_id("start-shift").click()
        expect(console.get_by_test_id("shift-state")).to_have_attribute("data-state", "on")

        # The call is made through nginx on node A and answered on node B.
        citizen, call_id = live.start_call(phone, centre.base)
        live.accept(console, call_id)
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
        live.chat(citizen, "Smoke in the stairwell")
        expect(console.get_by_test_id("chat-log")).to_contain_text("Smoke in the stairwell")
        live.chat(console, "Leave by the other stairs")
        expect(citizen.get_by_test_id("chat-log")).to_contain_text("Leave by the other stairs")
        live.expect_located(console)

        # The caller's video at the console: from A's media worker, subscribed to from B.
        live.expect_rising(console, "framesDecoded", VIDEO)
        console.wait_for_function("(s) => document.querySelector(s).videoWidth > 0", arg=VIDEO)
        live.expect_rising(citizen, "audioPackets")
        assert call_media(node_a, call_id)["media_node"] == "node-a.m1"

        # A photo sent to A is shown at the console by B, read from the shared storage.
        picture = tmp_path / "stairwell.jpg"
        Image.new("RGB", (400, 300), (90, 90, 90)).save(picture, "JPEG")
        citizen.get_by_test_id("photo-input").set_input_files(str(picture))
        photo = console.get_by_test_id("chat-log").locator("[data-testid=chat-photo]")
        expect(photo).to_have_count(1)
        console.wait_for_function(
            "() => document.querySelector('[data-testid=chat-photo]').naturalWidth === 400"
        )
        photo_url = centre.base + (photo.get_attribute("src") or "")
        console.get_by_test_id("take-snapshot").click()
        snapshot = console.get_by_test_id("snapshots").locator("li.snapshot")
        expect(snapshot).to_have_count(1)
        snapshot_sha = snapshot.get_attribute("data-sha256")
        snapshot_url = centre.base + (snapshot.locator("img").get_attribute("src") or "")
        console.screenshot(path=str(artifacts / "two-nodes-console-1920.png"))
        live.end_from_console(console, citizen)
        citizen.close()
        phone.close()

        # The recording, written by A's worker under the shared storage.
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not (rows := call_media(node_b, call_id)["recordings"]):
            assert time.monotonic() < deadline, "no recording segment stored"
            time.sleep(0.2)
        first = rows[0]
        assert first["media_node"] == "node-a.m1"
        assert first["key"] == f"recordings/{call_id}/segment-0001.mkv"
        assert Path(first["path"]) == centre.storage_dir / first["key"]
        with av.open(first["path"]) as container:
            assert {"video", "audio"} <= {stream.type for stream in container.streams}

        # Each file through nginx from either node, byte for byte; and nothing of it on the
        # nodes' own disks: each node's DATA_DIR is taken away first.
        for server in centre.nodes.values():
            shutil.rmtree(server.env["LIFELINE_DATA_DIR"])
        photo_bytes = picture.read_bytes()
        # The recording plays within a view of the call's record, opened with a reason.
        csrf = console.locator("input[name=csrf_token]").first.get_attribute("value") or ""
        opened = desk.request.post(
            f"{centre.base}/api/archive/calls/{call_id}/views",
            data={"reason": "two-node check"},
            headers={"X-CSRF-Token": csrf},
        )
        assert opened.status == 201, opened.text()
        view = opened.json()["view"]["token"]
        files = [
            (photo_url, hashlib.sha256(photo_bytes).hexdigest()),
            (snapshot_url, snapshot_sha),
            (f"{centre.base}/api/calls/{call_id}/recordings/1?view={view}", first["sha256"]),
        ]
        for pin in ("a", "b"):
            _pin(desk, centre, pin)
            for url, sha256 in files:
                status, headers, body = _fetch_in(desk, url)
                assert status == 200, (pin, url, body[:200])
                assert hashlib.sha256(body).hexdigest() == sha256 == headers["x-content-sha256"]
    finally:
        for context in (desk, phone):
            context.close()

    # nginx's log: each pinned request (websockets included) reached its pin's node only,
    # the photo went up to A and came back from B, and the files came from both.
    time.sleep(0.5)  # a websocket is logged when it closes
    served = centre.served()
    assert all(node == pin for pin, *_rest, node in served if pin in ("a", "b")), served
    sockets = {(pin, node) for pin, _m, path, status, node in served if status == 101}
    assert {("a", "a"), ("b", "b")} <= sockets, served
    assert ("a", "POST", f"/api/calls/{call_id}/photos", 201, "a") in served
    recording = f"/api/calls/{call_id}/recordings/1"
    assert {node for _p, _m, path, status, node in served if path == recording} == {"a", "b"}
