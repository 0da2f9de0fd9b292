"""Checking a sign-in: password, lockout after repeated failures, TOTP. Every outcome audited."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select

from config import Settings
from server.core.clock import Clock
from server.db.audit import AuditLog
from server.db.models import User
from server.security.passwords import verify_password
from server.security.totp import accepted_step

log = logging.getLogger("lifeline.auth")


class Outcome(enum.StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_TOTP = "bad_totp"
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    user: User | None = None
    locked_minutes: int = 0


async def authenticate(
    audit: AuditLog,
    clock: Clock,
    settings: Settings,
    *,
    username: str,
    password: str,
    totp: str,
    remote: str,
) -> LoginResult:
    """Decide a sign-in attempt and record it in the audit chain, in one transaction.

    The password is checked first, in a thread and outside the transaction: argon2 costs tens of
    milliseconds of CPU, and a flood of tries must neither stall the event loop (and the calls
    on it) nor hold the chain's write lock while it hashes.
    """
    name = username.strip().lower()[:64]
    async with audit.db.session() as session:
        found = (await session.exec(select(User).where(col(User.username) == name))).first()
    checked_hash = found.password_hash if found is not None else None
    password_matches = await asyncio.to_thread(verify_password, checked_hash, password)
    now = clock.now()
    async with audit.transaction() as session:
        user = (await session.exec(select(User).where(col(User.username) == name))).first()

        async def record(action: str, **data: object) -> None:
            await audit.record(
                session,
                actor=name or "-",
                action=action,
                subject=f"user:{name}",
                data={"remote": remote, **data},
            )

        if user is None:  # the same argon2 work was done as for a real user
            await record("login_failed", reason="unknown_user")
            log.info("login failed", extra={"user": name, "reason": "unknown_user"})
            return LoginResult(Outcome.BAD_CREDENTIALS)
        if user.locked_until is not None and user.locked_until > now:
            await record("login_refused", reason="locked")
            minutes = max(1, math.ceil((user.locked_until - now).total_seconds() / 60))
            return LoginResult(Outcome.LOCKED, locked_minutes=minutes)
        if user.disabled:
            await record("login_refused", reason="disabled")
            return LoginResult(Outcome.DISABLED)

        # A password changed between the check and now was not the one checked.
        password_ok = password_matches and user.password_hash == checked_hash
        step = None
        if password_ok and user.totp_confirmed and user.totp_secret:
            step = accepted_step(user.totp_secret, totp, now, user.totp_last_step)
        needs_totp = user.totp_confirmed and bool(user.totp_secret)
        if password_ok and (step is not None or not needs_totp):
            user.failed_logins, user.locked_until = 0, None
            if step is not None:
                user.totp_last_step = step
            session.add(user)
            await record("login")
            log.info("login", extra={"user": name})
            return LoginResult(Outcome.OK, user)

        reason = "bad_totp" if password_ok else "bad_password"
        user.failed_logins += 1
        await record("login_failed", reason=reason, failures=user.failed_logins)
        log.info("login failed", extra={"user": name, "reason": reason})
        if user.failed_logins >= settings.LOGIN_MAX_FAILURES:
            user.failed_logins = 0
            user.locked_until = now + timedelta(seconds=settings.LOGIN_LOCKOUT_SECS)
            await record("account_locked", seconds=settings.LOGIN_LOCKOUT_SECS)
            log.warning("account locked", extra={"user": name})
            session.add(user)
            return LoginResult(Outcome.LOCKED, locked_minutes=settings.LOGIN_LOCKOUT_SECS // 60)
        session.add(user)
        return LoginResult(Outcome.BAD_TOTP if password_ok else Outcome.BAD_CREDENTIALS)
