"""Hardware keys and passkeys over HTTP: the account's keys page, adding and removing a key,
and signing in with one (server/actions/webauthn_*.py hold the rules).

The browser's ``navigator.credentials`` calls sit between each options request and its answer
(console_ui/static/js/webauthn_*.js); every JSON write carries the CSRF token in
``X-CSRF-Token`` (the session's, or the login page's double-submit cookie).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions import webauthn_keys, webauthn_login
from server.actions.directory_login import directory_judge, directory_standing
from server.actions.login import Outcome, authenticate
from server.actions.oidc_login import do_second_factor
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.db.models import Role, SessionStage
from server.http.auth.access import HOME_BY_ROLE, require_stage
from server.http.auth.csrf import CSRF_FIELD, check_csrf
from server.http.auth.routes import safe_next, see_other
from server.http.auth.sessions import create_session
from server.http.bodies import read_form, read_json
from server.http.client_address import client_address
from server.http.keys import OUTAGES_KEY, PAGES_KEY, SERVICES_KEY, STAFF_KEY
from server.http.path_ids import ID
from server.security.relying_party import relying_party

routes = web.RouteTableDef()


class KeySignInOptions(BaseModel):
    """What the login page asks options for: the account's keys, or a passkey alone."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(default="", max_length=200)
    passkey: bool = False


class KeySignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: str = Field(max_length=64)
    credential: dict[str, Any]
    username: str = Field(default="", max_length=200)
    password: str = Field(default="", max_length=1024)
    passkey: bool = False
    next: str = Field(default="", max_length=1024)


class KeyAnswer(BaseModel):
    """A key's answer at the second step after a single sign-on: the session names the
    account."""

    model_config = ConfigDict(extra="forbid")
    challenge_id: str = Field(max_length=64)
    credential: dict[str, Any]


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    challenge_id: str = Field(max_length=64)
    name: str = Field(max_length=200)
    credential: dict[str, Any]


def _signed_in(request: web.Request) -> StaffContext:
    """An active session (the keys page and its writes): others are sent to sign in."""
    staff = request.get(STAFF_KEY)
    if staff is None or not staff.active:
        raise AppError(ErrorCode.UNAUTHORIZED, "Sign in first")
    return staff


@routes.post("/login/key/options")
async def sign_in_options(request: web.Request) -> web.Response:
    check_csrf(request, None)
    body: KeySignInOptions = await read_json(request, KeySignInOptions)
    services = request.app[SERVICES_KEY]
    remote = client_address(request)
    if body.passkey:
        options = await webauthn_login.passkey_options(services, remote=remote)
    else:
        options = await webauthn_login.second_factor_options(
            services, username=body.username, remote=remote
        )
    return web.json_response(options)


@routes.post("/login/key")
async def sign_in(request: web.Request) -> web.Response:
    """The key's answer (with the password, or a passkey alone): a session and where to go, or
    the one answer every failed sign-in gets."""
    check_csrf(request, None)
    body: KeySignIn = await read_json(request, KeySignIn)
    services = request.app[SERVICES_KEY]
    remote = client_address(request)
    if body.passkey:
        result = await webauthn_login.passkey_sign_in(
            services,
            challenge_id=body.challenge_id,
            credential=body.credential,
            remote=remote,
            standing=directory_standing(services.settings, request.app[OUTAGES_KEY]),
        )
    else:
        check = await webauthn_login.key_check(
            services, challenge_id=body.challenge_id, credential=body.credential, remote=remote
        )
        result = await authenticate(
            services.audit,
            services.clock,
            services.settings,
            services.limits,
            username=body.username,
            password=body.password,
            totp="",
            remote=remote,
            key=check,
            # The password of a directory account is the directory's here too.
            judge=directory_judge(services.settings, request.app[OUTAGES_KEY]),
        )
    if result.outcome is not Outcome.OK or result.user is None:
        raise AppError(ErrorCode.LOGIN_FAILED, "Sign-in failed")
    response = web.Response(content_type="application/json")
    stage = await create_session(request, response, result.user)
    if stage == SessionStage.CHANGE_PASSWORD:
        location = "/account/password"
    elif stage == SessionStage.ENROL_TOTP:
        location = "/account/totp"
    else:
        location = safe_next(body.next) or HOME_BY_ROLE.get(Role(result.user.role), "/")
    response.text = json.dumps({"location": location})
    return response


@routes.post("/login/totp/key/options")
async def after_sso_options(request: web.Request) -> web.Response:
    """Options naming the keys of the account a single sign-on left at its second step."""
    staff = require_stage(request, SessionStage.VERIFY_TOTP)
    check_csrf(request, None)
    options = await webauthn_login.second_factor_options(
        request.app[SERVICES_KEY], username=staff.username, remote=client_address(request)
    )
    return web.json_response(options)


@routes.post("/login/totp/key")
async def after_sso_key(request: web.Request) -> web.Response:
    """A key instead of the TOTP code after a single sign-on: the session becomes active."""
    staff = require_stage(request, SessionStage.VERIFY_TOTP)
    check_csrf(request, None)
    body: KeyAnswer = await read_json(request, KeyAnswer)
    services, remote = request.app[SERVICES_KEY], client_address(request)
    check = await webauthn_login.key_check(
        services, challenge_id=body.challenge_id, credential=body.credential, remote=remote
    )
    if not await do_second_factor(services, staff, "", remote=remote, key=check):
        raise AppError(ErrorCode.LOGIN_FAILED, "Sign-in failed")
    return web.json_response({"location": HOME_BY_ROLE.get(Role(staff.role), "/")})


@routes.get("/account/keys")
async def keys_page(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is None or not staff.active:
        raise web.HTTPSeeOther("/login?next=/account/keys")
    services = request.app[SERVICES_KEY]
    return request.app[PAGES_KEY].render(
        request,
        "account_keys.html",
        keys=await webauthn_keys.list_keys(services.db, staff.user_id),
        keys_available=relying_party(services.settings) is not None,
        max_name_chars=webauthn_keys.MAX_NAME_CHARS,
    )


@routes.post("/account/keys/options")
async def key_options(request: web.Request) -> web.Response:
    staff = _signed_in(request)
    check_csrf(request, None)
    options = await webauthn_keys.registration_options(request.app[SERVICES_KEY], staff)
    return web.json_response(options)


@routes.post("/account/keys")
async def add_key(request: web.Request) -> web.Response:
    staff = _signed_in(request)
    check_csrf(request, None)
    body: NewKey = await read_json(request, NewKey)
    key = await webauthn_keys.register_key(
        request.app[SERVICES_KEY],
        staff,
        challenge_id=body.challenge_id,
        name=body.name,
        credential=body.credential,
    )
    return web.json_response({"id": key.id, "name": key.name, "created_at": key.created_at})


@routes.post(f"/account/keys/{{key_id:{ID}}}/remove")
async def remove_key(request: web.Request) -> web.StreamResponse:
    staff = request.get(STAFF_KEY)
    if staff is None or not staff.active:
        raise web.HTTPSeeOther("/login?next=/account/keys")
    form = await read_form(request)
    submitted = form.get(CSRF_FIELD)
    check_csrf(request, submitted if isinstance(submitted, str) else None)
    key_id = int(request.match_info["key_id"])
    await webauthn_keys.remove_key(request.app[SERVICES_KEY], staff, key_id)
    return see_other("/account/keys")
