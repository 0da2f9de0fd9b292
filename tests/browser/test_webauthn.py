"""Hardware keys in Chromium, with its virtual authenticator (the DevTools protocol's WebAuthn
domain through Playwright's CDP session): an operator adds a key on /account/keys, signs out,
signs in with the password and the key (no TOTP code), removes the key, and a sign-in with it is
refused. Each step is in the audit chain.

WebAuthn needs a secure context and a relying party id that is a name, not an IP address: the
server runs with PUBLIC_URL http://localhost:PORT and the browser opens that (Chromium treats
http://localhost as secure).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.browser.test_account_recovery import entries
from tests.browser.test_first_admin import login, logout, path_is

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
OPERATOR = "op.kowalska"
KEY_NAME = "Yellow key on my keyring"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    port = _free_port()
    server = start_server(
        tmp_path_factory.mktemp("webauthn"),
        {"LIFELINE_PUBLIC_URL": f"http://localhost:{port}", "LIFELINE_WEBAUTHN_PASSWORDLESS": "1"},
        port=port,
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(keys_server: RunningServer) -> None:
    """The server starts before Chromium (in scale-out its start resets PostgreSQL with
    ``asyncio.run()``, which fails once sync Playwright's loop runs in this thread)."""


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def virtual_key(context: BrowserContext, page: Page) -> tuple[Any, str]:
    """A CTAP2 USB key that holds passkeys and verifies its user, answering at once."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp, added["authenticatorId"]


# In the page: fresh options for the account, the key made to sign naming ``credentialId`` (as
# a tampered page could), the answer posted with the password; the server's status and code.
FORCED_SIGN_IN = """
async ([username, password, credentialId]) => {
  const codec = await import('/static/js/webauthn_codec.js');
  const csrf = document.querySelector('input[name=csrf_token]').value;
  const options = await codec.postJson('/login/key/options', csrf, { username });
  const publicKey = codec.requestOptions(options.publicKey);
  const raw = atob(credentialId.replace(/-/g, '+').replace(/_/g, '/'));
  const id = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  publicKey.allowCredentials = [{ type: 'public-key', id }];
  const credential = await navigator.credentials.get({ publicKey });
  try {
    await codec.postJson('/login/key', csrf, {
      challenge_id: options.challenge_id, credential: codec.credentialJson(credential),
      username, password,
    });
    return { status: 200 };
  } catch (error) {
    return { status: 401, code: error.message };
  }
}
"""


def key_sign_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    expect(page.get_by_test_id("login-keys")).to_have_attribute("data-ready", "true")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_test_id("login-webauthn").click()


def test_a_key_added_on_the_account_page_signs_in_instead_of_totp_until_removed(
    keys_server: RunningServer, context: BrowserContext, artifacts: Path, page_errors: list[str]
) -> None:
    base = keys_server.base
    assert base.startswith("http://localhost:"), base
    secret = add_staff(keys_server, OPERATOR, "operator")
    page = context.new_page()
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    cdp, authenticator = virtual_key(context, page)

    login(page, base, OPERATOR, STAFF_PASSWORD, pyotp.TOTP(secret).now())
    expect(page).to_have_url(path_is("/console"))
    page.get_by_test_id("nav-keys").click()
    expect(page).to_have_url(path_is("/account/keys"))
    expect(page.get_by_test_id("webauthn-keys")).to_have_attribute("data-ready", "true")
    expect(page.get_by_test_id("webauthn-none")).to_be_visible()
    page.get_by_test_id("webauthn-name").fill(KEY_NAME)
    page.get_by_test_id("webauthn-add").click()
    row = page.locator("[data-testid^='webauthn-key-']")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-key-name", KEY_NAME)
    expect(row.get_by_test_id("webauthn-never-used")).to_be_visible()
    key_id = (row.get_attribute("data-testid") or "").removeprefix("webauthn-key-")
    assert key_id.isdigit(), key_id
    held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(held) == 1 and held[0]["isResidentCredential"] is True
    page.set_viewport_size({"width": 360, "height": 740})
    page.screenshot(path=str(artifacts / "account-keys-360.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    logout(page)

    # The password and the key, no code: the console opens.
    key_sign_in(page, base, OPERATOR, STAFF_PASSWORD)
    expect(page).to_have_url(path_is("/console"))
    page.goto(f"{base}/account/keys")
    expect(
        page.get_by_test_id(f"webauthn-key-{key_id}").get_by_test_id("webauthn-last-used")
    ).to_be_visible()

    logout(page)

    # Where the deployment allows it (WEBAUTHN_PASSWORDLESS), the passkey alone.
    page.goto(f"{base}/login")
    expect(page.get_by_test_id("login-keys")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("login-passkey").click()
    expect(page).to_have_url(path_is("/console"))

    # Removed, the key opens nothing: the browser finds no key of the account to offer ...
    page.goto(f"{base}/account/keys")
    page.get_by_test_id(f"webauthn-remove-{key_id}").click()
    expect(page.get_by_test_id("webauthn-none")).to_be_visible()
    logout(page)
    key_sign_in(page, base, OPERATOR, STAFF_PASSWORD)
    expect(page.get_by_test_id("login-webauthn-error")).to_have_attribute("data-code", "cancelled")
    expect(page).to_have_url(path_is("/login"))
    page.set_viewport_size({"width": 360, "height": 740})
    page.screenshot(path=str(artifacts / "login-key-refused-360.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    # ... and a page that makes the key sign anyway (naming its credential) is refused.
    refused = page.evaluate(FORCED_SIGN_IN, [OPERATOR, STAFF_PASSWORD, held[0]["credentialId"]])
    assert refused == {"status": 401, "code": "login_failed"}, refused
    expect(page).to_have_url(path_is("/login"))

    steps = [
        (e["action"], e["data"].get("method") or e["data"].get("reason"))
        for e in entries(keys_server, OPERATOR)
    ]
    login_at = steps.index(("login", None))
    assert steps[login_at:] == [
        ("login", None),
        ("webauthn_registered", None),
        ("logout", None),
        ("webauthn_used", None),
        ("login", "webauthn"),
        ("logout", None),
        ("webauthn_used", None),
        ("login", "passkey"),
        ("webauthn_removed", None),
        ("logout", None),
        ("webauthn_refused", "unknown_key"),
        ("login_failed", "bad_key"),
    ], steps
