"""The admin page and the users API: add, disable and re-role staff accounts (internal-security
accounts excepted: those are the unit's own, on /security)."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from server.actions.account_admin import waiting_accounts
from server.actions.users import (
    Actor,
    NewUser,
    do_change_account,
    do_create_user,
    do_set_identity,
    do_set_skills,
    list_users,
    skills_of,
)
from server.actions.wall import channels_of_role, wall_changed
from server.core.errors import AppError, ErrorCode
from server.db.models import Role, User
from server.http.auth.access import (
    ADMIN_ROLES,
    require_page_staff,
    require_staff,
    require_staff_change,
)
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.routes import see_other
from server.http.bodies import read_form, read_json
from server.http.evidence import KEY_PATH
from server.http.keys import CATALOGS_KEY, LANG_KEY, PAGES_KEY, SERVICES_KEY
from server.http.openapi import documented, staff, staff_change
from server.http.path_ids import ID

routes = web.RouteTableDef()


def public_user(user: User, now: datetime, waiting: Collection[int] = ()) -> dict[str, Any]:
    """What the admin page and API show of an account (never hashes or secrets); ``locked``:
    an address must wait before its next sign-in try (``waiting``, actions/account_admin.py)."""
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "disabled": user.disabled,
        "totp_confirmed": user.totp_confirmed,
        "must_change_password": user.must_change_password,
        "locked": user.id in waiting or bool(user.locked_until and user.locked_until > now),
        "display_name": user.display_name,
        "badge": user.badge,
        "skills": skills_of(user.skills),
    }


class Row:
    """A dict's values as attributes, for a template."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


# Refusals a staff page says in the reader's language rather than in the API's English.
PAGE_MESSAGES = {
    ErrorCode.INTERNAL_SECURITY_ONLY: "admin.error.internal_security_only",
    ErrorCode.OWN_ACCOUNT: "admin.error.own_account",
    ErrorCode.REASON_REQUIRED: "admin.error.reason_required",
    ErrorCode.REASON_TOO_LONG: "admin.error.reason_too_long",
}
# The roles an admin may give: internal security gives its own (docs/operations.md).
ADMIN_GIVES = [r.value for r in Role if r != Role.INTERNAL_SECURITY]


def page_error(request: web.Request, exc: AppError) -> str:
    key = PAGE_MESSAGES.get(exc.code)
    if key is None:
        return exc.message
    return request.app[CATALOGS_KEY].gettext(request.get(LANG_KEY, "en"), key)


async def _render(
    request: web.Request,
    *,
    created: NewUser | None = None,
    error: AppError | None = None,
    status: int = 200,
    **sections: Any,
) -> web.Response:
    """The page; ``sections``: what a section of its own shows once (its own template
    partial: account recovery's one-time password, say)."""
    services = request.app[SERVICES_KEY]
    now = services.clock.now()
    waiting = await waiting_accounts(services.db, services.settings, now)
    users = [Row(public_user(u, now, waiting)) for u in await list_users(services.db)]
    shown = None
    if created is not None:
        shown = Row({"username": created.user.username, "password": created.password})
    return request.app[PAGES_KEY].render(
        request,
        "admin.html",
        http_status=status,
        users=users,
        roles=ADMIN_GIVES,
        created=shown,
        error=page_error(request, error) if error is not None else None,
        error_code=error.code.value if error is not None else "",
        evidence_key=request.app[SERVICES_KEY].evidence_key,
        evidence_key_url=KEY_PATH,
        **sections,
    )


@routes.get("/admin")
async def admin_page(request: web.Request) -> web.StreamResponse:
    require_page_staff(request, ADMIN_ROLES)
    return await _render(request)


async def _admin_form(request: web.Request) -> tuple[Actor, dict[str, str]]:
    staff = require_page_staff(request, ADMIN_ROLES)
    data = await read_form(request)
    form = {key: value for key, value in data.items() if isinstance(value, str)}
    check_csrf(request, form.get(CSRF_FIELD))
    return Actor.staff(staff), form


@routes.post("/admin/users")
async def admin_add_user(request: web.Request) -> web.StreamResponse:
    actor, form = await _admin_form(request)
    try:
        created = await do_create_user(
            request.app[SERVICES_KEY].audit,
            request.app[SERVICES_KEY].clock,
            actor=actor,
            username=form.get("username", ""),
            role=form.get("role", ""),
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    # Rendered, not redirected: the one-time password is shown this once and never stored.
    return await _render(request, created=created, status=201)


def user_id_of(request: web.Request) -> int:
    """The path's user id: ASCII digits that fit the database's integer, else a 400."""
    raw = request.match_info["user_id"]
    if not re.fullmatch(ID, raw):
        raise AppError(ErrorCode.INVALID_USER_ID, "A user id is a number")
    return int(raw)


@routes.post(r"/admin/users/{user_id}/role")
async def admin_set_role(request: web.Request) -> web.StreamResponse:
    actor, form = await _admin_form(request)
    try:
        await do_change_account(
            request.app[SERVICES_KEY],
            actor=actor,
            user_id=user_id_of(request),
            role=form.get("role", ""),
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    return see_other("/admin")


@routes.post(r"/admin/users/{user_id}/identity")
async def admin_set_identity(request: web.Request) -> web.StreamResponse:
    """The display name and badge callers are shown of this operator's calls."""
    actor, form = await _admin_form(request)
    services = request.app[SERVICES_KEY]
    try:
        await do_set_identity(
            services.audit,
            services.clock,
            actor=actor,
            user_id=user_id_of(request),
            display_name=form.get("display_name", ""),
            badge=form.get("badge", ""),
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    return see_other("/admin")


@routes.post(r"/admin/users/{user_id}/skills")
async def admin_set_skills(request: web.Request) -> web.StreamResponse:
    """The languages an operator speaks: a waiting caller's language rings one who does."""
    actor, _form = await _admin_form(request)
    services = request.app[SERVICES_KEY]
    data = await read_form(request)  # read already: the checkboxes, each a value of "skills"
    try:
        user = await do_set_skills(
            services.audit,
            services.clock,
            actor=actor,
            user_id=user_id_of(request),
            languages=[v for v in data.getall("skills", []) if isinstance(v, str)],
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    for channel in channels_of_role(user.role):
        wall_changed(services, channel)  # the walls show each operator's languages
    return see_other("/admin")


async def _toggle(request: web.Request, disabled: bool) -> web.StreamResponse:
    actor, _form = await _admin_form(request)
    try:
        await do_change_account(
            request.app[SERVICES_KEY], actor=actor, user_id=user_id_of(request), disabled=disabled
        )
    except AppError as exc:
        return await _render(request, error=exc, status=exc.status)
    return see_other("/admin")


@routes.post(r"/admin/users/{user_id}/disable")
async def admin_disable(request: web.Request) -> web.StreamResponse:
    return await _toggle(request, True)


@routes.post(r"/admin/users/{user_id}/enable")
async def admin_enable(request: web.Request) -> web.StreamResponse:
    return await _toggle(request, False)


# --- JSON API, for scripts: the same rules, CSRF in the X-CSRF-Token header ---


class CreateUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    username: str
    role: str


class UpdateUserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: str | None = None
    disabled: bool | None = None


class UserView(BaseModel):
    """What the admin page and API show of an account (``public_user``)."""

    model_config = ConfigDict(extra="forbid")
    id: int
    username: str
    role: Role
    disabled: bool
    totp_confirmed: bool
    must_change_password: bool
    locked: bool
    display_name: str | None
    badge: str | None
    skills: list[str]


class UserList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[UserView]


class UserCreated(BaseModel):
    """The new account and its one-time password, shown this once and never stored."""

    model_config = ConfigDict(extra="forbid")
    user: UserView
    one_time_password: str


class UserChanged(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: UserView


@routes.get("/api/users")
@documented(replies={200: UserList}, access=staff(ADMIN_ROLES))
async def api_list_users(request: web.Request) -> web.StreamResponse:
    require_staff(request, ADMIN_ROLES)
    services = request.app[SERVICES_KEY]
    now = services.clock.now()
    waiting = await waiting_accounts(services.db, services.settings, now)
    users = await list_users(services.db)
    return web.json_response({"users": [public_user(u, now, waiting) for u in users]})


@routes.post("/api/users")
@documented(body=CreateUserBody, replies={201: UserCreated}, access=staff_change(ADMIN_ROLES))
async def api_create_user(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, ADMIN_ROLES)
    body: CreateUserBody = await read_json(request, CreateUserBody)
    created = await do_create_user(
        request.app[SERVICES_KEY].audit,
        request.app[SERVICES_KEY].clock,
        actor=Actor.staff(staff),
        username=body.username,
        role=body.role,
    )
    user = public_user(created.user, request.app[SERVICES_KEY].clock.now())
    return web.json_response({"user": user, "one_time_password": created.password}, status=201)


@routes.patch(r"/api/users/{user_id}")
@documented(body=UpdateUserBody, replies={200: UserChanged}, access=staff_change(ADMIN_ROLES))
async def api_update_user(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, ADMIN_ROLES)
    body: UpdateUserBody = await read_json(request, UpdateUserBody)
    services = request.app[SERVICES_KEY]
    user = await do_change_account(
        services,
        actor=Actor.staff(staff),
        user_id=user_id_of(request),
        role=body.role,
        disabled=body.disabled,
    )
    return web.json_response({"user": public_user(user, services.clock.now())})


async def render_admin(
    request: web.Request, *, error: AppError | None = None, status: int = 200, **sections: Any
) -> web.Response:
    """The page, with what a section of its own shows this once (server/http/account_admin.py's
    one-time password after a reset, say)."""
    return await _render(request, error=error, status=status, **sections)
