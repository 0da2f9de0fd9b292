"""HTTP side of the Open311 partners' API keys, for the admin: list them, issue one (its secret
in this one answer) and revoke one, each with a reason. The /admin page's section of its own
(``_admin_open311_keys.html``, ``admin_open311_keys.js``) drives these; scripts may too."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions.access import ADMIN_ROLES
from server.actions.evidence import MAX_REASON_CHARS
from server.actions.threats import open311_keys
from server.core.errors import AppError, ErrorCode
from server.db.models import Open311Key
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.keys import SERVICES_KEY
from server.http.openapi import documented, staff, staff_change
from server.http.path_ids import ID

routes = web.RouteTableDef()
PATH = "/api/admin/open311-keys"


class IssueBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Checked by the action; the bounds here only cap what is parsed.
    partner: str = Field(max_length=4 * open311_keys.MAX_PARTNER_CHARS)
    daily_limit: int
    reason: str = Field(max_length=4 * MAX_REASON_CHARS)


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    reason: str = Field(max_length=4 * MAX_REASON_CHARS)


class KeyView(BaseModel):
    """An API key as the admin sees it (``shaped``): never the secret nor its hash."""

    model_config = ConfigDict(extra="forbid")
    id: int
    partner: str
    daily_limit: int
    reason: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    reports_today: int
    revoked: bool
    revoked_at: datetime | None
    revoked_by: str | None
    revoke_reason: str | None


class KeyList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[KeyView]


class KeyIssued(BaseModel):
    """The new key, and its secret: in this answer only."""

    model_config = ConfigDict(extra="forbid")
    key: KeyView
    api_key: str


class KeyRevoked(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: KeyView


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def shaped(key: Open311Key, reports_today: int) -> dict[str, Any]:
    """What the admin sees of a key: never the secret nor its hash."""
    return {
        "id": key.id,
        "partner": key.partner,
        "daily_limit": key.daily_limit,
        "reason": key.reason,
        "created_by": key.created_by,
        "created_at": _iso(key.created_at),
        "last_used_at": _iso(key.last_used_at),
        "reports_today": reports_today,
        "revoked": key.revoked_at is not None,
        "revoked_at": _iso(key.revoked_at),
        "revoked_by": key.revoked_by,
        "revoke_reason": key.revoke_reason,
    }


def _key_id(request: web.Request) -> int:
    raw = request.match_info["key_id"]
    if not re.fullmatch(ID, raw):  # past the database's integer: none such either
        raise AppError(ErrorCode.API_KEY_NOT_FOUND, "No such API key")
    return int(raw)


@routes.get(PATH)
@documented(replies={200: KeyList}, access=staff(ADMIN_ROLES))
async def list_keys(request: web.Request) -> web.StreamResponse:
    require_staff(request, ADMIN_ROLES)
    found = await open311_keys.list_keys(request.app[SERVICES_KEY])
    return web.json_response({"keys": [shaped(k.key, k.reports_today) for k in found]})


@routes.post(PATH)
@documented(body=IssueBody, replies={201: KeyIssued}, access=staff_change(ADMIN_ROLES))
async def issue_key(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, ADMIN_ROLES)
    body: IssueBody = await read_json(request, IssueBody)
    issued = await open311_keys.do_issue_key(
        request.app[SERVICES_KEY],
        staff,
        partner=body.partner,
        daily_limit=body.daily_limit,
        reason=body.reason,
    )
    # The secret is in this answer only: no page or route shows it again.
    return web.json_response({"key": shaped(issued.key, 0), "api_key": issued.secret}, status=201)


@routes.delete(PATH + r"/{key_id}")
@documented(body=RevokeBody, replies={200: KeyRevoked}, access=staff_change(ADMIN_ROLES))
async def revoke_key(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, ADMIN_ROLES)
    body: RevokeBody = await read_json(request, RevokeBody)
    services = request.app[SERVICES_KEY]
    key = await open311_keys.do_revoke_key(services, staff, _key_id(request), body.reason)
    return web.json_response({"key": shaped(key, await open311_keys.reports_today(services, key))})
