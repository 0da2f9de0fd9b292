"""Signing in with a hardware key: after the password instead of the TOTP code, or, where the
deployment says so (``WEBAUTHN_PASSWORDLESS``), a passkey alone.

As a second factor the key's answer is checked inside the password's sign-in
(``login.authenticate``), so the answer to a refused key is the one every failure gets, and it
counts as a failure of the address on the account. The options name the account's keys; an
unknown account, or one without keys, is named a stand-in key of its own (a keyed hash of the
name), so the options tell nobody which accounts exist or have keys.

A passkey alone must verify its user (a PIN or a fingerprint on the key): it is then something
the user has and something they are or know. The key's signature cannot be guessed, so its
refusals are audited but do not make the address wait.

A key whose signature count goes back (a clone of it signing) is refused and audited
(``webauthn_refused`` with ``reason: sign_count``); every use is ``webauthn_used``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from webauthn import (
    generate_authentication_options,
    options_to_json,
    verify_authentication_response,
)
from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

from server.actions import webauthn_challenges as challenges
from server.actions.login import (
    Judged,
    KeyCheck,
    LoginResult,
    Outcome,
    StandingJudge,
    address_key,
    check_allowance,
)
from server.actions.webauthn_keys import REFUSED, descriptors, keys_of, party_of
from server.actions.webauthn_verify import Refused, checked, credential_id_of, sign_count_goes_on
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import User, WebAuthnCredential
from server.security.relying_party import RelyingParty

log = logging.getLogger("lifeline.auth")

USED = "webauthn_used"
STAND_IN_BYTES = 32


def _options(
    services: Services,
    party: RelyingParty,
    challenge_id: str,
    challenge: bytes,
    allow: list[PublicKeyCredentialDescriptor],
    verification: UserVerificationRequirement,
) -> dict[str, Any]:
    options = generate_authentication_options(
        rp_id=party.id,
        challenge=challenge,
        timeout=services.settings.WEBAUTHN_CHALLENGE_SECS * 1000,
        allow_credentials=allow,
        user_verification=verification,
    )
    return {"challenge_id": challenge_id, "publicKey": json.loads(options_to_json(options))}


async def second_factor_options(
    services: Services, *, username: str, remote: str
) -> dict[str, Any]:
    """Options for ``navigator.credentials.get`` naming the account's keys; the try counts
    against the address's sign-in allowance."""
    party = party_of(services)
    await check_allowance(services.audit, services.limits, services.settings, address_key(remote))
    name = username.strip().lower()[:64]
    async with services.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == name))).first()
        keys = await keys_of(session, user.id) if user is not None and user.id else []
        issued = await challenges.issue(
            session,
            services.clock,
            services.settings,
            purpose=challenges.SECOND_FACTOR,
            username=name,
        )
        await session.commit()
    allow = descriptors(keys) or [
        PublicKeyCredentialDescriptor(
            id=bytes.fromhex(services.pseudonyms.of("webauthn-stand-in", name))[:STAND_IN_BYTES]
        )
    ]
    return _options(
        services, party, issued.id, issued.challenge, allow, UserVerificationRequirement.PREFERRED
    )


async def passkey_options(services: Services, *, remote: str) -> dict[str, Any]:
    """Options for a passkey alone: no account named (the key offers its own), the user
    verified."""
    if not services.settings.WEBAUTHN_PASSWORDLESS:
        raise AppError(ErrorCode.PASSKEYS_OFF, "This deployment signs in with a password first")
    party = party_of(services)
    await check_allowance(services.audit, services.limits, services.settings, address_key(remote))
    async with services.db.session() as session:
        issued = await challenges.issue(
            session, services.clock, services.settings, purpose=challenges.PASSKEY
        )
        await session.commit()
    return _options(
        services, party, issued.id, issued.challenge, [], UserVerificationRequirement.REQUIRED
    )


async def _use_key(
    services: Services,
    session: AsyncSession,
    party: RelyingParty,
    *,
    user: User,
    challenge: bytes,
    credential: dict[str, Any],
    user_verified: bool,
) -> WebAuthnCredential:
    """Check the answer against ``user``'s key it names and move the key's count on; the key, or
    ``Refused``."""
    credential_id = credential_id_of(credential)
    key = (
        await session.exec(
            select(WebAuthnCredential).where(
                col(WebAuthnCredential.credential_id) == credential_id,
                col(WebAuthnCredential.user_id) == user.id,
            )
        )
    ).first()
    if key is None:
        raise Refused("unknown_key", "no such key on this account")
    verified = checked(
        verify_authentication_response,
        credential=credential,
        expected_challenge=challenge,
        expected_rp_id=party.id,
        expected_origin=party.origin,
        credential_public_key=key.public_key,
        # The count is ours to judge (sign_count_goes_on), so its refusal has its own reason.
        credential_current_sign_count=0,
        require_user_verification=user_verified,
    )
    if not sign_count_goes_on(key.sign_count, verified.new_sign_count):
        raise Refused(
            "sign_count",
            f"key {key.id} signed with count {verified.new_sign_count} after {key.sign_count}",
        )
    key.sign_count = verified.new_sign_count
    key.last_used_at = services.clock.now()
    session.add(key)
    return key


async def _record_use(
    services: Services, session: AsyncSession, user: User, key: WebAuthnCredential, stage: str
) -> None:
    await services.audit.record(
        session,
        actor=user.username,
        action=USED,
        subject=f"user:{user.username}",
        data={"stage": stage, "key_id": key.id, "name": key.name, "sign_count": key.sign_count},
    )


async def _record_refusal(
    services: Services, session: AsyncSession, name: str, stage: str, refused: Refused, remote: str
) -> None:
    await services.audit.record(
        session,
        actor=name or "-",
        action=REFUSED,
        subject=f"user:{name}" if name else "webauthn:passkey",
        data={"stage": stage, "reason": refused.reason, "detail": refused.detail, "remote": remote},
    )
    log.info("webauthn refused", extra={"user": name, "reason": refused.reason})


async def key_check(
    services: Services, *, challenge_id: str, credential: dict[str, Any], remote: str
) -> KeyCheck:
    """The key's answer as ``login.authenticate``'s second factor. The challenge is taken now, in
    a transaction of its own: used once, whatever the password turns out to be."""
    party = party_of(services)
    async with services.db.session() as session:
        taken = await challenges.take(
            session, services.clock, challenge_id, challenges.SECOND_FACTOR
        )
        await session.commit()

    async def check(session: AsyncSession, user: User) -> bool:
        try:
            if taken is None or taken.username != user.username:
                raise Refused("challenge", "no such challenge for this account, or used, or old")
            key = await _use_key(
                services,
                session,
                party,
                user=user,
                challenge=taken.challenge,
                credential=credential,
                user_verified=False,
            )
        except Refused as refused:
            name = user.username
            await _record_refusal(services, session, name, "second_factor", refused, remote)
            return False
        await _record_use(services, session, user, key, "second_factor")
        return True

    return check


async def _owner_name(services: Services, credential: dict[str, Any]) -> str | None:
    """The username of the account the key names, read before the sign-in's transaction (so
    that the directory is not asked while the chain's lock is held); None if none does."""
    try:
        credential_id = credential_id_of(credential)
    except Refused:
        return None  # refused with its reason inside the transaction
    async with services.db.session() as session:
        return (
            await session.exec(
                select(User.username)
                .join(WebAuthnCredential, col(WebAuthnCredential.user_id) == col(User.id))
                .where(col(WebAuthnCredential.credential_id) == credential_id)
            )
        ).first()


async def passkey_sign_in(
    services: Services,
    *,
    challenge_id: str,
    credential: dict[str, Any],
    remote: str,
    standing: StandingJudge | None = None,
) -> LoginResult:
    """A passkey alone (``WEBAUTHN_PASSWORDLESS``): the key names its account, verifies its
    user, and signs our challenge. One transaction with its audit entries (``login`` with
    ``method: passkey``). ``standing``: the directory's word on a directory account (found, not
    disabled there), asked first: a key registered before the person was disabled in the
    directory opens nothing."""
    if not services.settings.WEBAUTHN_PASSWORDLESS:
        raise AppError(ErrorCode.PASSKEYS_OFF, "This deployment signs in with a password first")
    party = party_of(services)
    await check_allowance(services.audit, services.limits, services.settings, address_key(remote))
    named = await _owner_name(services, credential) if standing is not None else None
    judged: Judged | None = await standing(named) if standing is not None and named else None
    async with services.audit.transaction() as session:
        taken = await challenges.take(session, services.clock, challenge_id, challenges.PASSKEY)
        user: User | None = None
        try:
            if taken is None:
                raise Refused("challenge", "no such challenge, or used, or old")
            credential_id = credential_id_of(credential)
            owner = (
                await session.exec(
                    select(WebAuthnCredential.user_id).where(
                        col(WebAuthnCredential.credential_id) == credential_id
                    )
                )
            ).first()
            user = await session.get(User, owner) if owner is not None else None
            if user is None:
                raise Refused("unknown_key", "no account has this key")
            if user.disabled:
                raise Refused("disabled", "the account is disabled")
            if judged is not None and user.username == named and not judged.ok:
                detail = str(judged.facts.get("directory_error", judged.facts.get("directory", "")))
                raise Refused(judged.reason, detail)
            key = await _use_key(
                services,
                session,
                party,
                user=user,
                challenge=taken.challenge,
                credential=credential,
                user_verified=True,
            )
        except Refused as refused:
            name = user.username if user is not None else ""
            await _record_refusal(services, session, name, "passkey", refused, remote)
            return LoginResult(Outcome.FAILED)
        await _record_use(services, session, user, key, "passkey")
        await services.audit.record(
            session,
            actor=user.username,
            action="login",
            subject=f"user:{user.username}",
            data={"remote": remote, "method": "passkey"},
        )
        log.info("login", extra={"user": user.username, "method": "passkey"})
        return LoginResult(Outcome.OK, user)
