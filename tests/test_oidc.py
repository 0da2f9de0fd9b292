"""Single sign-on with OpenID Connect over real HTTP: Lifeline's routes driven by an aiohttp
client, the provider our own (tests/oidc_provider.py, authlib's server components, RS256 ID
tokens, PKCE S256) on loopback. The success path, the TOTP asked when the provider shows no
second factor, and each refusal, whose reason the audit chain holds while the page says only
what a failed local sign-in says.

The browser path is tests/browser/test_oidc.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from config import Settings, SettingsError, load_settings
from config.settings import OidcProvider
from server.app import create_app
from server.core.clock import FrozenClock
from tests.conftest import ClientFactory
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, ProviderUser
from tests.oidc_provider import running_provider as provider_running
from tests.software_key import SoftwareKey
from tests.staff import Client, add_account, audit_rows, csrf_of
from tests.test_webauthn import ORIGIN, _post, _with_key

PROVIDER = "police-sso"
REFUSAL = "Sign-in failed: check the username"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with provider_running() as running:
        yield running


@pytest.fixture
def group_roles() -> dict[str, str]:
    """No group mapping unless a test parametrizes one."""
    return {}


@pytest.fixture
def settings(
    settings: Settings, provider: Provider, tmp_path: Path, group_roles: dict[str, str]
) -> Settings:
    secret = tmp_path / "oidc-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    entry = OidcProvider(
        id=PROVIDER,
        name="Police SSO",
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret_file=secret,
        scopes="openid profile groups",
        group_roles=group_roles,
    )
    return settings.model_copy(update={"OIDC_PROVIDERS": [entry]})


async def start(client: Client) -> str:
    """Press the provider's button on /login: the provider's authorization URL."""
    page = await client.get("/login")
    assert f'href="/login/oidc/{PROVIDER}"' in await page.text()
    response = await client.get(f"/login/oidc/{PROVIDER}", allow_redirects=False)
    assert response.status == 303, await response.text()
    return response.headers["Location"]


async def at_provider(url: str) -> str:
    """The provider signs its user in: the callback path and query it sends the browser to."""
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(url, allow_redirects=False) as answer,
    ):
        assert answer.status == 302, await answer.text()
        back = urlsplit(answer.headers["Location"])
    return f"{back.path}?{back.query}"


async def sign_in_through(client: Client) -> tuple[str, aiohttp.ClientResponse]:
    callback = await at_provider(await start(client))
    return callback, await client.get(callback, allow_redirects=False)


def next_page(html: str) -> str:
    """Where the page after the callback moves on to (its meta refresh)."""
    marker = 'content="0;url='
    return html[html.index(marker) + len(marker) :].split('"', 1)[0]


async def entries(client: Client, action: str) -> list[dict[str, Any]]:
    rows = await audit_rows(client, action=action)
    return [{"actor": r.actor, "subject": r.subject, **json.loads(r.data)} for r in rows]


async def test_sign_in_with_pkce_reaches_the_console(client: Client, provider: Provider) -> None:
    await add_account(client, "op.kowalska", "operator")
    provider.user = ProviderUser(sub="s-1", username="Op.Kowalska", amr=["pwd", "otp", "mfa"])
    _, response = await sign_in_through(client)
    assert response.status == 200, await response.text()
    assert next_page(await response.text()) == "/console"
    console = await client.get("/console", allow_redirects=False)
    assert console.status == 200
    csrf_of(await console.text())
    # PKCE: the provider was asked for S256, and checked the verifier against the challenge.
    asked = provider.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert len(provider.verified) == 1
    assert create_s256_code_challenge(provider.verified[0]) == asked["code_challenge"]
    assert asked["nonce"] and asked["state"]
    [entry] = await entries(client, "oidc_login")
    assert entry["actor"] == "op.kowalska"
    assert entry["provider"] == PROVIDER
    assert entry["mfa"] == "provider"
    assert entry["stage"] == "active"


async def test_replayed_state_is_refused(client: Client, provider: Provider) -> None:
    await add_account(client, "op.nowak", "operator")
    provider.user = ProviderUser(sub="s-2", username="op.nowak")
    callback, first = await sign_in_through(client)
    assert first.status == 200
    again = await client.get(callback, allow_redirects=False)
    assert again.status == 401
    assert REFUSAL in await again.text()
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "state_unknown"
    assert len(await entries(client, "oidc_login")) == 1


async def test_user_without_account_is_refused(client: Client, provider: Provider) -> None:
    provider.user = ProviderUser(sub="s-3", username="stranger")
    _, response = await sign_in_through(client)
    assert response.status == 401
    assert REFUSAL in await response.text()
    assert "lifeline_session" not in response.cookies
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "unknown_user"
    assert refused["actor"] == "stranger"
    assert refused["provider"] == PROVIDER


async def test_wrong_audience_is_refused(client: Client, provider: Provider) -> None:
    await add_account(client, "op.lis", "operator")
    provider.user = ProviderUser(sub="s-4", username="op.lis")
    provider.audience = "another-client"
    _, response = await sign_in_through(client)
    assert response.status == 401
    assert REFUSAL in await response.text()
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "id_token_bad_aud"
    assert await entries(client, "oidc_login") == []


async def test_expired_id_token_is_refused(client: Client, provider: Provider) -> None:
    await add_account(client, "op.wrona", "operator")
    provider.user = ProviderUser(sub="s-5", username="op.wrona")
    provider.expired = True
    _, response = await sign_in_through(client)
    assert response.status == 401
    assert REFUSAL in await response.text()
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "id_token_expired"


async def test_callback_from_another_browser_is_refused(client: Client, provider: Provider) -> None:
    await add_account(client, "op.sowa", "operator")
    provider.user = ProviderUser(sub="s-6", username="op.sowa")
    callback = await at_provider(await start(client))
    client.session.cookie_jar.clear(lambda cookie: cookie.key == "lifeline_oidc")
    response = await client.get(callback, allow_redirects=False)
    assert response.status == 401
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "state_other_browser"


async def test_mfa_missing_in_amr_asks_for_totp(
    client: Client, provider: Provider, clock: FrozenClock
) -> None:
    account = await add_account(client, "op.zajac", "operator")
    provider.user = ProviderUser(sub="s-7", username="op.zajac", amr=["pwd"])
    _, response = await sign_in_through(client)
    assert response.status == 200
    assert next_page(await response.text()) == "/login/totp"
    # Not signed in yet: the console sends the session back to the code.
    console = await client.get("/console", allow_redirects=False)
    assert console.status == 303
    assert console.headers["Location"] == "/login/totp"
    page = await client.get("/login/totp")
    assert page.status == 200
    token = csrf_of(await page.text())
    wrong = await client.post(
        "/login/totp", data={"csrf_token": token, "totp": "000000"}, allow_redirects=False
    )
    assert wrong.status == 401
    right = await client.post(
        "/login/totp",
        data={"csrf_token": token, "totp": account.code(clock)},
        allow_redirects=False,
    )
    assert right.status == 303
    assert right.headers["Location"] == "/console"
    assert (await client.get("/console", allow_redirects=False)).status == 200
    [entry] = await entries(client, "oidc_login")
    assert entry["mfa"] == "none"
    assert entry["stage"] == "verify_totp"
    failed = await entries(client, "login_failed")
    assert [(e["reason"], e["via"]) for e in failed] == [("bad_totp", "oidc")]
    [done] = await entries(client, "login")
    assert done["second_factor"] == "totp"
    assert done["via"] == "oidc"


async def test_a_security_key_instead_of_the_code_after_a_sign_on_without_mfa(
    settings: Settings, provider: Provider, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    """The second step after a single sign-on takes the account's hardware key as it takes
    the code: another key is refused (401, ``bad_key``), the account's own opens the console."""
    keyed = settings.model_copy(update={"PUBLIC_URL": ORIGIN})
    client = await aiohttp_client(create_app(keyed, clock))
    _, key = await _with_key(client, clock, "op.nowak")
    provider.user = ProviderUser(sub="s-8", username="op.nowak", amr=["pwd"])
    _, response = await sign_in_through(client)
    assert next_page(await response.text()) == "/login/totp"
    page = await client.get("/login/totp")
    html = await page.text()
    assert 'data-testid="login-keys"' in html and 'data-after-sso="true"' in html
    token = csrf_of(html)
    stranger = SoftwareKey("localhost", ORIGIN)
    for answering, status in ((stranger, 401), (key, 200)):
        got, options = await _post(client, "/login/totp/key/options", token, {})
        assert got == 200, options
        body = {"challenge_id": options["challenge_id"], "credential": answering.get(options)}
        got, answer = await _post(client, "/login/totp/key", token, body)
        assert got == status, answer
    assert answer == {"location": "/console"}
    assert (await client.get("/console", allow_redirects=False)).status == 200
    failed = await entries(client, "login_failed")
    assert [(e["reason"], e["via"]) for e in failed] == [("bad_key", "oidc")]
    done = [e for e in await entries(client, "login") if e.get("via") == "oidc"]
    assert [e["second_factor"] for e in done] == ["webauthn"]


@pytest.mark.parametrize(
    "group_roles", [{"cc-operators": "operator", "cc-supervisors": "supervisor"}]
)
async def test_group_mapping_must_grant_the_accounts_role(
    client: Client, provider: Provider
) -> None:
    """With a group mapping, the groups must grant the role the account has; it is not
    changed."""
    await add_account(client, "sup.kruk", "supervisor")
    provider.user = ProviderUser(sub="s-8", username="sup.kruk", groups=["cc-operators"])
    _, response = await sign_in_through(client)
    assert response.status == 401
    [refused] = await entries(client, "oidc_login_refused")
    assert refused["reason"] == "group_role_mismatch"
    provider.user = ProviderUser(sub="s-8", username="sup.kruk", groups=["cc-supervisors"])
    _, response = await sign_in_through(client)
    assert response.status == 200
    assert next_page(await response.text()) == "/wall"


async def test_unknown_provider_is_a_404(client: Client) -> None:
    response = await client.get("/login/oidc/nowhere", allow_redirects=False)
    assert response.status == 404
    callback = await client.get("/login/oidc/nowhere/callback?state=x&code=y")
    assert callback.status == 404


async def test_login_page_shows_the_provider_button(client: Client) -> None:
    page = await client.get("/login")
    html = await page.text()
    assert f'data-testid="login-oidc-{PROVIDER}"' in html
    assert "Sign in with Police SSO" in html
    parsed = parse_qs(urlsplit(await start(client)).query)
    assert parsed["redirect_uri"][0].endswith(f"/login/oidc/{PROVIDER}/callback")


async def test_a_provider_that_does_not_answer(client: Client, provider: Provider) -> None:
    provider.down = True
    response = await client.get(f"/login/oidc/{PROVIDER}", allow_redirects=False)
    assert response.status == 502
    html = await response.text()
    assert "The single sign-on service does not answer" in html
    assert 'data-testid="login-submit"' in html  # the password form is still there
    json_answer = await client.get(
        f"/login/oidc/{PROVIDER}", headers={"Accept": "application/json"}
    )
    assert json_answer.status == 502
    assert (await json_answer.json())["error"]["code"] == "oidc_provider_unavailable"


def test_providers_setting_is_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    entry = {
        "id": "police",
        "name": "Police SSO",
        "issuer": "https://sso.example/realms/staff/",
        "client_id": "lifeline",
        "client_secret_file": str(secret),
        "group_roles": {"cc-ops": "operator"},
    }
    monkeypatch.setenv("LIFELINE_OIDC_PROVIDERS", json.dumps([entry]))
    [provider] = load_settings(DATA_DIR=tmp_path).OIDC_PROVIDERS
    assert provider.issuer == "https://sso.example/realms/staff"
    assert provider.username_claim == "preferred_username"
    assert provider.mfa_amr == ["mfa"]
    assert provider.client_secret == "s3cret-value"
    secret.unlink()
    with pytest.raises(SettingsError, match="OIDC_PROVIDERS"):
        load_settings(DATA_DIR=tmp_path)
    monkeypatch.setenv(
        "LIFELINE_OIDC_PROVIDERS", json.dumps([{**entry, "group_roles": {"x": "god"}}])
    )
    with pytest.raises(SettingsError, match="OIDC_PROVIDERS"):
        load_settings(DATA_DIR=tmp_path)
