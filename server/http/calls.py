"""HTTP side of calls: a citizen starts one; staff and call holders get ICE servers; staff
open a call's snapshots."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions import call_events, call_limits, calls, record_views
from server.actions.access import ARCHIVE_ROLES, CONSOLE_ROLES
from server.core.errors import AppError, ErrorCode
from server.core.events import CallStateName, ChannelName, SituationName
from server.http.archive import VIEW_PARAM
from server.http.auth.access import require_staff
from server.http.bodies import read_json
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY, STAFF_KEY
from server.http.openapi import CALL_TOKEN, File, documented, staff
from server.http.path_ids import ID
from server.http.uploads import stored_file_response
from server.security.ice import ice_servers_for

routes = web.RouteTableDef()
CALL_TOKEN_HEADER = "X-Call-Token"


class CreateCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    channel: ChannelName = "police"
    language: str = "en"
    mode: Literal["video", "text"] = "video"
    # "What is happening?", if the caller tapped one before calling (else it may follow).
    situation: SituationName | None = None


class IceServer(BaseModel):
    """One entry of RTCPeerConnection's ``iceServers``; TURN with credentials of an hour."""

    model_config = ConfigDict(extra="forbid")
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ice_servers: list[IceServer]


class CallCreated(BaseModel):
    """The new call and its capability token (``X-Call-Token``; Socket.IO ``/citizen``)."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    token: str
    state: CallStateName
    channel: ChannelName
    mode: Literal["video", "text"]
    created_at: datetime
    ice_servers: list[IceServer]


class StaffFileQuery(BaseModel):
    """A call's file from its record rather than the console."""

    view: str | None = Field(
        default=None, description="The view token POST /api/archive/calls/{call_id}/views gave"
    )


DEVICE_COOKIE = "lifeline_device"
DEVICE_COOKIE_MAX_AGE_SECS = 365 * 86_400


def _ice(request: web.Request, who: str) -> list[dict[str, object]]:
    services = request.app[SERVICES_KEY]
    settings = services.settings
    return ice_servers_for(settings.ICE_SERVERS, settings.TURN_SECRET, who, services.clock.now())


@routes.post("/api/calls")
@documented(body=CreateCallBody, replies={201: CallCreated})
async def create_call(request: web.Request) -> web.StreamResponse:
    """Never a 429: a caller over the rate limit gets a call marked suspected_abuse."""
    services = request.app[SERVICES_KEY]
    body: CreateCallBody = await read_json(request, CreateCallBody)
    address = client_address(request)
    network = call_limits.network_of(address)
    device = call_limits.device_of(services, request.cookies.get(DEVICE_COOKIE, ""))
    over = await call_limits.over_call_limit(services, call_limits.Caller(network, device))
    created = await calls.do_create_call(
        services,
        channel=body.channel,
        mode=body.mode,
        language=body.language,
        remote=address or "unknown",
        marks=("suspected_abuse",) if over else (),
        situation=body.situation,
    )
    call = created.call
    response = web.json_response(
        {
            "call_id": call.id,
            "token": created.token,
            "state": call.state,
            "channel": call.channel,
            "mode": call.mode,
            "created_at": call.created_at.isoformat(),
            "ice_servers": _ice(request, f"call-{call.id[:8]}"),
        },
        status=201,
    )
    if device is None and (cookie := await call_limits.mint_device(services, network)):
        response.set_cookie(
            DEVICE_COOKIE,
            cookie,
            max_age=DEVICE_COOKIE_MAX_AGE_SECS,
            httponly=True,
            samesite="Strict",
            secure=services.settings.cookies_secure,
            path="/api/calls",
        )
    return response


@routes.get("/api/ice-servers")
@documented(replies={200: IceServers}, access=CALL_TOKEN | staff(CONSOLE_ROLES))
async def ice_servers(request: web.Request) -> web.StreamResponse:
    """Only for holders of a live call's token or a console session: TURN costs bandwidth."""
    token = request.headers.get(CALL_TOKEN_HEADER, "")
    if token:
        call = await calls.call_by_token(request.app[SERVICES_KEY], token)
        if call is None or call.state not in calls.LIVE_STATES:
            raise AppError(ErrorCode.BAD_CALL_TOKEN, "Unknown or ended call")
        who = f"call-{call.id[:8]}"
    elif request.get(STAFF_KEY) is not None:
        who = f"staff-{require_staff(request, CONSOLE_ROLES).user_id}"
    else:
        raise AppError(ErrorCode.UNAUTHORIZED, "A call token or a staff session is needed")
    return web.json_response({"ice_servers": _ice(request, who)})


@routes.get(r"/api/calls/{call_id}/snapshots/{snapshot_id:" + ID + "}")
@documented(
    replies={200: File(("image/jpeg",))},
    access=staff(CONSOLE_ROLES | ARCHIVE_ROLES),
    query=StaffFileQuery,
)
async def snapshot_image(request: web.Request) -> web.StreamResponse:
    """A snapshot, for the call's operator (or a supervisor) at the console, or from the
    call's record (``?view=``: staff whose archive holds the call, with the record's reason);
    every view is audited."""
    services = request.app[SERVICES_KEY]
    justified = None
    if VIEW_PARAM in request.query:
        staff = require_staff(request, ARCHIVE_ROLES)
        call, view = await record_views.check_view(
            services, staff, request.match_info["call_id"], request.query[VIEW_PARAM]
        )
        justified = record_views.justified(view, client_address(request))
    else:
        staff = require_staff(request, CONSOLE_ROLES)
        call = await calls.check_call_for_staff(
            services, request.match_info["call_id"], staff, must_own=True
        )
    snapshot = await call_events.view_snapshot(
        services, call, int(request.match_info["snapshot_id"]), staff, justified=justified
    )
    return await stored_file_response(
        services.storage, snapshot.path, "image/jpeg", snapshot.sha256
    )
