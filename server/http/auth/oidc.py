"""Single sign-on pages: start a sign-in at an OpenID Connect provider, its callback, and the
TOTP code asked after it when the provider showed no second factor (the rules are in
``server.actions.oidc_login``)."""

from __future__ import annotations

from aiohttp import web

from server.actions.oidc_login import do_begin, do_complete, do_second_factor, provider_of
from server.actions.webauthn_keys import keys_of
from server.core.errors import AppError, ErrorCode
from server.db.models import Role, SessionStage
from server.http.auth.access import HOME_BY_ROLE, home_for, require_stage
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.routes import read_fields, render_login, safe_next, translate
from server.http.auth.sessions import create_session
from server.http.client_address import client_address
from server.http.errors import wants_json
from server.http.keys import PAGES_KEY, SERVICES_KEY, STAFF_KEY
from server.http.origin import site_base
from server.security.relying_party import relying_party
from server.security.tokens import new_token

routes = web.RouteTableDef()

# Binds a sign-in to the browser that started it. SameSite=Lax: the provider's redirect back is
# a cross-site navigation, on which a Strict cookie would not be sent.
OIDC_COOKIE = "lifeline_oidc"
OIDC_COOKIE_PATH = "/login/oidc/"
_STAGE_PAGES = {SessionStage.VERIFY_TOTP: "/login/totp", SessionStage.ENROL_TOTP: "/account/totp"}


def _redirect_uri(request: web.Request, provider_id: str) -> str:
    return f"{site_base(request)}/login/oidc/{provider_id}/callback"


def _refused_page(request: web.Request, refused: AppError, next_path: str) -> web.Response:
    """The login page with the answer a local sign-in gets for the same trouble."""
    if refused.code is ErrorCode.RATE_LIMITED:
        seconds = int(refused.data["retry_after"])
        page = render_login(
            request,
            status=429,
            error=translate(request, "login.error.throttled", seconds=seconds),
            next_path=next_path,
        )
        page.headers["Retry-After"] = str(seconds)
        return page
    return render_login(
        request,
        status=502,
        error=translate(request, "login.error.oidc_unavailable"),
        next_path=next_path,
    )


@routes.get("/login/oidc/{provider}")
async def oidc_start(request: web.Request) -> web.StreamResponse:
    """A link, not a form: the page's CSP sends forms to this site only (form-action 'self'),
    and a form's redirect to the provider would be blocked. Nothing to forge: the sign-in it
    starts is bound to this browser and ends as whoever signs in at the provider."""
    services = request.app[SERVICES_KEY]
    provider = provider_of(services, request.match_info["provider"])
    staff = request.get(STAFF_KEY)
    if staff is not None:
        raise web.HTTPSeeOther(home_for(staff))
    next_path = safe_next(request.query.get("next", ""))
    browser = request.cookies.get(OIDC_COOKIE, "")
    if not 20 <= len(browser) <= 64:
        browser = new_token()
    try:
        url = await do_begin(
            services,
            provider.id,
            browser=browser,
            redirect_uri=_redirect_uri(request, provider.id),
            next_path=next_path,
            remote=client_address(request),
        )
    except AppError as refused:
        if wants_json(request) or refused.code not in (
            ErrorCode.RATE_LIMITED,
            ErrorCode.OIDC_PROVIDER_UNAVAILABLE,
        ):
            raise
        return _refused_page(request, refused, next_path)
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(
        OIDC_COOKIE,
        browser,
        httponly=True,
        samesite="Lax",
        secure=services.settings.cookies_secure,
        path=OIDC_COOKIE_PATH,
        max_age=services.settings.OIDC_LOGIN_SECS,
    )
    return response


@routes.get("/login/oidc/{provider}/callback")
async def oidc_callback(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    provider = provider_of(services, request.match_info["provider"])
    try:
        outcome = await do_complete(
            services,
            provider.id,
            browser=request.cookies.get(OIDC_COOKIE, ""),
            state=request.query.get("state", ""),
            code=request.query.get("code", ""),
            error=request.query.get("error", ""),
            redirect_uri=_redirect_uri(request, provider.id),
            remote=client_address(request),
        )
    except AppError as refused:
        if wants_json(request) or refused.code is not ErrorCode.RATE_LIMITED:
            raise
        return _refused_page(request, refused, "")
    if outcome.user is None:
        # One answer for every failure, as at a local sign-in: the audit chain has why.
        return render_login(
            request, status=401, error=translate(request, "login.error.failed"), next_path=""
        )
    stage = SessionStage(outcome.stage)
    if stage == SessionStage.ACTIVE:
        where = outcome.next_path or HOME_BY_ROLE.get(Role(outcome.user.role), "/")
    else:
        where = _STAGE_PAGES[stage]
    # A page that moves on by itself rather than a redirect: the navigation from here is this
    # site's own, so the browser sends the new session's SameSite=Strict cookie with it (a
    # redirect would still belong to the provider's cross-site one).
    response = request.app[PAGES_KEY].render(request, "oidc_continue.html", where=where)
    await create_session(request, response, outcome.user, stage)
    response.del_cookie(OIDC_COOKIE, path=OIDC_COOKIE_PATH)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _totp_page(
    request: web.Request, *, error: str | None = None, status: int = 200
) -> web.Response:
    """The second step; a key button beside the code where the account has keys."""
    staff = request[STAFF_KEY]
    services = request.app[SERVICES_KEY]
    keys = False
    if staff is not None and relying_party(services.settings) is not None:
        async with services.db.session() as session:
            keys = bool(await keys_of(session, staff.user_id))
    return request.app[PAGES_KEY].render(
        request, "login_totp.html", http_status=status, error=error, keys_available=keys
    )


@routes.get("/login/totp")
async def second_factor_page(request: web.Request) -> web.StreamResponse:
    require_stage(request, SessionStage.VERIFY_TOTP)
    return await _totp_page(request)


@routes.post("/login/totp")
async def second_factor_submit(request: web.Request) -> web.StreamResponse:
    staff = require_stage(request, SessionStage.VERIFY_TOTP)
    form = await read_fields(request)
    check_csrf(request, form.get(CSRF_FIELD))
    try:
        accepted = await do_second_factor(
            request.app[SERVICES_KEY], staff, form.get("totp", ""), remote=client_address(request)
        )
    except AppError as refused:
        if wants_json(request) or refused.code is not ErrorCode.RATE_LIMITED:
            raise
        seconds = int(refused.data["retry_after"])
        page = await _totp_page(
            request, error=translate(request, "login.error.throttled", seconds=seconds), status=429
        )
        page.headers["Retry-After"] = str(seconds)
        return page
    if not accepted:
        return await _totp_page(request, error=translate(request, "totp.error.code"), status=401)
    raise web.HTTPSeeOther(HOME_BY_ROLE.get(Role(staff.role), "/"))
