"""Who may open which route: the few functions every route calls (the rules themselves are in
``server.actions.access``). Roles are read fresh per request."""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from server.actions.access import ADMIN_ROLES, CONSOLE_ROLES, WALL_ROLES
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.db.models import Role, SessionStage
from server.http.auth.csrf import check_csrf
from server.http.auth.sessions import SESSION_EXPIRED_KEY
from server.http.keys import STAFF_KEY

__all__ = [
    "ADMIN_ROLES",
    "CONSOLE_ROLES",
    "WALL_ROLES",
    "require_page_staff",
    "require_staff",
    "require_staff_change",
]

# Where each role lands after signing in.
HOME_BY_ROLE = {
    Role.OPERATOR: "/console",
    Role.SUPERVISOR: "/wall",
    Role.INTERNAL_SECURITY: "/console",
    Role.ADMIN: "/admin",
}
_STAGE_PAGES = {
    SessionStage.CHANGE_PASSWORD: "/account/password",
    SessionStage.ENROL_TOTP: "/account/totp",
    SessionStage.VERIFY_TOTP: "/login/totp",
}


def home_for(staff: StaffContext) -> str:
    if not staff.active:
        return _STAGE_PAGES[SessionStage(staff.stage)]
    return HOME_BY_ROLE.get(Role(staff.role), "/")


def can_use(staff: StaffContext | None, roles: frozenset[Role]) -> bool:
    return staff is not None and staff.active and staff.role in roles


def require_staff(request: web.Request, roles: frozenset[Role]) -> StaffContext:
    """For the API: a 401 without a usable session, a 403 for the wrong role."""
    staff = request.get(STAFF_KEY)
    if staff is None:
        if request.get(SESSION_EXPIRED_KEY):
            raise AppError(ErrorCode.SESSION_EXPIRED, "Session expired: sign in again")
        raise AppError(ErrorCode.UNAUTHORIZED, "Sign in first")
    if not staff.active:
        raise AppError(ErrorCode.SIGN_IN_INCOMPLETE, "Finish signing in first")
    if staff.role not in roles:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Your role may not do this")
    return staff


def require_staff_change(request: web.Request, roles: frozenset[Role]) -> StaffContext:
    """For the API's writes: a staff member of ``roles`` whose request carries the session's
    CSRF token (header ``X-CSRF-Token``)."""
    staff = require_staff(request, roles)
    check_csrf(request, None)
    return staff


def require_page_staff(request: web.Request, roles: frozenset[Role]) -> StaffContext:
    """For pages: send strangers to the login page (and back here afterwards)."""
    staff = request.get(STAFF_KEY)
    if staff is None:
        expired = "&expired=1" if request.get(SESSION_EXPIRED_KEY) else ""
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}{expired}")
    if not staff.active:
        raise web.HTTPSeeOther(home_for(staff))
    if staff.role not in roles:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Your role may not open this page")
    return staff


def require_stage(request: web.Request, stage: SessionStage) -> StaffContext:
    staff = request.get(STAFF_KEY)
    if staff is None:
        raise web.HTTPSeeOther("/login")
    if staff.stage != stage:
        raise web.HTTPSeeOther(home_for(staff))
    return staff
