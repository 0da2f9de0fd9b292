"""HTTP side of a call's recording: one stored segment, for staff who may act on the call."""

from __future__ import annotations

from aiohttp import web

from server.actions import calls, recordings
from server.actions.access import CONSOLE_ROLES
from server.http.auth.access import require_staff
from server.http.keys import SERVICES_KEY
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()
MATROSKA = "video/x-matroska"


@routes.get(r"/api/calls/{call_id}/recordings/{segment:\d+}")
async def recording_file(request: web.Request) -> web.StreamResponse:
    """A Matroska segment as an attachment, for the call's operator (or a supervisor); every
    view is audited. Served by any node: the file is read from the shared storage."""
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, CONSOLE_ROLES)
    call = await calls.check_call_for_staff(
        services, request.match_info["call_id"], staff, must_own=True
    )
    stored = await recordings.view_recording(
        services, call, int(request.match_info["segment"]), staff
    )
    return await stored_file_response(
        services.storage,
        stored.path,
        MATROSKA,
        stored.sha256 or "",
        download_as=f"call-{call.id}-segment-{stored.segment:04d}.mkv",
    )
