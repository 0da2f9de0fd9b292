"""Single sign-on with OpenID Connect: the authorization code flow with PKCE (S256), the ID
token checked against the provider's keys, and the staff member matched to their Lifeline
account.

The ``state``, the ``nonce`` and the PKCE verifier are made here and kept in the database
(``oidc_logins``), never in the browser, bound to the browser that started the sign-in (the hash
of its ``lifeline_oidc`` cookie). The callback deletes the row before it does anything else: a
state is good once, so a callback URL used a second time is refused.

The ID token is believed only with a signature by a key of the provider's JWKS (asymmetric
algorithms only), its ``iss`` the configured issuer, its ``aud`` our client id (and ``azp`` ours
when it names others too), ``exp`` not passed and ``iat`` not before the sign-in started (a
minute's leeway for the clocks), and its ``nonce`` the one this sign-in sent.

The account is the enabled Lifeline account whose username is the token's ``username_claim``;
its role is Lifeline's. Each refusal gets the answer of a failed local sign-in (the page says
nothing more); the audit chain has the reason (``oidc_login_refused``), each success an
``oidc_login``. A provider that showed no second factor (``acr``/``amr``, as configured) leaves
the session at ``verify_totp``: Lifeline's own TOTP code is asked, as at a local sign-in.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from sqlmodel import col, delete, select

from config.settings import OidcProvider
from server.actions.login import KeyCheck, address_key, check_allowance, verify_second_factor
from server.actions.staff_sessions import StaffContext, do_set_stage
from server.core.errors import AppError, ErrorCode
from server.core.ports import OidcHttpFailed
from server.core.services import Services
from server.db.models import OidcLogin, SessionStage, User
from server.security.tokens import token_hash

log = logging.getLogger("lifeline.oidc")

# What an ID token may be signed with: asymmetric algorithms only (never "none", never a
# secret-keyed HMAC, which anyone holding the client secret could forge).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")
# The clocks of the provider and of this node may differ by this much.
LEEWAY_SECS = 60
MAX_PARAM_CHARS = 2048


class Refused(Exception):
    """Why a callback is refused: the audit chain's reason (the page says nothing of it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class OidcOutcome:
    """A callback's end: the account and the session stage it starts at, or no account."""

    user: User | None
    stage: str = SessionStage.ACTIVE
    next_path: str = ""


def provider_of(services: Services, provider_id: str) -> OidcProvider:
    provider = services.settings.oidc_provider(provider_id)
    if provider is None:
        raise AppError(ErrorCode.OIDC_UNKNOWN_PROVIDER, "No such sign-in provider")
    return provider


async def _discover(services: Services, provider: OidcProvider) -> dict[str, str]:
    """The provider's endpoints from its discovery document, which must name its own issuer
    (OpenID Connect Discovery 4.3)."""
    url = f"{provider.issuer}/.well-known/openid-configuration"
    try:
        document = await services.oidc.get_json(url)
    except OidcHttpFailed as failed:
        raise AppError(
            ErrorCode.OIDC_PROVIDER_UNAVAILABLE,
            "The sign-in provider does not answer",
            data={"detail": failed.detail},
        ) from None
    endpoints: dict[str, str] = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or urlsplit(value).scheme not in ("https", "http"):
            raise AppError(
                ErrorCode.OIDC_PROVIDER_UNAVAILABLE, f"The provider's discovery lacks {name}"
            )
        endpoints[name] = value
    if str(document.get("issuer", "")).rstrip("/") != provider.issuer:
        raise AppError(
            ErrorCode.OIDC_PROVIDER_UNAVAILABLE, "The provider's discovery names another issuer"
        )
    return endpoints


async def do_begin(
    services: Services,
    provider_id: str,
    *,
    browser: str,
    redirect_uri: str,
    next_path: str,
    remote: str,
) -> str:
    """Start a sign-in at the provider; the URL to send the browser to.

    Raises:
        AppError: an unknown provider, a provider that does not answer, or ``RATE_LIMITED``.
    """
    provider = provider_of(services, provider_id)
    settings = services.settings
    await check_allowance(services.audit, services.limits, settings, address_key(remote))
    endpoints = await _discover(services, provider)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters of RFC 7636's 43 to 128
    now = services.clock.now()
    async with services.db.session() as session:
        # Sign-ins never finished: forgotten once they could no longer be.
        await session.exec(
            delete(OidcLogin).where(
                col(OidcLogin.created_at) < now - timedelta(seconds=settings.OIDC_LOGIN_SECS)
            )
        )
        session.add(
            OidcLogin(
                state_hash=token_hash(state),
                browser_hash=token_hash(browser),
                provider=provider.id,
                nonce=nonce,
                code_verifier=verifier,
                next_path=next_path[:512],
                created_at=now,
            )
        )
        await session.commit()
    query = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": provider.scopes,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if provider.mfa_acr:
        query["acr_values"] = " ".join(provider.mfa_acr)
    endpoint = endpoints["authorization_endpoint"]
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


async def _claim_state(services: Services, state: str) -> OidcLogin:
    """The sign-in this state started, deleted in the same step: a second use finds none."""
    if not state or len(state) > MAX_PARAM_CHARS:
        raise Refused("state_missing")
    async with services.db.session() as session:
        row = await session.get(OidcLogin, token_hash(state))
        if row is None:
            raise Refused("state_unknown")
        session.expunge(row)
        taken = await session.exec(
            delete(OidcLogin).where(col(OidcLogin.state_hash) == token_hash(state))
        )
        await session.commit()
    if taken.rowcount != 1:  # another request took it first
        raise Refused("state_unknown")
    return row


def _verify_id_token(
    provider: OidcProvider, id_token: str, keys: KeySet, *, nonce: str, started: datetime, now: int
) -> dict[str, Any]:
    """The ID token's claims, once its signature and claims are what this sign-in expects."""
    try:
        token = jwt.decode(id_token, keys, algorithms=list(SIGNING_ALGORITHMS))
    except JoseError as error:
        raise Refused("id_token_bad_signature", type(error).__name__) from None
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY_SECS,
        iss={"essential": True, "value": provider.issuer},
        aud={"essential": True, "value": provider.client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Refused("id_token_expired") from None
    except ClaimError as error:
        raise Refused(f"id_token_bad_{error.claim}"[:48]) from None
    except JoseError as error:
        raise Refused("id_token_bad_claims", type(error).__name__) from None
    audience = claims["aud"]
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != provider.client_id:
        raise Refused("id_token_bad_azp")
    iat = claims["iat"]
    if not isinstance(iat, int | float) or iat < started.timestamp() - LEEWAY_SECS:
        raise Refused("id_token_bad_iat", "issued before this sign-in began")
    return claims


def _mfa_shown(provider: OidcProvider, claims: dict[str, Any]) -> bool:
    amr = claims.get("amr")
    methods = [m for m in amr if isinstance(m, str)] if isinstance(amr, list) else []
    return claims.get("acr") in provider.mfa_acr or any(m in provider.mfa_amr for m in methods)


def _groups(provider: OidcProvider, claims: dict[str, Any]) -> list[str]:
    value = claims.get(provider.groups_claim)
    if isinstance(value, str):
        return [value]
    return [g for g in value if isinstance(g, str)] if isinstance(value, list) else []


def stage_after(services: Services, user: User, *, mfa_at_provider: bool) -> str:
    """Where a single sign-on leaves the session: no password was used, so none is asked for;
    the provider's second factor counts as Lifeline's, else Lifeline's TOTP is asked (or, not
    enrolled yet where it is required, enrolled)."""
    if mfa_at_provider:
        return SessionStage.ACTIVE
    if user.totp_confirmed and user.totp_secret:
        return SessionStage.VERIFY_TOTP
    if services.settings.REQUIRE_TOTP:
        return SessionStage.ENROL_TOTP
    return SessionStage.ACTIVE


async def _exchange(
    services: Services, provider: OidcProvider, row: OidcLogin, *, code: str, redirect_uri: str
) -> dict[str, Any]:
    """The ID token's claims for ``code``: the token exchange with the PKCE verifier, then the
    token checked against the provider's keys."""
    try:
        endpoints = await _discover(services, provider)
    except AppError as error:
        raise Refused("provider_unavailable", str(error.data.get("detail", error))) from None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": row.code_verifier,
        "client_id": provider.client_id,
    }
    # RFC 6749 2.3.1: the client id and secret are form-encoded inside HTTP Basic.
    basic = (quote(provider.client_id, safe=""), quote(provider.client_secret, safe=""))
    try:
        answer = await services.oidc.post_form(endpoints["token_endpoint"], form, basic_auth=basic)
        key_set = await services.oidc.get_json(endpoints["jwks_uri"])
    except OidcHttpFailed as failed:
        raise Refused("token_exchange_failed", failed.detail) from None
    id_token = answer.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise Refused("no_id_token")
    try:
        keys = KeySet.import_key_set(key_set)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise Refused("bad_jwks", type(error).__name__) from None
    return _verify_id_token(
        provider,
        id_token,
        keys,
        nonce=row.nonce,
        started=row.created_at,
        now=int(services.clock.now().timestamp()),
    )


async def do_complete(
    services: Services,
    provider_id: str,
    *,
    browser: str,
    state: str,
    code: str,
    error: str,
    redirect_uri: str,
    remote: str,
) -> OidcOutcome:
    """Finish a sign-in at the provider's callback, and enter it in the audit chain.

    Raises:
        AppError: an unknown provider, or ``RATE_LIMITED``.
    """
    provider = provider_of(services, provider_id)
    await check_allowance(services.audit, services.limits, services.settings, address_key(remote))
    name = ""
    next_path = ""
    try:
        row = await _claim_state(services, state)
        next_path = row.next_path
        if not browser or row.browser_hash != token_hash(browser):
            raise Refused("state_other_browser")
        if row.provider != provider.id:
            raise Refused("state_other_provider")
        age = services.clock.now() - row.created_at
        if age > timedelta(seconds=services.settings.OIDC_LOGIN_SECS):
            raise Refused("state_expired")
        if error:
            raise Refused("provider_error", error[:64])
        if not code or len(code) > MAX_PARAM_CHARS:
            raise Refused("no_code")
        claims = await _exchange(services, provider, row, code=code, redirect_uri=redirect_uri)
        claimed = claims.get(provider.username_claim)
        if not isinstance(claimed, str) or not claimed.strip():
            raise Refused("no_username_claim", provider.username_claim)
        name = claimed.strip().lower()[:64]
        async with services.audit.transaction() as session:
            user = (await session.exec(select(User).where(col(User.username) == name))).first()
            if user is None or user.id is None:
                raise Refused("unknown_user")
            if user.disabled:
                raise Refused("disabled")
            if provider.group_roles:
                granted = {
                    provider.group_roles[g]
                    for g in _groups(provider, claims)
                    if g in provider.group_roles
                }
                if user.role not in granted:
                    raise Refused("group_role_mismatch", ",".join(sorted(granted)))
            mfa = _mfa_shown(provider, claims)
            stage = stage_after(services, user, mfa_at_provider=mfa)
            await services.audit.record(
                session,
                actor=name,
                action="oidc_login",
                subject=f"user:{name}",
                data={
                    "provider": provider.id,
                    "remote": remote,
                    "sub": str(claims.get("sub", ""))[:128],
                    "mfa": "provider" if mfa else "none",
                    "stage": stage,
                },
            )
            session.expunge(user)
        log.info("oidc login", extra={"user": name, "provider": provider.id, "stage": stage})
        return OidcOutcome(user, stage, next_path)
    except Refused as refused:
        data: dict[str, Any] = {"provider": provider.id, "reason": refused.reason, "remote": remote}
        if refused.detail:
            data["detail"] = refused.detail[:128]
        await services.audit.append(
            actor=name or "-",
            action="oidc_login_refused",
            subject=f"user:{name}" if name else f"oidc:{provider.id}",
            data=data,
        )
        log.info(
            "oidc login refused",
            extra={"user": name, "provider": provider.id, "reason": refused.reason},
        )
        return OidcOutcome(None, next_path=next_path)


async def do_second_factor(
    services: Services,
    staff: StaffContext,
    totp: str,
    *,
    remote: str,
    key: KeyCheck | None = None,
) -> bool:
    """Lifeline's TOTP code (or, with ``key``, a hardware key's answer) after a single sign-on
    without the provider's second factor: right, the session becomes active.

    Raises:
        AppError: ``RATE_LIMITED``, the address has used its allowance of tries.
    """
    if staff.stage != SessionStage.VERIFY_TOTP:
        return False
    accepted = await verify_second_factor(
        services.audit,
        services.clock,
        services.settings,
        services.limits,
        user_id=staff.user_id,
        totp=totp,
        remote=remote,
        key=key,
    )
    if accepted:
        await do_set_stage(services, staff.session_id, SessionStage.ACTIVE)
    return accepted
