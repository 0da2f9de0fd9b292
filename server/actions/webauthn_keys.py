"""A staff member's hardware keys and passkeys: adding one, the list, removing one.

A signed-in user adds a key from /account/keys and names it; it is listed with when it was
added and last used, and removed by the user there or, with every other key of the account, by
an admin's reset (server/actions/account_admin.py). Each of these, and a refused registration,
is an entry in the audit chain (``webauthn_registered``, ``webauthn_removed``,
``webauthn_refused``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession
from webauthn import generate_registration_options, options_to_json, verify_registration_response
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from server.actions import webauthn_challenges as challenges
from server.actions.staff_sessions import StaffContext
from server.actions.webauthn_verify import Refused, checked
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.engine import Database
from server.db.models import WebAuthnCredential
from server.security.relying_party import RelyingParty, relying_party

REGISTERED = "webauthn_registered"
REMOVED = "webauthn_removed"
REFUSED = "webauthn_refused"
MAX_NAME_CHARS = 60
MAX_KEYS = 20
TRANSPORTS = {t.value for t in AuthenticatorTransport}


@dataclass(frozen=True)
class KeyView:
    """A key as its owner's list shows it."""

    id: int
    name: str
    created_at: str
    last_used_at: str | None


def party_of(services: Services) -> RelyingParty:
    party = relying_party(services.settings)
    if party is None:
        raise AppError(
            ErrorCode.WEBAUTHN_UNAVAILABLE,
            "Security keys need PUBLIC_URL set to the name the browsers open (not an address)",
        )
    return party


def check_key_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME_CHARS or any(not ch.isprintable() for ch in cleaned):
        raise AppError(
            ErrorCode.INVALID_KEY_NAME, f"Name the key: 1 to {MAX_NAME_CHARS} printable characters"
        )
    return cleaned


def user_handle(services: Services, user_id: int) -> bytes:
    """The account as a key knows it: stable (a key holds one passkey per account), and no name
    or number of ours in the clear."""
    return services.pseudonyms.of("webauthn-user", str(user_id))[:32].encode()


def descriptors(keys: list[WebAuthnCredential]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(key.credential_id),
            transports=[AuthenticatorTransport(t) for t in key.transports.split(",") if t],
        )
        for key in keys
    ]


async def keys_of(session: AsyncSession, user_id: int) -> list[WebAuthnCredential]:
    return list(
        (
            await session.exec(
                select(WebAuthnCredential)
                .where(col(WebAuthnCredential.user_id) == user_id)
                .order_by(col(WebAuthnCredential.id))
            )
        ).all()
    )


async def list_keys(db: Database, user_id: int) -> list[KeyView]:
    async with db.session() as session:
        keys = await keys_of(session, user_id)
    return [
        KeyView(
            id=key.id or 0,
            name=key.name,
            created_at=key.created_at.isoformat(),
            last_used_at=key.last_used_at.isoformat() if key.last_used_at else None,
        )
        for key in keys
    ]


async def registration_options(services: Services, staff: StaffContext) -> dict[str, Any]:
    """Options for ``navigator.credentials.create``, with a challenge kept for the answer. A
    passkey is preferred (a key that can hold one may later sign in alone)."""
    party = party_of(services)
    async with services.db.session() as session:
        existing = await keys_of(session, staff.user_id)
        if len(existing) >= MAX_KEYS:
            raise AppError(ErrorCode.CONFLICT, f"At most {MAX_KEYS} keys per account")
        issued = await challenges.issue(
            session,
            services.clock,
            services.settings,
            purpose=challenges.REGISTER,
            user_id=staff.user_id,
        )
        await session.commit()
    options = generate_registration_options(
        rp_id=party.id,
        rp_name=party.name,
        user_name=staff.username,
        user_id=user_handle(services, staff.user_id),
        challenge=issued.challenge,
        timeout=services.settings.WEBAUTHN_CHALLENGE_SECS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=descriptors(existing),
    )
    return {"challenge_id": issued.id, "publicKey": json.loads(options_to_json(options))}


def _transports(credential: dict[str, Any]) -> str:
    response = credential.get("response")
    sent = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(sent, list):
        return ""
    return ",".join(sorted({t for t in sent if isinstance(t, str) and t in TRANSPORTS}))


async def register_key(
    services: Services,
    staff: StaffContext,
    *,
    challenge_id: str,
    name: str,
    credential: dict[str, Any],
) -> KeyView:
    """Check the key's answer to our challenge and keep its public key under ``name``; a
    refused answer is entered in the chain (committed), then refused (``webauthn_refused``)."""
    party = party_of(services)
    key_name = check_key_name(name)
    refused: Refused | None = None
    async with services.audit.transaction() as session:
        taken = await challenges.take(session, services.clock, challenge_id, challenges.REGISTER)
        try:
            if taken is None or taken.user_id != staff.user_id:
                raise Refused("challenge", "no such challenge for this account, or used, or old")
            verified = checked(
                verify_registration_response,
                credential=credential,
                expected_challenge=taken.challenge,
                expected_rp_id=party.id,
                expected_origin=party.origin,
            )
            credential_id = bytes_to_base64url(verified.credential_id)
            clash = (
                await session.exec(
                    select(WebAuthnCredential.id).where(
                        col(WebAuthnCredential.credential_id) == credential_id
                    )
                )
            ).first()
            if clash is not None:
                raise Refused("known_key", "this key is registered already")
        except Refused as exc:
            refused = exc
            await services.audit.record(
                session,
                actor=staff.username,
                action=REFUSED,
                subject=f"user:{staff.username}",
                data={"stage": "register", "reason": exc.reason, "detail": exc.detail},
            )
        else:
            now = services.clock.now()
            key = WebAuthnCredential(
                user_id=staff.user_id,
                credential_id=credential_id,
                public_key=verified.credential_public_key,
                sign_count=verified.sign_count,
                transports=_transports(credential),
                name=key_name,
                created_at=now,
            )
            session.add(key)
            await session.flush()
            await services.audit.record(
                session,
                actor=staff.username,
                action=REGISTERED,
                subject=f"user:{staff.username}",
                data={"key_id": key.id, "name": key_name, "transports": key.transports},
            )
            view = KeyView(key.id or 0, key_name, now.isoformat(), None)
    if refused is not None:
        raise AppError(ErrorCode.WEBAUTHN_REFUSED, "The key's answer was refused") from refused
    return view


async def remove_key(services: Services, staff: StaffContext, key_id: int) -> None:
    """Remove one of the user's own keys: it opens nothing from now on."""
    async with services.audit.transaction() as session:
        key = await session.get(WebAuthnCredential, key_id)
        if key is None or key.user_id != staff.user_id:
            raise AppError(ErrorCode.KEY_NOT_FOUND, "No such key on your account")
        name = key.name
        await session.delete(key)
        await services.audit.record(
            session,
            actor=staff.username,
            action=REMOVED,
            subject=f"user:{staff.username}",
            data={"key_id": key_id, "name": name},
        )


async def drop_keys(session: AsyncSession, user_id: int) -> int:
    """Remove every key of the account (an admin's reset, in its transaction); how many."""
    keys = await keys_of(session, user_id)
    await session.exec(delete(WebAuthnCredential).where(col(WebAuthnCredential.user_id) == user_id))
    return len(keys)
