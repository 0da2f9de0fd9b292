"""The console's database banner in real Chromium (issue 11, PostgreSQL restart): a node on a
PostgreSQL of the test's own (tests/own_postgres.py; never the machine's shared one), which the
test stops and starts. While it is away the console says so (``degraded-banner``) and its socket
stays connected; once it answers the banner goes. Screenshot: degraded-banner-console-1920.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Geolocation, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    TIMEOUT_MS,
    accept,
    end_from_console,
    new_phone,
    start_call,
)
from tests.own_postgres import OwnPostgres

# Its own PostgreSQL and no Redis: the same in either pass.
pytestmark = [pytest.mark.browser, pytest.mark.one_pass]

# The node pings its database each second; the event and the page add little.
BANNER_MS = 5_000


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory, own_postgres: OwnPostgres
) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("degraded-banner"),
        {"LIFELINE_DATABASE_URL": own_postgres.url, "LIFELINE_REDIS_URL": ""},
        fresh_stores=False,  # its own database, migrated by `run`; the shared ones untouched
    )
    yield server
    stop_server(server)


def test_the_console_shows_the_database_banner_while_postgres_is_away(
    browser: Browser, pg_server: RunningServer, own_postgres: OwnPostgres, artifacts: Path
) -> None:
    secret = add_staff(pg_server, "op1", "operator")
    context = browser.new_context(viewport=CONSOLE_SCREEN)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        sign_in(page, pg_server.base, "op1", secret, "/console")
        connection = page.get_by_test_id("connection-state")
        banner = page.get_by_test_id("degraded-banner")
        expect(connection).to_have_attribute("data-state", "connected")
        expect(banner).to_be_hidden()

        own_postgres.stop()
        try:
            expect(banner).to_be_visible(timeout=BANNER_MS)
            expect(banner).to_contain_text("The database is not answering")
            expect(connection).to_have_attribute("data-state", "connected")
            page.screenshot(path=str(artifacts / "degraded-banner-console-1920.png"))
        finally:
            own_postgres.start()
        expect(banner).to_be_hidden(timeout=BANNER_MS)
        expect(connection).to_have_attribute("data-state", "connected")
    finally:
        context.close()


# Where the caller walks to while the database is away: 500 m north of Warsaw's centre.
WALKED: Geolocation = {"latitude": 52.2342, "longitude": 21.0122, "accuracy": 15}


def test_a_fix_the_database_did_not_take_reaches_the_console_once_it_is_back(
    browser: Browser, pg_server: RunningServer, own_postgres: OwnPostgres, page_errors: list[str]
) -> None:
    """A caller who moves once and then stands still gives no next fix: the page sends the
    refused one again by itself (its retry), and the console gets it once the database is back."""
    secret = add_staff(pg_server, "op2", "operator")
    desk = browser.new_context(viewport=CONSOLE_SCREEN)
    desk.set_default_timeout(TIMEOUT_MS)
    phone = new_phone(browser, page_errors)
    try:
        console = desk.new_page()
        sign_in(console, pg_server.base, "op2", secret, "/console")
        citizen, call_id = start_call(phone, pg_server.base)
        accept(console, call_id)
        where = console.get_by_test_id("caller-location")
        expect(where).to_have_attribute("data-lat", "52.2297")

        own_postgres.stop()
        try:
            expect(console.get_by_test_id("degraded-banner")).to_be_visible(timeout=BANNER_MS)
            phone.set_geolocation(WALKED)  # one fix, refused: the database is away
            citizen.wait_for_function(
                "() => document.querySelector('[data-testid=call-state]').dataset.state"
                " === 'answered'"
            )
        finally:
            own_postgres.start()
        expect(where).to_have_attribute("data-lat", str(WALKED["latitude"]), timeout=15_000)
        end_from_console(console, citizen)
    finally:
        phone.close()
        desk.close()
