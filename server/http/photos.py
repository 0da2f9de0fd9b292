"""HTTP side of the caller's photos: the upload (multipart, field ``photo``), and the stored
file for the call's own token holder or staff who may see the call."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from server.actions import call_events, calls, record_views
from server.actions.access import ARCHIVE_ROLES, CONSOLE_ROLES
from server.core.errors import AppError, ErrorCode
from server.core.events import PhotoEvent
from server.http.archive import VIEW_PARAM
from server.http.auth.access import require_staff
from server.http.calls import CALL_TOKEN_HEADER, StaffFileQuery
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY
from server.http.openapi import CALL_TOKEN, File, Form, documented, staff
from server.http.path_ids import ID
from server.http.uploads import read_upload, stored_file_response

routes = web.RouteTableDef()


class PhotoForm(BaseModel):
    photo: bytes


class ClipForm(BaseModel):
    clip: bytes


FILES = ("image/jpeg", "image/png", "image/webp", "video/mp4", "video/webm")


@routes.post(r"/api/calls/{call_id}/photos")
@documented(body=Form(PhotoForm), replies={201: PhotoEvent}, access=CALL_TOKEN)
async def upload_photo(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    call = await calls.check_citizen_call(
        services, request.headers.get(CALL_TOKEN_HEADER, ""), request.match_info["call_id"]
    )
    data = await read_upload(request, "photo", ErrorCode.PHOTO_REQUIRED)
    event = await call_events.do_store_photo(services, call, data)
    return web.json_response(event.model_dump(mode="json"), status=201)


@routes.post(r"/api/calls/{call_id}/clips")
@documented(body=Form(ClipForm), replies={201: PhotoEvent}, access=CALL_TOKEN)
async def upload_clip(request: web.Request) -> web.StreamResponse:
    """A video clip (MP4 or WebM, field ``clip``), beside the call's photos."""
    services = request.app[SERVICES_KEY]
    call = await calls.check_citizen_call(
        services, request.headers.get(CALL_TOKEN_HEADER, ""), request.match_info["call_id"]
    )
    data = await read_upload(request, "clip", ErrorCode.CLIP_REQUIRED)
    event = await call_events.do_store_clip(services, call, data)
    return web.json_response(event.model_dump(mode="json"), status=201)


@routes.get(r"/api/calls/{call_id}/photos/{seq:" + ID + "}")
@documented(
    query=StaffFileQuery,
    replies={200: File(FILES)},
    access=CALL_TOKEN | staff(CONSOLE_ROLES | ARCHIVE_ROLES),
)
async def photo_file(request: web.Request) -> web.StreamResponse:
    """For the caller (token header), staff who may see the call at the console, or from the
    call's record (``?view=``); staff views are audited."""
    services = request.app[SERVICES_KEY]
    call_id = request.match_info["call_id"]
    token = request.headers.get(CALL_TOKEN_HEADER)
    justified = None
    if VIEW_PARAM in request.query:  # from the call's record, with its reason
        viewer = require_staff(request, ARCHIVE_ROLES)
        _call, view = await record_views.check_view(
            services, viewer, call_id, request.query[VIEW_PARAM]
        )
        justified = record_views.justified(view, client_address(request))
    elif token:
        call = await calls.call_by_token(services, token)
        if call is None or call.id != call_id:
            raise AppError(ErrorCode.BAD_CALL_TOKEN, "This call's token is needed")
        viewer = None
    else:
        viewer = require_staff(request, CONSOLE_ROLES)
        await calls.check_call_for_staff(services, call_id, viewer, must_own=True)
    photo = await call_events.view_photo(
        services, call_id, int(request.match_info["seq"]), viewer, justified=justified
    )
    return await stored_file_response(
        services.storage, photo.path, photo.content_type, photo.sha256
    )
