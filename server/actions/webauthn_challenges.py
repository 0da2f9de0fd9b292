"""WebAuthn challenges, kept on the server: each is good for one answer, until it expires.

A browser is handed a random challenge with an id; its key signs the challenge, and the answer
names the id. Taking a challenge deletes it in the answer's own transaction, so a second answer
with the same id (a replay, or a race of two) finds nothing. Expiry is the clock's, so a test
moves a frozen clock past it instead of waiting.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from config import Settings
from server.core.clock import Clock
from server.db.models import WebAuthnChallenge

REGISTER = "register"
SECOND_FACTOR = "second_factor"
PASSKEY = "passkey"
CHALLENGE_BYTES = 32


@dataclass(frozen=True)
class Issued:
    id: str
    challenge: bytes


@dataclass(frozen=True)
class Taken:
    """A challenge taken for its one use: what it was issued for."""

    challenge: bytes
    user_id: int | None
    username: str


async def issue(
    session: AsyncSession,
    clock: Clock,
    settings: Settings,
    *,
    purpose: str,
    user_id: int | None = None,
    username: str = "",
) -> Issued:
    """A new challenge for ``purpose`` (in the caller's transaction); expired ones are swept."""
    now = clock.now()
    await session.exec(delete(WebAuthnChallenge).where(col(WebAuthnChallenge.expires_at) <= now))
    issued = Issued(secrets.token_urlsafe(24), secrets.token_bytes(CHALLENGE_BYTES))
    session.add(
        WebAuthnChallenge(
            id=issued.id,
            purpose=purpose,
            challenge=issued.challenge,
            user_id=user_id,
            username=username,
            expires_at=now + timedelta(seconds=settings.WEBAUTHN_CHALLENGE_SECS),
        )
    )
    return issued


async def take(
    session: AsyncSession, clock: Clock, challenge_id: str, purpose: str
) -> Taken | None:
    """The challenge ``challenge_id`` of ``purpose``, removed; None when there is none (never
    issued, used already, another purpose's) or it has expired."""
    if not challenge_id or len(challenge_id) > 64:
        return None
    found = (
        await session.exec(
            select(WebAuthnChallenge).where(
                col(WebAuthnChallenge.id) == challenge_id,
                col(WebAuthnChallenge.purpose) == purpose,
            )
        )
    ).first()
    if found is None:
        return None
    taken = Taken(found.challenge, found.user_id, found.username)
    expired = found.expires_at <= clock.now()
    gone = await session.exec(
        delete(WebAuthnChallenge).where(col(WebAuthnChallenge.id) == challenge_id)
    )
    if gone.rowcount != 1:  # another answer took it first
        return None
    return None if expired else taken
