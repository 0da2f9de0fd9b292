"""A staff member's own account: signing out, changing the password, enrolling TOTP.

Each change and its audit entry are one transaction; what a refusal means comes back as a
catalogue key (the page says it in the user's language).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from server.actions.staff_sessions import (
    StaffContext,
    do_end_session,
    do_end_user_sessions,
    do_set_stage,
)
from server.core.services import Services
from server.db.models import SessionStage, User
from server.security.passwords import hash_password, password_problem, verify_password
from server.security.totp import accepted_step, new_secret


async def do_log_out(services: Services, staff: StaffContext | None, token: str) -> None:
    if token:
        await do_end_session(services, token, reason="signed_out")
    if staff is not None:
        await services.audit.append(
            actor=staff.username, action="logout", subject=f"user:{staff.username}"
        )


@dataclass(frozen=True)
class PasswordChange:
    problem: str | None  # a catalogue key, or None when the password was changed
    next_stage: str | None = None  # where a forced change goes on


async def do_change_password(
    services: Services,
    staff: StaffContext,
    *,
    current: str,
    new: str,
    confirm: str,
    forced: bool,
) -> PasswordChange:
    """Change the password (the current one is asked unless the change is forced); the user's
    other sessions end; a forced change moves the session on to TOTP enrolment or to work."""
    audit, clock = services.audit, services.clock
    # The common-password check costs up to ~0.1 s of CPU: off the event loop too.
    problem = await asyncio.to_thread(password_problem, new, confirm, staff.username)
    # argon2 work off the event loop and before the transaction (which holds the chain's lock).
    async with services.db.session() as session:
        found = await session.get(User, staff.user_id)
        assert found is not None
        old_hash = found.password_hash
    if not forced and not await asyncio.to_thread(verify_password, old_hash, current):
        problem = "password.error.current"
    elif await asyncio.to_thread(verify_password, old_hash, new):
        problem = problem or "password.error.same"
    new_hash = await asyncio.to_thread(hash_password, new) if problem is None else ""
    async with audit.transaction() as session:
        user = await session.get(User, staff.user_id)
        assert user is not None
        if problem is None and user.password_hash != old_hash:
            problem = "password.error.current"  # changed meanwhile, elsewhere
        if problem is None:
            user.password_hash = new_hash
            user.must_change_password = False
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=staff.username,
                action="password_changed",
                subject=f"user:{staff.username}",
            )
        totp_confirmed = user.totp_confirmed
    if problem is not None:
        return PasswordChange(problem)
    await do_end_user_sessions(
        services, staff.user_id, reason="password_changed", keep=staff.session_id
    )
    if not forced:
        return PasswordChange(None)
    stage = (
        SessionStage.ENROL_TOTP
        if services.settings.REQUIRE_TOTP and not totp_confirmed
        else SessionStage.ACTIVE
    )
    await do_set_stage(services, staff.session_id, stage)
    return PasswordChange(None, stage)


async def pending_totp_secret(services: Services, user_id: int) -> tuple[str, str]:
    """The secret being enrolled and the username: made once and kept until confirmed, so a
    reload of the page shows the same one."""
    async with services.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        if not user.totp_secret or user.totp_confirmed:
            user.totp_secret = new_secret()
            user.totp_confirmed = False
            session.add(user)
            await session.commit()
        return user.totp_secret, user.username


async def do_confirm_totp(services: Services, staff: StaffContext, code: str) -> bool:
    """Confirm the enrolment with a code from the authenticator; the session becomes active."""
    audit, clock = services.audit, services.clock
    async with audit.transaction() as session:
        user = await session.get(User, staff.user_id)
        assert user is not None
        assert user.totp_secret
        step = accepted_step(user.totp_secret, code, clock.now(), None)
        if step is not None:
            user.totp_confirmed, user.totp_last_step = True, step
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=staff.username,
                action="totp_enrolled",
                subject=f"user:{staff.username}",
            )
    if step is None:
        return False
    await do_set_stage(services, staff.session_id, SessionStage.ACTIVE)
    return True
