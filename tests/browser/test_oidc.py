"""Single sign-on in Chromium: Lifeline's login page, the provider's button, the provider (our
own, tests/oidc_provider.py: authlib's server components, RS256 ID tokens, PKCE S256 only),
the redirect back, and the console. Then a provider that shows no second factor: Lifeline asks
for its own TOTP code first. And the page on a 360-px phone.

The refusals (no account, wrong audience, expired token, replayed state) are driven over HTTP
in tests/test_oidc.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.browser.test_first_admin import login, logout, path_is
from tests.browser.test_webauthn import _free_port, virtual_key
from tests.oidc_provider import CLIENT_SECRET, Provider, ProviderUser, provider_setting
from tests.oidc_provider import running_provider as provider_running

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
BUTTON = "login-oidc-police-sso"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with provider_running() as running:
        yield running


@pytest.fixture(scope="module")
def sso_server(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[RunningServer]:
    secrets_dir = tmp_path_factory.mktemp("oidc")
    secret = secrets_dir / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    server = start_server(
        tmp_path_factory.mktemp("sso"),
        {"LIFELINE_OIDC_PROVIDERS": provider_setting(provider, str(secret))},
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def sso_keys_server(
    tmp_path_factory: pytest.TempPathFactory, provider: Provider
) -> Iterator[RunningServer]:
    """The same provider, on a server whose PUBLIC_URL names localhost: a relying party for
    hardware keys (its id cannot be an IP address)."""
    secret = tmp_path_factory.mktemp("oidc-keys") / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    port = _free_port()
    server = start_server(
        tmp_path_factory.mktemp("sso-keys"),
        {
            "LIFELINE_OIDC_PROVIDERS": provider_setting(provider, str(secret)),
            "LIFELINE_PUBLIC_URL": f"http://localhost:{port}",
        },
        port=port,
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _servers_before_browser(sso_server: RunningServer, sso_keys_server: RunningServer) -> None:
    """The servers start before Chromium (in scale-out a server's start resets PostgreSQL
    with ``asyncio.run()``, which fails once sync Playwright's loop runs in this thread)."""


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


def open_login(context: BrowserContext, page_errors: list[str], base: str) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    page.goto(f"{base}/login")
    return page


def test_sign_in_through_the_provider_reaches_the_console(
    sso_server: RunningServer,
    provider: Provider,
    context: BrowserContext,
    page_errors: list[str],
) -> None:
    add_staff(sso_server, "op.kowalska", "operator")
    provider.user = ProviderUser(sub="k-1", username="op.kowalska", amr=["pwd", "hwk", "mfa"])
    page = open_login(context, page_errors, sso_server.base)
    button = page.get_by_test_id(BUTTON)
    expect(button).to_have_text("Sign in with Police SSO")
    expect(page.get_by_test_id("login-submit")).to_be_visible()  # local sign-in stays
    asked_before = len(provider.authorize_requests)
    button.click()
    expect(page).to_have_url(path_is("/console"))
    expect(page.get_by_test_id("whoami-username")).to_have_text("op.kowalska")
    # The browser went through the provider, which was asked for PKCE with S256 and checked
    # the verifier Lifeline sent against the challenge.
    assert len(provider.authorize_requests) == asked_before + 1
    asked = provider.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert create_s256_code_challenge(provider.verified[-1]) == asked["code_challenge"]


def test_no_second_factor_at_the_provider_asks_for_totp(
    sso_server: RunningServer,
    provider: Provider,
    context: BrowserContext,
    page_errors: list[str],
) -> None:
    secret = add_staff(sso_server, "op.zielinska", "operator")
    provider.user = ProviderUser(sub="z-1", username="op.zielinska", amr=["pwd"])
    page = open_login(context, page_errors, sso_server.base)
    page.get_by_test_id(BUTTON).click()
    expect(page).to_have_url(path_is("/login/totp"))
    page.get_by_test_id("verify-totp-code").fill("000000")
    page.get_by_test_id("verify-totp-submit").click()
    expect(page.get_by_test_id("form-error")).to_be_visible()
    page.get_by_test_id("verify-totp-code").fill(pyotp.TOTP(secret).now())
    page.get_by_test_id("verify-totp-submit").click()
    expect(page).to_have_url(path_is("/console"))
    expect(page.get_by_test_id("whoami-username")).to_have_text("op.zielinska")


def test_a_security_key_instead_of_the_code_after_the_provider(
    sso_keys_server: RunningServer,
    provider: Provider,
    context: BrowserContext,
    page_errors: list[str],
) -> None:
    """A key added on /account/keys (Chromium's virtual authenticator) answers /login/totp's
    second step after a provider that showed no second factor."""
    base = sso_keys_server.base
    secret = add_staff(sso_keys_server, "op.wisniewska", "operator")
    page = open_login(context, page_errors, base)
    _, _authenticator = virtual_key(context, page)
    login(page, base, "op.wisniewska", STAFF_PASSWORD, pyotp.TOTP(secret).now())
    expect(page).to_have_url(path_is("/console"))
    page.goto(f"{base}/account/keys")
    expect(page.get_by_test_id("webauthn-keys")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("webauthn-name").fill("Grey key")
    page.get_by_test_id("webauthn-add").click()
    expect(page.locator("[data-testid^='webauthn-key-']")).to_have_count(1)
    logout(page)

    provider.user = ProviderUser(sub="w-1", username="op.wisniewska", amr=["pwd"])
    page.goto(f"{base}/login")
    page.get_by_test_id(BUTTON).click()
    expect(page).to_have_url(path_is("/login/totp"))
    expect(page.get_by_test_id("login-keys")).to_have_attribute("data-ready", "true")
    page.get_by_test_id("login-webauthn").click()
    expect(page).to_have_url(path_is("/console"))
    expect(page.get_by_test_id("whoami-username")).to_have_text("op.wisniewska")


def test_the_button_on_a_phone(
    sso_server: RunningServer, browser: Browser, page_errors: list[str]
) -> None:
    ctx = browser.new_context(viewport={"width": 360, "height": 740})
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        page = open_login(ctx, page_errors, sso_server.base)
        box = page.get_by_test_id(BUTTON).bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
        assert box["height"] >= 48
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360
    finally:
        ctx.close()
