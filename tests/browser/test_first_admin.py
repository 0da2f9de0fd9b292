"""The first start, end to end in Chromium: the printed one-time password, the forced password
change and TOTP enrolment, an admin adding an operator, and that operator signing in with TOTP.

TOTP codes are computed with pyotp from the secret the enrolment page shows. The server accepts a
code once per 30-s step and allows one step of drift, so a second sign-in within the same step
uses the next step's code instead of waiting for the clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
STEP_SECS = 30
PRINTED_PAGES = ("citizen", "console", "wall", "map", "stats")
FIRST_ADMIN = "admin"
ADMIN_PASSWORD = "Quartz harbour 7 lanterns"
OPERATOR = "op.kowalski"
OPERATOR_PASSWORD = "Amber river 42 kites"
TOO_SHORT = "short1"


@dataclass
class Authenticator:
    """An authenticator app: the enrolled secret and the last step whose code was used."""

    secret: str
    last_step: int = -1

    def current_step(self) -> int:
        return int(datetime.now(UTC).timestamp()) // STEP_SECS

    def next_code(self) -> str:
        """A code the server will take: this step's, or the next one if this step is used up.

        The step is chosen explicitly, so a step boundary passing between this computation and
        the server's check still leaves the code inside the server's one-step drift window.
        """
        current = self.current_step()
        step = max(current, self.last_step + 1)
        assert step <= current + 1, "no unused code within the drift window; the test is too fast"
        self.last_step = step
        return str(pyotp.TOTP(self.secret).generate_otp(step))

    def wrong_code(self) -> str:
        """Six digits that match no step the server could accept now."""
        totp = pyotp.TOTP(self.secret)
        current = self.current_step()
        valid = {totp.generate_otp(step) for step in range(current - 2, current + 3)}
        code = int(totp.generate_otp(current))
        while f"{code:06d}" in valid:
            code = (code + 1) % 1_000_000
        return f"{code:06d}"


StartServer = Callable[[dict[str, str]], RunningServer]


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start a first-time server (empty database) for this test only; stop it afterwards.

    Each test gets its own, never two at once: in scale-out mode every start resets the one shared
    PostgreSQL schema and Redis database. It starts in a worker thread because, in that mode,
    ``start_server`` resets PostgreSQL with ``asyncio.run()``, which refuses to run in a thread
    where sync Playwright's event loop is already running (the ``browser`` fixture).
    """
    started: list[RunningServer] = []

    def start(extra_env: dict[str, str]) -> RunningServer:
        with ThreadPoolExecutor(max_workers=1) as pool:
            server = pool.submit(start_server, tmp_path / "data", extra_env).result()
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def path_is(path: str) -> re.Pattern[str]:
    """A URL pattern for ``path`` on any host, with or without a query."""
    return re.compile(rf"^https?://[^/]+{re.escape(path)}(\?.*)?$")


def login(page: Page, base: str, username: str, password: str, totp: str = "") -> None:
    page.goto(f"{base}/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("input[name=totp]").fill(totp)
    page.get_by_test_id("login-submit").click()


def logout(page: Page) -> None:
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(path_is("/login"))


def change_password(page: Page, new_password: str) -> None:
    expect(page).to_have_url(path_is("/account/password"))
    page.locator("input[name=new_password]").fill(new_password)
    page.locator("input[name=new_password_confirm]").fill(new_password)
    page.get_by_test_id("password-submit").click()


def enrol_totp(page: Page) -> Authenticator:
    """Read the secret off the enrolment page, as a person typing it into an app would."""
    expect(page).to_have_url(path_is("/account/totp"))
    expect(page.get_by_test_id("totp-qr").locator("svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text().strip().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), f"not a base32 TOTP secret: {secret!r}"
    authenticator = Authenticator(secret)
    page.locator("input[name=totp]").fill(authenticator.next_code())
    page.get_by_test_id("totp-submit").click()
    return authenticator


def test_first_admin_adds_an_operator_who_signs_in_with_totp(
    fresh_server: StartServer, context: BrowserContext
) -> None:
    server = fresh_server({})  # what `make run` does on a fresh clone
    # `make run` printed a URL for each page and the first admin's one-time password.
    for name in PRINTED_PAGES:
        assert re.fullmatch(r"https?://\S+", server.urls.get(name, "")), (
            f"no URL line for {name}: {server.lines}"
        )
    assert server.admin_password, f"no one-time password printed: {server.lines}"
    base = server.base
    page = context.new_page()

    # --- The admin's first sign-in: forced password change, then TOTP enrolment. ---
    login(page, base, FIRST_ADMIN, server.admin_password)
    expect(page).to_have_url(path_is("/account/password"))
    expect(page.get_by_test_id("form-error")).to_have_count(0)

    # A too-short password is refused, and the page stays the forced change.
    page.locator("input[name=new_password]").fill(TOO_SHORT)
    page.locator("input[name=new_password_confirm]").fill(TOO_SHORT)
    # The form also says minlength; submit past it so the server's own rule is what is tested.
    page.locator("form:has([data-testid=password-submit])").evaluate("f => f.noValidate = true")
    page.get_by_test_id("password-submit").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    expect(page.get_by_test_id("form-error")).not_to_be_empty()
    expect(page).to_have_url(path_is("/account/password"))

    change_password(page, ADMIN_PASSWORD)
    expect(page).to_have_url(path_is("/account/totp"))

    # A wrong code is refused and the same secret is shown again.
    secret_before = page.get_by_test_id("totp-secret").inner_text().strip()
    page.locator("input[name=totp]").fill(Authenticator(secret_before).wrong_code())
    page.get_by_test_id("totp-submit").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    expect(page).to_have_url(path_is("/account/totp"))
    expect(page.get_by_test_id("totp-secret")).to_have_text(secret_before)

    enrol_totp(page)
    expect(page).to_have_url(path_is("/admin"))

    # --- The admin adds an operator and is shown its one-time password once. ---
    add_form = page.locator("form", has=page.get_by_test_id("admin-add-user"))
    add_form.locator("input[name=username]").fill(OPERATOR)
    add_form.locator("select[name=role]").select_option("operator")
    add_form.get_by_test_id("admin-add-user").click()
    one_time = page.get_by_test_id("one-time-password")
    expect(one_time).to_be_visible()
    operator_once = one_time.inner_text().strip()
    assert len(operator_once) >= 12, f"a weak one-time password: {operator_once!r}"
    row = page.locator(f"[data-testid=admin-user-row][data-username='{OPERATOR}']")
    expect(row).to_have_count(1)
    expect(row.locator("select[name=role]")).to_have_value("operator")

    # Reloading the admin page does not show the password again.
    page.goto(f"{base}/admin")
    expect(page.get_by_test_id("admin-user-row").first).to_be_visible()
    expect(page.get_by_test_id("one-time-password")).to_have_count(0)
    expect(page.locator(f"[data-testid=admin-user-row][data-username='{OPERATOR}']")).to_have_count(
        1
    )
    logout(page)

    # --- The operator's first sign-in: the same forced steps, then the console. ---
    login(page, base, OPERATOR, operator_once)
    change_password(page, OPERATOR_PASSWORD)
    authenticator = enrol_totp(page)
    expect(page).to_have_url(path_is("/console"))
    expect(page.get_by_test_id("accept-call")).to_be_attached()
    logout(page)

    # The password alone, with a wrong code, is refused on the login page.
    login(page, base, OPERATOR, OPERATOR_PASSWORD, authenticator.wrong_code())
    expect(page.get_by_test_id("form-error")).to_be_visible()
    expect(page.get_by_test_id("form-error")).not_to_be_empty()
    expect(page).to_have_url(path_is("/login"))
    expect(page.get_by_test_id("logout")).to_have_count(0)

    # The enrolment used this step's code; the next sign-in uses a fresh one.
    login(page, base, OPERATOR, OPERATOR_PASSWORD, authenticator.next_code())
    expect(page).to_have_url(path_is("/console"))
    expect(page.get_by_test_id("whoami-username")).to_have_text(OPERATOR)

    # An operator may not open the admin page.
    response = page.goto(f"{base}/admin")
    assert response is not None
    assert response.status == 403, f"/admin answered {response.status} to an operator"
    expect(page.get_by_test_id("error")).to_have_attribute("data-status", "403")
    expect(page.get_by_test_id("admin-add-user")).to_have_count(0)
    expect(page.get_by_test_id("one-time-password")).to_have_count(0)


def test_totp_off_shows_banner_and_skips_enrolment(
    fresh_server: StartServer, context: BrowserContext
) -> None:
    server = fresh_server({"LIFELINE_REQUIRE_TOTP": "false"})
    assert server.admin_password, f"no one-time password printed: {server.lines}"
    page = context.new_page()
    login(page, server.base, FIRST_ADMIN, server.admin_password)
    change_password(page, ADMIN_PASSWORD)

    # No enrolment step: straight to the admin's home, with the warning on the staff page.
    expect(page).to_have_url(path_is("/admin"))
    expect(page.get_by_test_id("totp-off-banner")).to_be_visible()
    expect(page.get_by_test_id("totp-off-banner")).not_to_be_empty()
    response = page.goto(f"{server.base}/account/totp")
    assert response is not None
    expect(page).not_to_have_url(path_is("/account/totp"))
    expect(page.get_by_test_id("totp-secret")).to_have_count(0)

    # Signing in again needs only the password.
    logout(page)
    login(page, server.base, FIRST_ADMIN, ADMIN_PASSWORD)
    expect(page).to_have_url(path_is("/admin"))
    expect(page.get_by_test_id("totp-off-banner")).to_be_visible()
