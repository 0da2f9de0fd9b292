"""Getting a colleague back to work without touching the database: reset an account (a new
one-time password, TOTP enrolled again), lift the wait after failed sign-ins, end every session.

Each needs a reason, and each is one transaction with its audit entry (who, whom, what, why).
The same rule as for every account change decides who may (``access.check_account_change``):
internal-security accounts are the unit's own, and a refused attempt is entered in the chain
for the unit to review (actions/access_changes.py). Nobody does these to their own account: a
session someone else got hold of must not become the account itself (a reset drops the TOTP
that guards it); another admin or the command line recovers an admin's (docs/staff.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from config import Settings
from server.actions.access import check_account_change
from server.actions.evidence import check_reason
from server.actions.login import wait_after
from server.actions.users import Actor, check_username, current_authority
from server.actions.webauthn_keys import drop_keys
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import AuditEntry, LoginFailure, StaffSession, User
from server.security.passwords import hash_password, one_time_password

# The entries these write; the subject of each is "user:<name>", ``data`` has the account's
# role and the reason.
RESET = "user_reset"
UNLOCKED = "user_unlocked"
SESSIONS_ENDED = "user_sessions_ended"
# What each is called as an attempt (a refused one is ``account_change_refused`` with it).
ATTEMPTS = {RESET: "reset", UNLOCKED: "unlock", SESSIONS_ENDED: "end_sessions"}


@dataclass(frozen=True)
class Administered:
    """What an administrator's action did: the account as it is now, its sessions that ended
    (their sockets are closed next, on every node), and for a reset the one-time password,
    shown once and stored only as its hash."""

    user: User
    ended_sessions: list[int]
    password: str | None = None


Change = Callable[[AsyncSession, User], Awaitable[tuple[list[int], dict[str, Any]]]]


async def _administer(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: Actor,
    user_id: int,
    reason: str,
    action: str,
    change: Change,
) -> tuple[User, list[int]]:
    """Check the reason, the actor's authority and that the account is not their own; then
    ``change`` it and enter ``action`` in the chain, in one transaction. A refusal by role is
    entered too (committed, then raised)."""
    why = check_reason(reason)
    refused: AppError | None = None
    ended: list[int] = []
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        try:
            check_account_change(
                await current_authority(session, actor), before=user.role, after=user.role
            )
        except AppError as exc:
            refused = exc
            await audit.record(
                session,
                actor=actor.name,
                action="account_change_refused",
                subject=f"user:{user.username}",
                data={
                    "attempt": ATTEMPTS[action],
                    "from": user.role,
                    "to": user.role,
                    "code": exc.code.value,
                    "reason": why,
                },
            )
        else:
            if user.id == actor.user_id:
                raise AppError(
                    ErrorCode.OWN_ACCOUNT,
                    "Not on your own account: a colleague, or the command line, does this",
                )
            ended, data = await change(session, user)
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=actor.name,
                action=action,
                subject=f"user:{user.username}",
                data={"role": user.role, "reason": why, **data},
            )
    if refused is not None:
        raise refused
    return user, ended


async def _end_sessions(session: AsyncSession, user_id: int) -> list[int]:
    """Delete every session of the account (in the caller's transaction); their ids."""
    ids = [
        i
        for i in (
            await session.exec(select(StaffSession.id).where(col(StaffSession.user_id) == user_id))
        ).all()
        if i is not None
    ]
    await session.exec(delete(StaffSession).where(col(StaffSession.user_id) == user_id))
    return ids


async def _lift_waits(session: AsyncSession, user: User) -> int:
    """Forget the account's failed sign-ins, from every address; how many addresses had some."""
    assert user.id is not None
    addresses = (
        await session.exec(
            select(func.count())
            .select_from(LoginFailure)
            .where(col(LoginFailure.user_id) == user.id)
        )
    ).one()
    await session.exec(delete(LoginFailure).where(col(LoginFailure.user_id) == user.id))
    user.failed_logins, user.locked_until = 0, None
    return int(addresses)


async def reset_account(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, reason: str
) -> Administered:
    """A new one-time password, the TOTP secret and every hardware key dropped, failed sign-ins
    forgotten, every session ended: at the next sign-in the password must be changed and TOTP
    enrolled again (the old authenticator's codes, and a key that was lost with it, open
    nothing any more)."""
    password = one_time_password()
    # argon2 off the event loop, and before the transaction (which holds the chain's lock).
    password_hash = await asyncio.to_thread(hash_password, password)

    async def change(session: AsyncSession, user: User) -> tuple[list[int], dict[str, Any]]:
        assert user.id is not None
        had_totp = bool(user.totp_secret) and user.totp_confirmed
        user.password_hash = password_hash
        user.must_change_password = True
        user.totp_secret, user.totp_confirmed, user.totp_last_step = None, False, None
        addresses = await _lift_waits(session, user)
        ended = await _end_sessions(session, user.id)
        keys = await drop_keys(session, user.id)
        data = {
            "totp_dropped": had_totp,
            "keys_removed": keys,
            "sessions_ended": len(ended),
            "waits_lifted": addresses,
        }
        return ended, data

    user, ended = await _administer(
        audit, clock, actor=actor, user_id=user_id, reason=reason, action=RESET, change=change
    )
    return Administered(user, ended, password)


async def unlock_account(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, reason: str
) -> Administered:
    """Lift the wait after failed sign-ins (server/actions/login.py), from every address."""

    async def change(session: AsyncSession, user: User) -> tuple[list[int], dict[str, Any]]:
        return [], {"waits_lifted": await _lift_waits(session, user)}

    user, ended = await _administer(
        audit, clock, actor=actor, user_id=user_id, reason=reason, action=UNLOCKED, change=change
    )
    return Administered(user, ended)


async def end_account_sessions(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, reason: str
) -> Administered:
    """Sign the account out everywhere: the next request of any of its browsers finds no
    session."""

    async def change(session: AsyncSession, user: User) -> tuple[list[int], dict[str, Any]]:
        assert user.id is not None
        ended = await _end_sessions(session, user.id)
        return ended, {"sessions_ended": len(ended)}

    user, ended = await _administer(
        audit,
        clock,
        actor=actor,
        user_id=user_id,
        reason=reason,
        action=SESSIONS_ENDED,
        change=change,
    )
    return Administered(user, ended)


Action = Callable[..., Awaitable[Administered]]


async def do_administer(
    services: Services, action: Action, *, actor: Actor, user_id: int, reason: str
) -> Administered:
    """One of the three for a signed-in admin or officer: the change, then the account's open
    consoles told and closed on every node (through the notifier, as a disable does). From the
    command line the sessions' rows alone go: a console notices at its next event or re-check."""
    done: Administered = await action(
        services.audit, services.clock, actor=actor, user_id=user_id, reason=reason
    )
    if done.ended_sessions:
        await services.notifier.end_staff_sessions(done.ended_sessions, "revoked")
    return done


async def user_by_name(db: Database, username: str) -> User:
    """The account of ``username`` (the command line names accounts, the pages number them)."""
    name = check_username(username)
    async with db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == name))).first()
    if user is None:
        raise AppError(ErrorCode.USER_NOT_FOUND, f"No user {name!r}")
    return user


async def waiting_accounts(db: Database, settings: Settings, now: datetime) -> set[int]:
    """The accounts some address must still wait on before its next sign-in try: what an
    admin sees as "locked" and may lift."""
    async with db.session() as session:
        rows = (
            await session.exec(
                select(LoginFailure).where(
                    col(LoginFailure.failures) >= settings.LOGIN_MAX_FAILURES,
                    # No wait is longer than LOGIN_LOCKOUT_SECS.
                    col(LoginFailure.last_failure_at)
                    > now - timedelta(seconds=settings.LOGIN_LOCKOUT_SECS),
                )
            )
        ).all()
    return {
        row.user_id
        for row in rows
        if now < row.last_failure_at + timedelta(seconds=wait_after(row.failures, settings))
    }


async def last_sign_ins(db: Database, usernames: Sequence[str]) -> dict[str, datetime]:
    """Each account's last successful sign-in, as the audit chain has it (``login``, or
    ``oidc_login``: a single sign-on the provider vouched for)."""
    subjects = [f"user:{name}" for name in usernames]
    if not subjects:
        return {}
    async with db.session() as session:
        rows = (
            await session.exec(
                select(AuditEntry.subject, func.max(AuditEntry.at))
                .where(
                    col(AuditEntry.action).in_(("login", "oidc_login")),
                    col(AuditEntry.subject).in_(subjects),
                )
                .group_by(col(AuditEntry.subject))
            )
        ).all()
    return {subject.removeprefix("user:"): at for subject, at in rows if at is not None}
