"""HTTP side of a call's legal hold: read it, set it, lift it (each with a reason), for the
roles that hold evidence (server/actions/access.py: EVIDENCE_ROLES_BY_CHANNEL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions import legal_holds
from server.actions.access import EVIDENCE_ROLES
from server.actions.evidence import MAX_REASON_CHARS
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.keys import SERVICES_KEY
from server.http.openapi import documented, staff, staff_change

routes = web.RouteTableDef()
PATH = r"/api/calls/{call_id}/legal-hold"


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Checked (trimmed, not empty) by the action; the bound here only caps what is parsed.
    reason: str = Field(max_length=4 * MAX_REASON_CHARS)


class HoldView(BaseModel):
    """A call's legal hold: while held, retention deletes none of its evidence."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    held: bool
    since: datetime | None
    by: str | None
    reason: str | None


def _shaped(hold: legal_holds.Hold) -> dict[str, Any]:
    return {
        "call_id": hold.call_id,
        "held": hold.held,
        "since": hold.since.isoformat() if hold.since else None,
        "by": hold.by,
        "reason": hold.reason,
    }


@routes.get(PATH)
@documented(replies={200: HoldView}, access=staff(EVIDENCE_ROLES))
async def get_hold(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, EVIDENCE_ROLES)
    hold = await legal_holds.hold_of(services, request.match_info["call_id"], staff)
    return web.json_response(_shaped(hold))


@routes.put(PATH)
@documented(body=ReasonBody, replies={200: HoldView}, access=staff_change(EVIDENCE_ROLES))
async def set_hold(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff_change(request, EVIDENCE_ROLES)
    body: ReasonBody = await read_json(request, ReasonBody)
    hold = await legal_holds.do_set_hold(
        services, request.match_info["call_id"], staff, body.reason
    )
    return web.json_response(_shaped(hold))


@routes.delete(PATH)
@documented(body=ReasonBody, replies={200: HoldView}, access=staff_change(EVIDENCE_ROLES))
async def lift_hold(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff_change(request, EVIDENCE_ROLES)
    body: ReasonBody = await read_json(request, ReasonBody)
    hold = await legal_holds.do_lift_hold(
        services, request.match_info["call_id"], staff, body.reason
    )
    return web.json_response(_shaped(hold))
