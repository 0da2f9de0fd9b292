"""Account recovery on /admin, on /security (the unit's own officers) and in the users API: reset
(a new one-time password, TOTP again), lift the wait after failed sign-ins, end every session;
each with a reason (server/actions/account_admin.py has the rules; docs/staff.md the procedure).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions.access import ADMIN_ROLES, SECURITY_ROLES
from server.actions.account_admin import (
    Action,
    Administered,
    do_administer,
    end_account_sessions,
    reset_account,
    unlock_account,
)
from server.actions.evidence import MAX_REASON_CHARS
from server.actions.users import Actor
from server.core.errors import AppError
from server.http.admin import Row, UserView, public_user, render_admin, user_id_of
from server.http.auth.access import require_page_staff, require_staff_change
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.bodies import read_form, read_json
from server.http.keys import SERVICES_KEY
from server.http.openapi import documented, staff_change
from server.http.security import render_security

routes = web.RouteTableDef()

# Each action by the name its route and the page's notice use.
ACTIONS: dict[str, Action] = {
    "reset": reset_account,
    "unlock": unlock_account,
    "end-sessions": end_account_sessions,
}


def _notice(name: str, done: Administered) -> Row:
    """What the page says once: whose account, what was done, the one-time password of a
    reset (never stored but as its hash), how many sessions ended."""
    return Row(
        {
            "action": name,
            "username": done.user.username,
            "password": done.password,
            "sessions": len(done.ended_sessions),
        }
    )


Render = Callable[..., Awaitable[web.Response]]


async def _page_action(
    request: web.Request, name: str, *, unit: bool = False
) -> web.StreamResponse:
    """A recovery form of /admin, or of /security for the unit's own officers (``unit``)."""
    staff = require_page_staff(request, SECURITY_ROLES if unit else ADMIN_ROLES)
    render: Render = render_security if unit else render_admin
    data = await read_form(request)
    form = {key: value for key, value in data.items() if isinstance(value, str)}
    check_csrf(request, form.get(CSRF_FIELD))
    try:
        done = await do_administer(
            request.app[SERVICES_KEY],
            ACTIONS[name],
            actor=Actor.staff(staff),
            user_id=user_id_of(request),
            reason=form.get("reason", ""),
        )
    except AppError as exc:
        return await render(request, error=exc, status=exc.status)
    # Rendered, not redirected: a reset's one-time password is shown this once.
    return await render(request, recovery=_notice(name, done))


@routes.post(r"/admin/users/{user_id}/reset")
async def admin_reset(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "reset")


@routes.post(r"/admin/users/{user_id}/unlock")
async def admin_unlock(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "unlock")


@routes.post(r"/admin/users/{user_id}/end-sessions")
async def admin_end_sessions(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "end-sessions")


@routes.post(r"/security/officers/{user_id}/reset")
async def security_reset(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "reset", unit=True)


@routes.post(r"/security/officers/{user_id}/unlock")
async def security_unlock(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "unlock", unit=True)


@routes.post(r"/security/officers/{user_id}/end-sessions")
async def security_end_sessions(request: web.Request) -> web.StreamResponse:
    return await _page_action(request, "end-sessions", unit=True)


# --- JSON API, for scripts: the same rules, CSRF in the X-CSRF-Token header ---


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Checked (trimmed, not empty, at most MAX_REASON_CHARS) by the action; this caps parsing.
    reason: str = Field(max_length=4 * MAX_REASON_CHARS)


class Recovered(BaseModel):
    """The account after the action, how many sessions ended, and a reset's one-time password
    (shown this once, never stored but as its hash)."""

    model_config = ConfigDict(extra="forbid")
    user: UserView
    sessions_ended: int
    one_time_password: str | None = None


async def _api_action(request: web.Request, name: str) -> web.StreamResponse:
    """Admins' (internal security recovers its officers on /security)."""
    staff = require_staff_change(request, ADMIN_ROLES)
    body: ReasonBody = await read_json(request, ReasonBody)
    services = request.app[SERVICES_KEY]
    done = await do_administer(
        services,
        ACTIONS[name],
        actor=Actor.staff(staff),
        user_id=user_id_of(request),
        reason=body.reason,
    )
    answer: dict[str, Any] = {
        "user": public_user(done.user, services.clock.now()),
        "sessions_ended": len(done.ended_sessions),
    }
    if done.password is not None:
        answer["one_time_password"] = done.password
    return web.json_response(answer)


@routes.post(r"/api/users/{user_id}/reset")
@documented(body=ReasonBody, replies={200: Recovered}, access=staff_change(ADMIN_ROLES))
async def api_reset(request: web.Request) -> web.StreamResponse:
    """A new one-time password, TOTP to enrol again, every session ended; with a reason."""
    return await _api_action(request, "reset")


@routes.post(r"/api/users/{user_id}/unlock")
@documented(body=ReasonBody, replies={200: Recovered}, access=staff_change(ADMIN_ROLES))
async def api_unlock(request: web.Request) -> web.StreamResponse:
    """Lift every address's wait after failed sign-ins; with a reason."""
    return await _api_action(request, "unlock")


@routes.post(r"/api/users/{user_id}/end-sessions")
@documented(body=ReasonBody, replies={200: Recovered}, access=staff_change(ADMIN_ROLES))
async def api_end_sessions(request: web.Request) -> web.StreamResponse:
    """Sign the account out everywhere, its open consoles at once; with a reason."""
    return await _api_action(request, "end-sessions")
