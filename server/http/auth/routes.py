"""Sign-in pages: login, logout, the forced password change and TOTP enrolment."""

from __future__ import annotations

from aiohttp import web

from server.actions.login import Outcome, authenticate
from server.db.models import Role, SessionStage, User
from server.http.auth.access import HOME_BY_ROLE, home_for, require_stage
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.sessions import create_session, end_session, end_user_sessions, set_stage
from server.http.i18n import Catalogs
from server.http.keys import CATALOGS_KEY, LANG_KEY, PAGES_KEY, SERVICES_KEY, STAFF_KEY
from server.security.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password,
    password_problem,
    verify_password,
)
from server.security.totp import accepted_step, new_secret, provisioning_uri, qr_svg

routes = web.RouteTableDef()


def see_other(location: str) -> web.Response:
    """A redirect that can carry cookies (returning an HTTPException is deprecated)."""
    return web.Response(status=303, headers={"Location": location})


def _t(request: web.Request, key: str, **values: object) -> str:
    catalogs: Catalogs = request.app[CATALOGS_KEY]
    return catalogs.gettext(request.get(LANG_KEY, "en"), key, **values)


def safe_next(value: str) -> str:
    """Only a local path: never an open redirect to another site."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:512]
    return ""


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _login_page(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = "",
) -> web.Response:
    notice = _t(request, "login.notice.expired") if request.query.get("expired") else None
    return request.app[PAGES_KEY].render(
        request,
        "login.html",
        http_status=status,
        error=error,
        notice=notice,
        next=next_path or safe_next(request.query.get("next", "")),
        username=username,
    )


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is not None:
        raise web.HTTPSeeOther(home_for(staff))
    return _login_page(request)


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    check_csrf(request, form.get(CSRF_FIELD))
    username = form.get("username", "")
    next_path = safe_next(form.get("next", ""))
    result = await authenticate(
        request.app[SERVICES_KEY].audit,
        request.app[SERVICES_KEY].clock,
        request.app[SERVICES_KEY].settings,
        username=username,
        password=form.get("password", ""),
        totp=form.get("totp", ""),
        remote=request.remote or "",
    )
    if result.outcome is not Outcome.OK or result.user is None:
        message = {
            Outcome.BAD_CREDENTIALS: _t(request, "login.error.credentials"),
            Outcome.BAD_TOTP: _t(request, "login.error.totp"),
            Outcome.LOCKED: _t(request, "login.error.locked", minutes=result.locked_minutes),
            Outcome.DISABLED: _t(request, "login.error.disabled"),
        }.get(result.outcome, _t(request, "login.error.credentials"))
        status = 423 if result.outcome is Outcome.LOCKED else 401
        if result.outcome is Outcome.DISABLED:
            status = 403
        return _login_page(
            request, status=status, error=message, username=username[:64], next_path=next_path
        )
    response = see_other("/")
    stage = await create_session(request, response, result.user)
    if stage != SessionStage.ACTIVE:
        response.headers["Location"] = (
            "/account/password" if stage == SessionStage.CHANGE_PASSWORD else "/account/totp"
        )
    else:
        response.headers["Location"] = next_path or HOME_BY_ROLE.get(Role(result.user.role), "/")
    return response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    form = await _form(request)
    check_csrf(request, form.get(CSRF_FIELD))
    staff = request.get(STAFF_KEY)
    response = see_other("/login")
    await end_session(request, response)
    if staff is not None:
        await request.app[SERVICES_KEY].audit.append(
            actor=staff.username, action="logout", subject=f"user:{staff.username}"
        )
    return response


@routes.get("/account/password")
async def password_page(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is None:
        raise web.HTTPSeeOther("/login?next=/account/password")
    forced = staff.stage == SessionStage.CHANGE_PASSWORD
    if not forced and not staff.active:
        raise web.HTTPSeeOther(home_for(staff))
    return request.app[PAGES_KEY].render(
        request, "change_password.html", error=None, forced=forced, min_length=MIN_PASSWORD_LENGTH
    )


@routes.post("/account/password")
async def password_submit(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is None:
        raise web.HTTPSeeOther("/login")
    forced = staff.stage == SessionStage.CHANGE_PASSWORD
    if not forced and not staff.active:
        raise web.HTTPSeeOther(home_for(staff))
    form = await _form(request)
    check_csrf(request, form.get(CSRF_FIELD))
    audit, clock = request.app[SERVICES_KEY].audit, request.app[SERVICES_KEY].clock
    new = form.get("new_password", "")
    problem = password_problem(new, form.get("new_password_confirm", ""), staff.username)
    async with audit.transaction() as session:
        user = await session.get(User, staff.user_id)
        assert user is not None
        if not forced and not verify_password(user.password_hash, form.get("current_password", "")):
            problem = "password.error.current"
        elif verify_password(user.password_hash, new):
            problem = problem or "password.error.same"
        if problem is None:
            user.password_hash = hash_password(new)
            user.must_change_password = False
            user.updated_at = clock.now()
            session.add(user)
            await audit.record(
                session,
                actor=staff.username,
                action="password_changed",
                subject=f"user:{staff.username}",
            )
    if problem is not None:
        return request.app[PAGES_KEY].render(
            request,
            "change_password.html",
            http_status=400,
            error=_t(request, problem, min=MIN_PASSWORD_LENGTH),
            forced=forced,
            min_length=MIN_PASSWORD_LENGTH,
        )
    await end_user_sessions(request, staff.user_id, keep=staff.session_id)
    if forced:
        settings = request.app[SERVICES_KEY].settings
        stage = (
            SessionStage.ENROL_TOTP
            if settings.REQUIRE_TOTP and not await _has_totp(request, staff.user_id)
            else SessionStage.ACTIVE
        )
        await set_stage(request, staff.session_id, stage)
        if stage == SessionStage.ENROL_TOTP:
            raise web.HTTPSeeOther("/account/totp")
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(Role(staff.role), "/"))


async def _has_totp(request: web.Request, user_id: int) -> bool:
    async with request.app[SERVICES_KEY].audit.db.session() as session:
        user = await session.get(User, user_id)
        return bool(user and user.totp_confirmed)


async def _pending_secret(request: web.Request, user_id: int) -> tuple[str, str]:
    """The secret being enrolled: made once and kept until confirmed, so a reload shows it again."""
    async with request.app[SERVICES_KEY].audit.db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        if not user.totp_secret or user.totp_confirmed:
            user.totp_secret = new_secret()
            user.totp_confirmed = False
            session.add(user)
            await session.commit()
        return user.totp_secret, user.username


def _totp_page(
    request: web.Request, secret: str, username: str, *, error: str | None = None, status: int = 200
) -> web.Response:
    uri = provisioning_uri(secret, username)
    return request.app[PAGES_KEY].render(
        request,
        "totp_enrol.html",
        http_status=status,
        qr_svg=qr_svg(uri),
        secret=secret,
        otpauth_uri=uri,
        error=error,
    )


@routes.get("/account/totp")
async def totp_page(request: web.Request) -> web.StreamResponse:
    staff = require_stage(request, SessionStage.ENROL_TOTP)
    secret, username = await _pending_secret(request, staff.user_id)
    return _totp_page(request, secret, username)


@routes.post("/account/totp")
async def totp_submit(request: web.Request) -> web.StreamResponse:
    staff = require_stage(request, SessionStage.ENROL_TOTP)
    form = await _form(request)
    check_csrf(request, form.get(CSRF_FIELD))
    audit, clock = request.app[SERVICES_KEY].audit, request.app[SERVICES_KEY].clock
    async with audit.transaction() as session:
        user = await session.get(User, staff.user_id)
        assert user is not None
        assert user.totp_secret
        step = accepted_step(user.totp_secret, form.get("totp", ""), clock.now(), None)
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
        secret, username = user.totp_secret, user.username
    if step is None:
        return _totp_page(
            request, secret, username, error=_t(request, "totp.error.code"), status=400
        )
    await set_stage(request, staff.session_id, SessionStage.ACTIVE)
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(Role(staff.role), "/"))
