"""Staff accounts: ``check_*`` validates, ``do_*`` writes and audits in one transaction."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.staff_sessions import close_user_sockets, do_end_user_sessions
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import Role, User
from server.security.passwords import hash_password, one_time_password
from server.security.totp import new_secret

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class NewUser:
    user: User
    password: str | None  # the one-time password, when we made one


def check_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.fullmatch(name):
        raise AppError(
            ErrorCode.INVALID_USERNAME,
            "A username is 2-64 characters: lowercase letters, digits, '.', '_' or '-'",
        )
    return name


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AppError(
            ErrorCode.INVALID_ROLE,
            f"Unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}",
        ) from None


async def _active_admins(session: AsyncSession) -> int:
    result = await session.exec(
        select(func.count())
        .select_from(User)
        .where(col(User.role) == Role.ADMIN, col(User.disabled).is_(False))
    )
    return int(result.one())


async def do_create_user(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: str,
    username: str,
    role: str,
    password: str | None = None,
    with_totp_secret: bool = False,
) -> NewUser:
    """Create a staff account; without ``password`` a one-time one is made and returned."""
    created = await _create_user(
        audit,
        clock,
        actor=actor,
        username=username,
        role=role,
        password=password,
        with_totp_secret=with_totp_secret,
        unless_an_admin_exists=False,
    )
    assert created is not None
    return created


async def do_create_first_admin(audit: AuditLog, clock: Clock, *, username: str) -> NewUser | None:
    """The first admin, when there is no admin yet; None when there is one. Two nodes starting
    at once on an empty database make one: the check and the insert are one transaction under
    the audit chain's lock."""
    return await _create_user(
        audit,
        clock,
        actor="system",
        username=username,
        role=Role.ADMIN,
        password=None,
        with_totp_secret=False,
        unless_an_admin_exists=True,
    )


async def _create_user(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: str,
    username: str,
    role: str,
    password: str | None,
    with_totp_secret: bool,
    unless_an_admin_exists: bool,
) -> NewUser | None:
    name = check_username(username)
    checked_role = check_role(role)
    made = None if password else one_time_password()
    # argon2 takes tens of milliseconds of CPU: off the event loop, and before the transaction
    # (which holds the chain's lock) begins.
    password_hash = await asyncio.to_thread(hash_password, password or made or "")
    now = clock.now()
    async with audit.transaction() as session:
        if unless_an_admin_exists and await any_admin(session):
            return None
        exists = (await session.exec(select(User).where(col(User.username) == name))).first()
        if exists is not None:
            raise AppError(ErrorCode.USER_EXISTS, f"User {name!r} exists already")
        user = User(
            username=name,
            role=checked_role,
            password_hash=password_hash,
            must_change_password=made is not None,
            totp_secret=new_secret() if with_totp_secret else None,
            totp_confirmed=with_totp_secret,
            created_at=now,
            updated_at=now,
        )
        session.add(user)
        await session.flush()
        await audit.record(
            session,
            actor=actor,
            action="user_created",
            subject=f"user:{name}",
            data={"role": checked_role.value, "one_time_password": made is not None},
        )
    return NewUser(user, made)


async def do_set_role(
    audit: AuditLog, clock: Clock, *, actor: str, user_id: int, role: str
) -> User:
    new_role = check_role(role)
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        old = user.role
        if old == new_role:
            return user
        if old == Role.ADMIN and not user.disabled and await _active_admins(session) <= 1:
            raise AppError(ErrorCode.LAST_ADMIN, "The last active admin keeps the admin role")
        user.role = new_role
        user.updated_at = clock.now()
        session.add(user)
        await audit.record(
            session,
            actor=actor,
            action="user_role_changed",
            subject=f"user:{user.username}",
            data={"from": old, "to": new_role.value},
        )
    return user


async def do_set_disabled(
    audit: AuditLog, clock: Clock, *, actor: str, user_id: int, disabled: bool
) -> User:
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        if user.disabled == disabled:
            return user
        if disabled and user.role == Role.ADMIN and await _active_admins(session) <= 1:
            raise AppError(ErrorCode.LAST_ADMIN, "The last active admin cannot be disabled")
        if disabled and user.username == actor:
            raise AppError(ErrorCode.CANNOT_DISABLE_SELF, "You cannot disable your own account")
        user.disabled = disabled
        if not disabled:
            user.failed_logins, user.locked_until = 0, None
        user.updated_at = clock.now()
        session.add(user)
        await audit.record(
            session,
            actor=actor,
            action="user_disabled" if disabled else "user_enabled",
            subject=f"user:{user.username}",
        )
    return user


async def do_update_user(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: str,
    user_id: int,
    role: str | None,
    disabled: bool | None,
) -> User:
    """The admin API's change: a role, the disabled flag, or both (a bad role is refused
    before anything changes)."""
    if role is None and disabled is None:
        raise AppError(ErrorCode.EMPTY_UPDATE, "Nothing to change: send role and/or disabled")
    if role is not None:
        check_role(role)
    user = None
    if role is not None:
        user = await do_set_role(audit, clock, actor=actor, user_id=user_id, role=role)
    if disabled is not None:
        user = await do_set_disabled(audit, clock, actor=actor, user_id=user_id, disabled=disabled)
    assert user is not None
    return user


async def do_change_account(
    services: Services,
    *,
    actor: str,
    user_id: int,
    role: str | None = None,
    disabled: bool | None = None,
) -> User:
    """An admin's change to an account. A disabled account is signed out everywhere at once,
    its open consoles included. A role change keeps the sessions but closes the consoles: what
    a console receives was decided by its role when it connected (its queue rooms)."""
    async with services.db.session() as session:
        before = await session.get(User, user_id)
        was = (before.role, before.disabled) if before is not None else None
    user = await do_update_user(
        services.audit, services.clock, actor=actor, user_id=user_id, role=role, disabled=disabled
    )
    if was is not None and user.disabled and not was[1]:
        await do_end_user_sessions(services, user_id, reason="disabled")
    elif was is not None and user.role != was[0]:
        await close_user_sockets(services, user_id, reason="role_changed")
    return user


async def list_users(db: Database) -> list[User]:
    async with db.session() as session:
        return list((await session.exec(select(User).order_by(col(User.username)))).all())


async def any_admin(session: AsyncSession) -> bool:
    result = await session.exec(select(User.id).where(col(User.role) == Role.ADMIN).limit(1))
    return result.first() is not None
