"""HTTP side of a call's recording: one stored segment, played from the call's record page.

Every fetch carries the justified view the record was opened with (``?view=``, see
server/actions/record_views.py): without one the answer is ``reason_required`` and no
byte of the recording. The first fetch of a segment within a view is entered in the chain. A
segment recovered after a crash plays from its remuxed copy (the original, hashed in the chain,
stays as it was left).
"""

from __future__ import annotations

from aiohttp import web

from server.actions import record_views
from server.actions.access import ARCHIVE_ROLES
from server.http.archive import VIEW_PARAM
from server.http.auth.access import require_staff
from server.http.calls import StaffFileQuery
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY
from server.http.openapi import File, documented, staff
from server.http.path_ids import ID
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()
# The segments are Matroska (DocType matroska) with VP8 video and Opus audio. Debian's Chromium
# plays them from <video> under this type (canPlayType says "maybe", as for video/webm) with
# seeking, Content-Disposition and the stored files' sandbox CSP notwithstanding: checked with
# a muxed segment served as video/x-matroska, video/webm and application/octet-stream alike.
SEGMENT_TYPE = "video/x-matroska"


@routes.get(r"/api/calls/{call_id}/recordings/{segment:" + ID + "}")
@documented(query=StaffFileQuery, replies={200: File((SEGMENT_TYPE,))}, access=staff(ARCHIVE_ROLES))
async def recording_file(request: web.Request) -> web.StreamResponse:
    """A segment, for staff whose archive holds the call, within their view of its record.
    Served by any node: the file is read from the shared storage."""
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, ARCHIVE_ROLES)
    call, view = await record_views.check_view(
        services, staff, request.match_info["call_id"], request.query.get(VIEW_PARAM)
    )
    stored = await record_views.do_play_segment(
        services, staff, call, view, int(request.match_info["segment"]), client_address(request)
    )
    played = record_views.played_file(stored)
    return await stored_file_response(
        services.storage,
        played.key,
        SEGMENT_TYPE,
        played.sha256,
        download_as=(
            f"call-{call.id}-segment-{stored.segment:04d}{'.playable' if played.copy else ''}.mkv"
        ),
    )
