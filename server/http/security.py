"""Internal security's own page (/security): its officers' accounts, which only it may add,
disable or re-enable, and the list of every change and refused attempt touching its role."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions.access import SECURITY_ROLES
from server.actions.access_changes import AccessChange, internal_security_access_changes
from server.actions.account_admin import waiting_accounts
from server.actions.users import Actor, NewUser, do_change_account, do_create_user, list_users
from server.core.errors import AppError
from server.db.models import Role
from server.http.admin import Row, page_error, public_user, user_id_of
from server.http.auth.access import require_page_staff, require_staff
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.routes import see_other
from server.http.bodies import read_form
from server.http.keys import PAGES_KEY, SERVICES_KEY
from server.http.openapi import documented, staff

routes = web.RouteTableDef()


class AccessChangeView(BaseModel):
    """One change (or refused attempt) touching the internal-security role."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    seq: int
    at: datetime
    actor: str
    action: str
    attempt: str
    username: str
    from_: str | None = Field(alias="from")
    to: str | None
    outcome: Literal["done", "refused"]
    code: str | None


class AccessChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    changes: list[AccessChangeView]


def public_change(change: AccessChange) -> dict[str, Any]:
    return {
        "seq": change.seq,
        "at": change.at.isoformat(),
        "actor": change.actor,
        "action": change.action,
        "attempt": change.attempt,
        "username": change.username,
        "from": change.before,
        "to": change.after,
        "outcome": change.outcome,
        "code": change.code,
    }


async def _render(
    request: web.Request,
    *,
    created: NewUser | None = None,
    error: AppError | None = None,
    status: int = 200,
    **sections: Any,
) -> web.Response:
    services = request.app[SERVICES_KEY]
    now = services.clock.now()
    waiting = await waiting_accounts(services.db, services.settings, now)
    officers = [
        Row(public_user(u, now, waiting))
        for u in await list_users(services.db, Role.INTERNAL_SECURITY)
    ]
    changes = await internal_security_access_changes(services.db)
    shown = None
    if created is not None:
        shown = Row({"username": created.user.username, "password": created.password})
    return request.app[PAGES_KEY].render(
        request,
        "security.html",
        http_status=status,
        officers=officers,
        changes=changes,
        created=shown,
        error=page_error(request, error) if error is not None else None,
        error_code=error.code.value if error is not None else "",
        **sections,
    )


async def render_security(
    request: web.Request, *, error: AppError | None = None, status: int = 200, **sections: Any
) -> web.Response:
    """The page, with what a section of its own shows this once (server/http/account_admin.py's
    one-time password after a reset, say)."""
    return await _render(request, error=error, status=status, **sections)


@routes.get("/security")
async def security_page(request: web.Request) -> web.StreamResponse:
    require_page_staff(request, SECURITY_ROLES)
    return await _render(request)


async def _security_form(request: web.Request) -> tuple[Actor, dict[str, str]]:
    staff = require_page_staff(request, SECURITY_ROLES)
    data = await read_form(request)
    form = {key: value for key, value in data.items() if isinstance(value, str)}
    check_csrf(request, form.get(CSRF_FIELD))
    return Actor.staff(staff), form


@routes.post("/security/officers")
async def add_officer(request: web.Request) -> web.StreamResponse:
    actor, form = await _security_form(request)
    services = request.app[SERVICES_KEY]
    try:
        created = await do_create_user(
            services.audit,
            services.clock,
            actor=actor,
            username=form.get("username", ""),
            role=Role.INTERNAL_SECURITY,
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    # Rendered, not redirected: the one-time password is shown this once and never stored.
    return await _render(request, created=created, status=201)


async def _toggle(request: web.Request, disabled: bool) -> web.StreamResponse:
    actor, _form = await _security_form(request)
    try:
        await do_change_account(
            request.app[SERVICES_KEY], actor=actor, user_id=user_id_of(request), disabled=disabled
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    return see_other("/security")


@routes.post(r"/security/officers/{user_id}/disable")
async def disable_officer(request: web.Request) -> web.StreamResponse:
    return await _toggle(request, True)


@routes.post(r"/security/officers/{user_id}/enable")
async def enable_officer(request: web.Request) -> web.StreamResponse:
    return await _toggle(request, False)


@routes.get("/api/security/access-changes")
@documented(replies={200: AccessChanges}, access=staff(SECURITY_ROLES))
async def api_access_changes(request: web.Request) -> web.StreamResponse:
    require_staff(request, SECURITY_ROLES)
    changes = await internal_security_access_changes(request.app[SERVICES_KEY].db)
    return web.json_response({"changes": [public_change(c) for c in changes]})
