"""Staff accounts: ``check_*`` validates, ``do_*`` writes and audits in one transaction.

Every change is authorised by ``access.check_account_change`` against the actor's role as the
change's own transaction reads it; a refused change is still written to the audit chain (the
internal-security unit reviews those touching its accounts: actions/access_changes.py).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from config.settings import LANGUAGES
from server.actions.access import COMMAND_LINE, check_account_change
from server.actions.staff_sessions import StaffContext, close_user_sockets, do_end_user_sessions
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import Role, User
from server.security.passwords import check_new_password, hash_password, one_time_password
from server.security.totp import new_secret

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class Actor:
    """Who asks for an account change: a signed-in staff member, whose role the change's
    transaction reads afresh, or the command line on the server (``user_id`` None)."""

    name: str
    user_id: int | None

    @classmethod
    def command_line(cls, name: str = "cli") -> Actor:
        return cls(name, None)

    @classmethod
    def staff(cls, staff: StaffContext) -> Actor:
        return cls(staff.username, staff.user_id)


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


async def current_authority(session: AsyncSession, actor: Actor) -> str:
    """The actor's role now ("" for an account gone or disabled since it signed in)."""
    if actor.user_id is None:
        return COMMAND_LINE
    user = await session.get(User, actor.user_id)
    return "" if user is None or user.disabled else str(user.role)


async def _refusal(
    session: AsyncSession,
    audit: AuditLog,
    actor: Actor,
    *,
    attempt: str,
    username: str,
    before: str | None,
    after: str,
) -> AppError | None:
    """None when ``actor`` may make this change; else its refusal, recorded in ``session``
    (the caller commits the transaction, then raises it)."""
    try:
        check_account_change(await current_authority(session, actor), before=before, after=after)
    except AppError as refused:
        await audit.record(
            session,
            actor=actor.name,
            action="account_change_refused",
            subject=f"user:{username}",
            data={"attempt": attempt, "from": before, "to": after, "code": refused.code.value},
        )
        return refused
    return None


async def do_create_user(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: Actor,
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
        actor=Actor.command_line("system"),
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
    actor: Actor,
    username: str,
    role: str,
    password: str | None,
    with_totp_secret: bool,
    unless_an_admin_exists: bool,
) -> NewUser | None:
    name = check_username(username)
    checked_role = check_role(role)
    made = None if password else one_time_password()
    if password:  # a one-time password we made is random; one given must pass the policy
        await asyncio.to_thread(check_new_password, password, name)
    # argon2 takes tens of milliseconds of CPU: off the event loop, and before the transaction
    # (which holds the chain's lock) begins.
    password_hash = await asyncio.to_thread(hash_password, password or made or "")
    now = clock.now()
    async with audit.transaction() as session:
        if unless_an_admin_exists and await any_admin(session):
            return None
        refused = await _refusal(
            session,
            audit,
            actor,
            attempt="create",
            username=name,
            before=None,
            after=checked_role,
        )
        if refused is not None:
            user = None
        else:
            user = await _insert_user(
                session,
                audit,
                actor=actor,
                name=name,
                role=checked_role,
                password_hash=password_hash,
                one_time=made is not None,
                with_totp_secret=with_totp_secret,
                now=now,
            )
    if user is None:
        assert refused is not None
        raise refused
    return NewUser(user, made)


async def _insert_user(
    session: AsyncSession,
    audit: AuditLog,
    *,
    actor: Actor,
    name: str,
    role: Role,
    password_hash: str,
    one_time: bool,
    with_totp_secret: bool,
    now: datetime,
) -> User:
    exists = (await session.exec(select(User).where(col(User.username) == name))).first()
    if exists is not None:
        raise AppError(ErrorCode.USER_EXISTS, f"User {name!r} exists already")
    user = User(
        username=name,
        role=role,
        password_hash=password_hash,
        must_change_password=one_time,
        totp_secret=new_secret() if with_totp_secret else None,
        totp_confirmed=with_totp_secret,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    await session.flush()
    await audit.record(
        session,
        actor=actor.name,
        action="user_created",
        subject=f"user:{name}",
        data={"role": role.value, "one_time_password": one_time},
    )
    return user


async def do_set_role(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, role: str
) -> User:
    new_role = check_role(role)
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        old = user.role
        if old == new_role:
            return user
        refused = await _refusal(
            session,
            audit,
            actor,
            attempt="role",
            username=user.username,
            before=old,
            after=new_role,
        )
        if refused is None:
            if old == Role.ADMIN and not user.disabled and await _active_admins(session) <= 1:
                raise AppError(ErrorCode.LAST_ADMIN, "The last active admin keeps the admin role")
            user.role = new_role
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=actor.name,
                action="user_role_changed",
                subject=f"user:{user.username}",
                data={"from": old, "to": new_role.value},
            )
    if refused is not None:
        raise refused
    return user


async def do_set_disabled(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, disabled: bool
) -> User:
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        if user.disabled == disabled:
            return user
        refused = await _refusal(
            session,
            audit,
            actor,
            attempt="disable" if disabled else "enable",
            username=user.username,
            before=user.role,
            after=user.role,
        )
        if refused is None:
            if disabled and user.role == Role.ADMIN and await _active_admins(session) <= 1:
                raise AppError(ErrorCode.LAST_ADMIN, "The last active admin cannot be disabled")
            if disabled and user.id == actor.user_id:
                raise AppError(ErrorCode.CANNOT_DISABLE_SELF, "You cannot disable your own account")
            user.disabled = disabled
            if not disabled:
                user.failed_logins, user.locked_until = 0, None
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=actor.name,
                action="user_disabled" if disabled else "user_enabled",
                subject=f"user:{user.username}",
                data={"role": user.role},
            )
    if refused is not None:
        raise refused
    return user


MAX_DISPLAY_NAME_CHARS = 80
MAX_BADGE_CHARS = 32


def check_identity(display_name: str, badge: str) -> tuple[str | None, str | None]:
    """What a caller is shown of an operator: a name of printable characters, a badge number of
    letters, digits, spaces and ``-/.``; empty is none (the username is shown)."""
    name = " ".join(display_name.split())
    number = badge.strip()
    if len(name) > MAX_DISPLAY_NAME_CHARS or not name.isprintable():
        raise AppError(
            ErrorCode.INVALID_IDENTITY,
            f"A display name is at most {MAX_DISPLAY_NAME_CHARS} letters",
        )
    if len(number) > MAX_BADGE_CHARS or any(not (c.isalnum() or c in " -/.") for c in number):
        raise AppError(
            ErrorCode.INVALID_IDENTITY,
            f"A badge number is at most {MAX_BADGE_CHARS} letters, digits, spaces, - / .",
        )
    return name or None, number or None


async def do_set_identity(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: Actor,
    user_id: int,
    display_name: str,
    badge: str,
) -> User:
    """Set the display name and badge a caller sees of this account's calls (an admin's
    change; internal-security accounts are the unit's own, as for roles)."""
    name, number = check_identity(display_name, badge)
    return await _set_fields(
        audit,
        clock,
        actor=actor,
        user_id=user_id,
        attempt="identity",
        action="user_identity_changed",
        fields={"display_name": name, "badge": number},
        data=lambda _user: {"display_name": name, "badge": number},
    )


async def _set_fields(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: Actor,
    user_id: int,
    attempt: str,
    action: str,
    fields: dict[str, Any],
    data: Callable[[User], dict[str, Any]],
) -> User:
    """An admin's change of what an account shows or speaks (not its role or access): nothing
    when it is as asked already; refused, and the attempt entered, where the actor may not
    change the account (internal-security accounts are the unit's own, as for roles);
    ``data(user)``, read before the change, is what the chain's entry says."""
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise AppError(ErrorCode.USER_NOT_FOUND, "No such user")
        if all(getattr(user, name) == value for name, value in fields.items()):
            return user
        refused = await _refusal(
            session,
            audit,
            actor,
            attempt=attempt,
            username=user.username,
            before=user.role,
            after=user.role,
        )
        if refused is None:
            entry = data(user)
            for name, value in fields.items():
                setattr(user, name, value)
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=actor.name,
                action=action,
                subject=f"user:{user.username}",
                data=entry,
            )
    if refused is not None:
        raise refused
    return user


def check_skills(languages: Sequence[str]) -> str:
    """The languages an operator speaks: each one of the four (en, ru, kk, pl), stored in that
    order, comma-separated; none is allowed (they are rung only when nobody speaks a caller's
    language)."""
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown:
        raise AppError(
            ErrorCode.INVALID_SKILLS, f"A skill is one of the languages {', '.join(LANGUAGES)}"
        )
    return ",".join(code for code in LANGUAGES if code in languages)


async def do_set_skills(
    audit: AuditLog, clock: Clock, *, actor: Actor, user_id: int, languages: Sequence[str]
) -> User:
    """Set the languages an operator speaks (an admin's change, audited as the identity is;
    internal-security accounts are the unit's own)."""
    skills = check_skills(languages)
    return await _set_fields(
        audit,
        clock,
        actor=actor,
        user_id=user_id,
        attempt="skills",
        action="user_skills_changed",
        fields={"skills": skills},
        data=lambda user: {"before": skills_of(user.skills), "after": skills_of(skills)},
    )


def skills_of(stored: str) -> list[str]:
    """A user's ``skills`` column as the list of languages it holds."""
    return [code for code in stored.split(",") if code]


async def do_update_user(
    audit: AuditLog,
    clock: Clock,
    *,
    actor: Actor,
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
    actor: Actor,
    user_id: int,
    role: str | None = None,
    disabled: bool | None = None,
) -> User:
    """A change to an account (an admin's, or internal security's to its own). A disabled
    account is signed out everywhere at once, its open consoles included. A role change keeps
    the sessions but closes the consoles: what a console receives was decided by its role when
    it connected (its queue rooms)."""
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


async def list_users(db: Database, role: str | None = None) -> list[User]:
    """Every account (or those of ``role``), by name."""
    query = select(User).order_by(col(User.username))
    if role is not None:
        query = query.where(col(User.role) == role)
    async with db.session() as session:
        return list((await session.exec(query)).all())


async def any_admin(session: AsyncSession) -> bool:
    result = await session.exec(select(User.id).where(col(User.role) == Role.ADMIN).limit(1))
    return result.first() is not None
