"""Server-side staff sessions: the cookie carries a random token, the database its hash.

Every request reads the session together with its user, so a logout, a disabled account or a
role change takes effect on the very next request, on every node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web
from sqlmodel import col, delete, select

from server.db.models import SessionStage, StaffSession, User
from server.http.auth.csrf import set_pending_cookie
from server.http.keys import CLOCK_KEY, DB_KEY, SETTINGS_KEY, STAFF_KEY, Handler
from server.security.tokens import new_token, token_hash

log = logging.getLogger("lifeline.auth")

SESSION_COOKIE = "lifeline_session"
# Writing last_seen_at on every request would make every page view a write; a minute of
# slack on a 15-minute idle limit is harmless.
TOUCH_EVERY_SECS = 60

SESSION_EXPIRED_KEY = web.RequestKey("session_expired", bool)


@dataclass(frozen=True)
class StaffContext:
    """Who is signed in on this request, read fresh from the database."""

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


async def create_session(request: web.Request, response: web.StreamResponse, user: User) -> str:
    """Open a session for ``user`` at the first stage they still have to pass."""
    settings = request.app[SETTINGS_KEY]
    now = request.app[CLOCK_KEY].now()
    if user.must_change_password:
        stage = SessionStage.CHANGE_PASSWORD
    elif settings.REQUIRE_TOTP and not user.totp_confirmed:
        stage = SessionStage.ENROL_TOTP
    else:
        stage = SessionStage.ACTIVE
    token = new_token()
    assert user.id is not None
    async with request.app[DB_KEY].session() as session:
        session.add(
            StaffSession(
                token_hash=token_hash(token),
                user_id=user.id,
                stage=stage,
                csrf_token=new_token(),
                created_at=now,
                last_seen_at=now,
                remote=(request.remote or "")[:64],
            )
        )
        await session.commit()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=settings.cookies_secure,
        path="/",
    )
    return stage


async def set_stage(request: web.Request, session_id: int, stage: str) -> None:
    async with request.app[DB_KEY].session() as session:
        row = await session.get(StaffSession, session_id)
        if row is not None:
            row.stage = stage
            await session.commit()


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        async with request.app[DB_KEY].session() as session:
            await session.exec(
                delete(StaffSession).where(col(StaffSession.token_hash) == token_hash(token))
            )
            await session.commit()
    response.del_cookie(SESSION_COOKIE, path="/")


async def end_user_sessions(request: web.Request, user_id: int, keep: int | None = None) -> None:
    """Sign a user out everywhere (but ``keep``): after a password change or a disable."""
    async with request.app[DB_KEY].session() as session:
        statement = delete(StaffSession).where(col(StaffSession.user_id) == user_id)
        if keep is not None:
            statement = statement.where(col(StaffSession.id) != keep)
        await session.exec(statement)
        await session.commit()


async def resolve_session(app: web.Application, token: str) -> tuple[StaffContext | None, bool]:
    """The signed-in staff member behind a session token, and whether it just expired.

    Used by every HTTP request and every Socket.IO event of the console.
    """
    if not token or len(token) > 128:
        return None, False
    settings = app[SETTINGS_KEY]
    now = app[CLOCK_KEY].now()
    async with app[DB_KEY].session() as session:
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
        if idle > timedelta(seconds=TOUCH_EVERY_SECS):
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


async def _load(request: web.Request) -> StaffContext | None:
    staff, expired = await resolve_session(request.app, request.cookies.get(SESSION_COOKIE, ""))
    if expired:
        request[SESSION_EXPIRED_KEY] = True
    return staff


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Static files and health probes never need a staff member.
    if request.path.startswith(("/static/", "/healthz", "/readyz", "/metrics", "/i18n/")):
        request[STAFF_KEY] = None
        return await handler(request)
    request[STAFF_KEY] = await _load(request)
    response = await handler(request)
    set_pending_cookie(request, response)
    if request.get(SESSION_EXPIRED_KEY) and request.cookies.get(SESSION_COOKIE):
        response.del_cookie(SESSION_COOKIE, path="/")
    return response
