"""HTTP side of invites: an operator makes one (texted, or a link to copy); the caller's
``/invite`` page redeems its token (read after ``#``, never in a request line) for a call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from server.actions import invites
from server.actions.access import ANSWER_ROLES, CONSOLE_ROLES
from server.core.events import ChannelName
from server.db.models import InviteSms
from server.http.auth.access import require_staff_change
from server.http.bodies import read_json
from server.http.calls import IceServer, _ice
from server.http.client_address import client_address
from server.http.keys import CATALOGS_KEY, PAGES_KEY, SERVICES_KEY
from server.http.openapi import documented, staff_change
from server.http.origin import site_base

routes = web.RouteTableDef()

# Neither a link nor a call's token is for a cache or a proxy's log.
NO_STORE = {"Cache-Control": "no-store"}


class CreateInviteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Absent: a link the operator copies and passes on themselves; no SMS.
    phone: Annotated[str, StringConstraints(max_length=invites.MAX_PHONE_CHARS)] | None = None
    language: Annotated[str, StringConstraints(max_length=8)] = "en"


class RedeemBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    token: Annotated[str, StringConstraints(max_length=invites.MAX_TOKEN_CHARS)]


class InviteMade(BaseModel):
    """The invite's link, and where its text message is (``sms``)."""

    model_config = ConfigDict(extra="forbid")
    invite_id: str
    link: str
    phone: str | None
    expires_at: datetime
    sms: InviteSms
    sms_failure: str | None


class InviteRedeemed(BaseModel):
    """The caller's call, to be answered by the inviting operator."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    token: str
    channel: ChannelName
    mode: Literal["video", "text"]
    language: str
    ice_servers: list[IceServer]


@routes.post("/api/invites")
@documented(body=CreateInviteBody, replies={201: InviteMade}, access=staff_change(ANSWER_ROLES))
async def create_invite(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, CONSOLE_ROLES)
    body: CreateInviteBody = await read_json(request, CreateInviteBody)
    services = request.app[SERVICES_KEY]
    settings = services.settings
    catalogs = request.app[CATALOGS_KEY]
    minutes = max(1, settings.INVITE_TTL_SECS // 60)

    def message(link: str) -> str:
        return catalogs.gettext(body.language, "invite.sms", link=link, minutes=minutes)

    made = await invites.do_create_invite(
        services,
        staff,
        phone=body.phone,
        language=body.language,
        base_url=site_base(request),
        message=message,
    )
    invite = made.invite
    return web.json_response(
        {
            "invite_id": invite.id,
            "link": made.link,
            "phone": invite.phone,
            "expires_at": invite.expires_at.isoformat(),
            "sms": invite.sms,
            "sms_failure": invite.sms_failure,
        },
        status=201,
        headers=NO_STORE,
    )


@routes.post("/api/invites/redeem")
@documented(body=RedeemBody, replies={201: InviteRedeemed})
async def redeem_invite(request: web.Request) -> web.StreamResponse:
    """The caller's page, with the link's token: their call, answered by the operator."""
    body: RedeemBody = await read_json(request, RedeemBody)
    services = request.app[SERVICES_KEY]
    made = await invites.do_redeem_invite(services, body.token, remote=client_address(request))
    call = made.call
    return web.json_response(
        {
            "call_id": call.id,
            "token": made.token,
            "channel": call.channel,
            "mode": call.mode,
            "language": call.language,
            "ice_servers": _ice(request, f"call-{call.id[:8]}"),
        },
        status=201,
        headers=NO_STORE,
    )


@routes.get("/invite")
async def invite_page(request: web.Request) -> web.StreamResponse:
    return request.app[PAGES_KEY].render(request, "invite.html")
