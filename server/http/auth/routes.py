"""Sign-in pages: login, logout, the forced password change and TOTP enrolment."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from server.actions import account
from server.actions.directory_login import directory_judge
from server.actions.login import Outcome, authenticate
from server.actions.staff_sessions import SESSION_COOKIE
from server.core.errors import AppError, ErrorCode
from server.db.models import Role, SessionStage
from server.http.auth.access import HOME_BY_ROLE, home_for, require_stage
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.sessions import create_session
from server.http.bodies import read_form
from server.http.client_address import client_address
from server.http.errors import wants_json
from server.http.i18n import Catalogs
from server.http.keys import (
    CATALOGS_KEY,
    LANG_KEY,
    OUTAGES_KEY,
    PAGES_KEY,
    SERVICES_KEY,
    STAFF_KEY,
)
from server.security.passwords import (
    MIN_PASSWORD_LENGTH,
)
from server.security.relying_party import key_sign_in_offers
from server.security.totp import provisioning_uri, qr_svg

routes = web.RouteTableDef()


def see_other(location: str) -> web.Response:
    """A redirect that can carry cookies (returning an HTTPException is deprecated)."""
    return web.Response(status=303, headers={"Location": location})


def translate(request: web.Request, key: str, **values: object) -> str:
    catalogs: Catalogs = request.app[CATALOGS_KEY]
    return catalogs.gettext(request.get(LANG_KEY, "en"), key, **values)


MAX_NEXT_CHARS = 512


def safe_next(value: str) -> str:
    """Only a path on this site: never an open redirect to another one.

    Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so "/", a tab,
    then "/evil.example" is "//evil.example" to them: any control character, backslash or a
    second leading slash refuses the value, as does anything with a scheme or a host.
    """
    if (
        not value.startswith("/")
        or len(value) > MAX_NEXT_CHARS
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
        or "\\" in value
    ):
        return ""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or value.startswith("//"):
        return ""
    return value


async def read_fields(request: web.Request) -> dict[str, str]:
    data = await read_form(request)
    return {key: value for key, value in data.items() if isinstance(value, str)}


def render_login(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    username: str = "",
    next_path: str = "",
) -> web.Response:
    notice = translate(request, "login.notice.expired") if request.query.get("expired") else None
    return request.app[PAGES_KEY].render(
        request,
        "login.html",
        http_status=status,
        error=error,
        notice=notice,
        next=next_path or safe_next(request.query.get("next", "")),
        username=username,
        oidc_providers=request.app[SERVICES_KEY].settings.OIDC_PROVIDERS,
        **key_sign_in_offers(request.app[SERVICES_KEY].settings),
    )


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is not None:
        raise web.HTTPSeeOther(home_for(staff))
    return render_login(request)


@routes.post("/login")
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await read_fields(request)
    check_csrf(request, form.get(CSRF_FIELD))
    username = form.get("username", "")
    next_path = safe_next(form.get("next", ""))
    services = request.app[SERVICES_KEY]
    try:
        result = await authenticate(
            services.audit,
            services.clock,
            services.settings,
            services.limits,
            username=username,
            password=form.get("password", ""),
            totp=form.get("totp", ""),
            remote=client_address(request),
            # Directory sign-in, when LDAP_URL is set (server/actions/directory_login.py).
            judge=directory_judge(services.settings, request.app[OUTAGES_KEY]),
        )
    except AppError as refused:
        if refused.code is not ErrorCode.RATE_LIMITED or wants_json(request):
            raise
        seconds = int(refused.data["retry_after"])
        page = render_login(
            request,
            status=429,
            error=translate(request, "login.error.throttled", seconds=seconds),
            username=username[:64],
            next_path=next_path,
        )
        page.headers["Retry-After"] = str(seconds)
        return page
    if result.outcome is not Outcome.OK or result.user is None:
        # One answer for every failure (server/actions/login.py): the audit chain has why.
        return render_login(
            request,
            status=401,
            error=translate(request, "login.error.failed"),
            username=username[:64],
            next_path=next_path,
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
    form = await read_fields(request)
    check_csrf(request, form.get(CSRF_FIELD))
    response = see_other("/login")
    await account.do_log_out(
        request.app[SERVICES_KEY], request.get(STAFF_KEY), request.cookies.get(SESSION_COOKIE, "")
    )
    response.del_cookie(SESSION_COOKIE, path="/")
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
    form = await read_fields(request)
    check_csrf(request, form.get(CSRF_FIELD))
    change = await account.do_change_password(
        request.app[SERVICES_KEY],
        staff,
        current=form.get("current_password", ""),
        new=form.get("new_password", ""),
        confirm=form.get("new_password_confirm", ""),
        forced=forced,
    )
    if change.problem is not None:
        return request.app[PAGES_KEY].render(
            request,
            "change_password.html",
            http_status=400,
            error=translate(request, change.problem, min=MIN_PASSWORD_LENGTH),
            forced=forced,
            min_length=MIN_PASSWORD_LENGTH,
        )
    if change.next_stage == SessionStage.ENROL_TOTP:
        raise web.HTTPSeeOther("/account/totp")
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(Role(staff.role), "/"))


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
    secret, username = await account.pending_totp_secret(request.app[SERVICES_KEY], staff.user_id)
    return _totp_page(request, secret, username)


@routes.post("/account/totp")
async def totp_submit(request: web.Request) -> web.StreamResponse:
    staff = require_stage(request, SessionStage.ENROL_TOTP)
    form = await read_fields(request)
    check_csrf(request, form.get(CSRF_FIELD))
    services = request.app[SERVICES_KEY]
    if not await account.do_confirm_totp(services, staff, form.get("totp", "")):
        secret, username = await account.pending_totp_secret(services, staff.user_id)
        return _totp_page(
            request, secret, username, error=translate(request, "totp.error.code"), status=400
        )
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(Role(staff.role), "/"))
