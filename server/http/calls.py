"""HTTP side of calls: a citizen starts one; staff and call holders get ICE servers."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from config.settings import LANGUAGES
from server.actions.calls import call_by_token, check_call_for_staff, do_create_call, summary_of
from server.core.errors import AppError, ErrorCode
from server.db.models import Snapshot
from server.http.admin import read_json
from server.http.auth.access import CONSOLE_ROLES, require_staff
from server.http.keys import (
    AUDIT_KEY,
    CLOCK_KEY,
    DB_KEY,
    RATE_LIMITS_KEY,
    SETTINGS_KEY,
    SIO_KEY,
    STAFF_KEY,
)
from server.http.uploads import stored_file_response
from server.security.ice import ice_servers_for
from server.state.ratelimit import parse_rules
from signaling.events import ChannelName, QueueCallAdded
from signaling.fanout import to_queue

routes = web.RouteTableDef()
CALL_TOKEN_HEADER = "X-Call-Token"


class CreateCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    channel: ChannelName = "police"
    language: str = "en"
    mode: Literal["video", "text"] = "video"


def _client_key(request: web.Request) -> str:
    return request.remote or "unknown"


def _ice(request: web.Request, who: str) -> list[dict[str, object]]:
    settings = request.app[SETTINGS_KEY]
    return ice_servers_for(
        settings.ICE_SERVERS, settings.TURN_SECRET, who, request.app[CLOCK_KEY].now()
    )


@routes.post("/api/calls")
async def create_call(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    await request.app[RATE_LIMITS_KEY].hit(
        parse_rules(settings.CALL_RATE_LIMIT), "calls", _client_key(request)
    )
    body: CreateCallBody = await read_json(request, CreateCallBody)
    if body.language not in LANGUAGES:
        raise AppError(
            ErrorCode.INVALID_LANGUAGE, f"Unknown language; use one of {', '.join(LANGUAGES)}"
        )
    created = await do_create_call(
        request.app[AUDIT_KEY],
        request.app[CLOCK_KEY],
        channel=body.channel,
        mode=body.mode,
        language=body.language,
        remote=_client_key(request),
    )
    call = created.call
    summary = await summary_of(request.app[DB_KEY], call)
    await to_queue(request.app[SIO_KEY], call.channel, QueueCallAdded(call=summary))
    return web.json_response(
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


@routes.get("/api/ice-servers")
async def ice_servers(request: web.Request) -> web.StreamResponse:
    """Only for holders of a live call's token or a console session: TURN costs bandwidth."""
    token = request.headers.get(CALL_TOKEN_HEADER, "")
    if token:
        call = await call_by_token(request.app[DB_KEY], token)
        if call is None or call.state not in ("queued", "answered"):
            raise AppError(ErrorCode.BAD_CALL_TOKEN, "Unknown or ended call")
        who = f"call-{call.id[:8]}"
    elif request.get(STAFF_KEY) is not None:
        who = f"staff-{require_staff(request, CONSOLE_ROLES).user_id}"
    else:
        raise AppError(ErrorCode.UNAUTHORIZED, "A call token or a staff session is needed")
    return web.json_response({"ice_servers": _ice(request, who)})


@routes.get(r"/api/calls/{call_id}/snapshots/{snapshot_id:\d+}")
async def snapshot_image(request: web.Request) -> web.StreamResponse:
    """A snapshot, for the call's operator (or a supervisor); every view is audited."""
    staff = require_staff(request, CONSOLE_ROLES)
    call = await check_call_for_staff(
        request.app[DB_KEY],
        request.match_info["call_id"],
        staff.role,
        staff.user_id,
        must_own=True,
    )
    async with request.app[DB_KEY].session() as session:
        snapshot = await session.get(Snapshot, int(request.match_info["snapshot_id"]))
    if snapshot is None or snapshot.call_id != call.id:
        raise AppError(ErrorCode.SNAPSHOT_NOT_FOUND, "No such snapshot")
    await request.app[AUDIT_KEY].append(
        actor=staff.username,
        action="snapshot_viewed",
        subject=f"call:{call.id}",
        data={"snapshot_id": snapshot.id, "sha256": snapshot.sha256},
    )
    return await stored_file_response(snapshot.path, "image/jpeg", snapshot.sha256)
