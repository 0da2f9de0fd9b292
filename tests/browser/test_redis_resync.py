"""The console and the wall resync after a Redis outage, in real Chromium (issue 11): two
nodes on a PostgreSQL and a Redis of the test's own, the operator's console and the wall on node
B. A call made on node A while Redis is stopped never reaches B's pages (Socket.IO is at most
once); once Redis is started again, B tells them ``console.resync`` and both show the call within
5 s, as the database holds it.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import CONSOLE_SCREEN, TIMEOUT_MS
from tests.own_postgres import OwnPostgres
from tests.test_redis_outage import OwnRedis

# Its own PostgreSQL and Redis: the same in either pass.
pytestmark = [pytest.mark.browser, pytest.mark.one_pass]

RESYNC_MS = 5_000
DEGRADED_WITHIN_SECS = 10.0


@pytest.fixture(scope="module")
def own_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OwnPostgres, OwnRedis]]:
    postgres = OwnPostgres()
    redis_server = OwnRedis(tmp_path_factory.mktemp("redis"))
    try:
        postgres.start()
        postgres.migrate()
        redis_server.start()
        yield postgres, redis_server
    finally:
        if redis_server._process is not None:
            redis_server.stop()
        postgres.remove()


@pytest.fixture(scope="module")
def nodes(
    tmp_path_factory: pytest.TempPathFactory, own_stores: tuple[OwnPostgres, OwnRedis]
) -> Iterator[dict[str, RunningServer]]:
    postgres, redis_server = own_stores
    started: dict[str, RunningServer] = {}
    try:
        for name in ("a", "b"):
            started[name] = start_server(
                tmp_path_factory.mktemp(f"node-{name}"),
                {
                    "LIFELINE_DATABASE_URL": postgres.url,
                    "LIFELINE_REDIS_URL": redis_server.url,
                    "LIFELINE_NODE_ID": name,
                },
                fresh_stores=False,  # its own stores; the shared ones untouched
            )
        yield started
    finally:
        for server in started.values():
            stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _nodes_before_browser(nodes: dict[str, RunningServer]) -> None:
    """The stores and nodes first: migrating runs ``asyncio.run()``, which fails once sync
    Playwright's event loop runs in this thread."""


def _page(browser: Browser, server: RunningServer, user: str, role: str, path: str) -> Page:
    secret = add_staff(server, user, role)
    context = browser.new_context(viewport=CONSOLE_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, server.base, user, secret, path)
    return page


def _new_call(server: RunningServer) -> str:
    request = urllib.request.Request(
        f"{server.base}/api/calls",
        data=json.dumps({"channel": "police", "language": "en", "mode": "text"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        call_id: str = json.load(response)["call_id"]
    return call_id


def _redis_degraded(server: RunningServer) -> bool:
    with urllib.request.urlopen(f"{server.base}/readyz", timeout=10) as response:
        return "redis" in json.load(response).get("degraded", [])


def test_the_console_and_the_wall_on_another_node_resync_when_redis_is_back(
    browser: Browser, nodes: dict[str, RunningServer], own_stores: tuple[OwnPostgres, OwnRedis]
) -> None:
    _postgres, redis_server = own_stores
    console = _page(browser, nodes["b"], "op1", "operator", "/console")
    wall = _page(browser, nodes["b"], "sup1", "supervisor", "/wall")
    try:
        expect(console.get_by_test_id("connection-state")).to_have_attribute(
            "data-state", "connected"
        )
        expect(wall.locator("body")).to_have_attribute("data-live", "true")

        def shown(call_id: str) -> tuple[Locator, Locator]:
            return (
                console.locator(f"[data-testid=queue-item][data-call-id='{call_id}']"),
                wall.locator(f"[data-testid=wall-call][data-call-id='{call_id}']"),
            )

        before = _new_call(nodes["a"])
        for where in shown(before):
            expect(where).to_be_visible()  # the bus works

        redis_server.stop()
        deadline = time.monotonic() + DEGRADED_WITHIN_SECS
        while not _redis_degraded(nodes["b"]):
            assert time.monotonic() < deadline, "node B never said Redis was down"
            time.sleep(0.1)
        during = _new_call(nodes["a"])
        # Node A stored it and tells its own pages only: B's never hear of it (the absence of
        # an event needs a wait: 1 s, bounded).
        console.wait_for_timeout(1000)
        for where in shown(during):
            expect(where).to_have_count(0)

        redis_server.start()
        started = time.monotonic()
        for where in shown(during):
            expect(where).to_be_visible(timeout=RESYNC_MS)
        print(f"\nFIGURE browser_resync_secs {time.monotonic() - started:.2f}")
        for where in shown(before):
            expect(where).to_be_visible()
    finally:
        console.context.close()
        wall.context.close()
