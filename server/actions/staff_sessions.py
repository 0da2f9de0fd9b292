"""Server-side staff sessions: the cookie carries a random token, the database its hash.

Every request and every console event reads the session together with its user, so a logout, a
disabled account or a role change takes effect at once, on every node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, delete, select

from server.core.events import SessionEndReason
from server.core.services import Services
from server.db.models import SessionStage, StaffSession, User
from server.security.tokens import new_token, token_hash

log = logging.getLogger("lifeline.auth")

# Writing last_seen_at on every request would make every page view a write; a minute of
# slack on a 15-minute idle limit is harmless (under a short limit, a quarter of it).
TOUCH_EVERY_SECS = 60
# The cookie that carries the session token, to the pages and to the console's socket.
SESSION_COOKIE = "lifeline_session"
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class StaffContext:
    """Who is signed in, read fresh from the database."""

    session_id: int
    user_id: int
    username: str
    role: str
    stage: str
    csrf_token: str
    language: str

    @property
    def active(self) -> bool:
        return self.stage == SessionStage.ACTIVE


@dataclass(frozen=True)
class OpenedSession:
    token: str
    stage: str


def first_stage(services: Services, user: User) -> str:
    """The first step of signing in this user still has to pass."""
    if user.must_change_password:
        return SessionStage.CHANGE_PASSWORD
    if services.settings.REQUIRE_TOTP and not user.totp_confirmed:
        return SessionStage.ENROL_TOTP
    return SessionStage.ACTIVE


async def do_open_session(
    services: Services, user: User, *, remote: str, stage: str | None = None
) -> OpenedSession:
    """Open a session for ``user`` at the first stage they still have to pass (or at
    ``stage``: single sign-on decides it by what the provider vouched for)."""
    now = services.clock.now()
    stage = stage or first_stage(services, user)
    token = new_token()
    assert user.id is not None
    async with services.db.session() as session:
        session.add(
            StaffSession(
                token_hash=token_hash(token),
                user_id=user.id,
                stage=stage,
                csrf_token=new_token(),
                created_at=now,
                last_seen_at=now,
                remote=remote[:64],
            )
        )
        await session.commit()
    return OpenedSession(token, stage)


async def do_set_stage(services: Services, session_id: int, stage: str) -> None:
    async with services.db.session() as session:
        row = await session.get(StaffSession, session_id)
        if row is not None:
            row.stage = stage
            await session.commit()


async def do_end_session(services: Services, token: str, *, reason: SessionEndReason) -> None:
    """End one session (signing out): its row, and its open console sockets on every node."""
    async with services.db.session() as session:
        ids = list(
            (
                await session.exec(
                    select(StaffSession.id).where(col(StaffSession.token_hash) == token_hash(token))
                )
            ).all()
        )
        await session.exec(
            delete(StaffSession).where(col(StaffSession.token_hash) == token_hash(token))
        )
        await session.commit()
    await services.notifier.end_staff_sessions([i for i in ids if i is not None], reason)


async def do_end_user_sessions(
    services: Services, user_id: int, *, reason: SessionEndReason, keep: int | None = None
) -> None:
    """Sign a user out everywhere (but ``keep``), sockets included: after a password change,
    a disable or a role change."""
    async with services.db.session() as session:
        chosen = select(StaffSession.id).where(col(StaffSession.user_id) == user_id)
        statement = delete(StaffSession).where(col(StaffSession.user_id) == user_id)
        if keep is not None:
            chosen = chosen.where(col(StaffSession.id) != keep)
            statement = statement.where(col(StaffSession.id) != keep)
        ids = [i for i in (await session.exec(chosen)).all() if i is not None]
        await session.exec(statement)
        await session.commit()
    await services.notifier.end_staff_sessions(ids, reason)


async def close_user_sockets(services: Services, user_id: int, *, reason: SessionEndReason) -> None:
    """Close a user's open consoles on every node but keep their sessions: after a role
    change the page reloads and connects again, seeing what the new role may see."""
    async with services.db.session() as session:
        ids = (
            await session.exec(select(StaffSession.id).where(col(StaffSession.user_id) == user_id))
        ).all()
    await services.notifier.end_staff_sessions([i for i in ids if i is not None], reason)


async def resolve_session(
    services: Services, token: str, *, active: bool = True
) -> tuple[StaffContext | None, bool]:
    """The signed-in staff member behind a session token, and whether it just expired.

    Used by every HTTP request and every Socket.IO event of the console. ``active`` says a
    person (or a console on shift) is behind the look-up, so the session's idle time starts
    again; the socket's periodic re-check of an off-shift console passes False, or the idle
    lock would never close a screen left open.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None, False
    settings = services.settings
    now = services.clock.now()
    async with services.db.session() as session:
        found = (
            await session.exec(
                select(StaffSession, User)
                .join(User, col(User.id) == col(StaffSession.user_id))
                .where(col(StaffSession.token_hash) == token_hash(token))
            )
        ).first()
        if found is None:
            return None, False
        row, user = found
        idle = now - row.last_seen_at
        too_old = now - row.created_at > timedelta(seconds=settings.SESSION_MAX_AGE_SECS)
        if user.disabled or too_old or idle > timedelta(seconds=settings.SESSION_IDLE_SECS):
            await session.delete(row)
            await session.commit()
            log.info("session ended", extra={"user": user.username, "idle_secs": idle.seconds})
            return None, not user.disabled
        touch_after = min(TOUCH_EVERY_SECS, settings.SESSION_IDLE_SECS / 4)
        if active and idle > timedelta(seconds=touch_after):
            row.last_seen_at = now
            await session.commit()
        assert row.id is not None
        assert user.id is not None
        staff = StaffContext(
            session_id=row.id,
            user_id=user.id,
            username=user.username,
            role=user.role,
            stage=row.stage,
            csrf_token=row.csrf_token,
            language=user.language,
        )
        return staff, False
