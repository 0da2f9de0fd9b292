"""HTTP side of redacted copies: ask for one (with a reason), list a call's, download one.
For the roles that hold evidence (server/actions/access.py: EVIDENCE_ROLES_BY_CHANNEL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from server.actions import redactions
from server.actions.access import EVIDENCE_ROLES
from server.db.models import Redaction
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.keys import SERVICES_KEY
from server.http.legal_holds import ReasonBody
from server.http.openapi import File, documented, staff, staff_change
from server.http.path_ids import ID
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()
MATROSKA = "video/x-matroska"


class RedactionView(BaseModel):
    """One segment's redacted copy; ``url`` serves it once ``state`` is done."""

    model_config = ConfigDict(extra="forbid")
    id: int
    call_id: str
    segment: int
    state: str
    source_sha256: str
    sha256: str | None
    size_bytes: int | None
    frames: int | None
    frames_with_faces: int | None
    requested_by: str
    reason: str
    requested_at: datetime
    done_at: datetime | None
    purged: bool
    url: str


class Redactions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    redactions: list[RedactionView]


def _shaped(row: Redaction) -> dict[str, Any]:
    return {
        "id": row.id,
        "call_id": row.call_id,
        "segment": row.segment,
        "state": row.state,
        "source_sha256": row.source_sha256,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "frames": row.frames,
        "frames_with_faces": row.frames_with_faces,
        "requested_by": row.requested_by,
        "reason": row.reason,
        "requested_at": row.requested_at.isoformat(),
        "done_at": row.done_at.isoformat() if row.done_at else None,
        "purged": row.purged_at is not None,
        "url": f"/api/calls/{row.call_id}/redactions/{row.id}/file",
    }


@routes.post(r"/api/calls/{call_id}/redactions")
@documented(body=ReasonBody, replies={202: Redactions}, access=staff_change(EVIDENCE_ROLES))
async def request_redaction(request: web.Request) -> web.StreamResponse:
    """202: the copies are made in the background; poll the list for their state."""
    services = request.app[SERVICES_KEY]
    staff = require_staff_change(request, EVIDENCE_ROLES)
    body: ReasonBody = await read_json(request, ReasonBody)
    rows = await redactions.do_request_redaction(
        services, request.match_info["call_id"], staff, body.reason
    )
    return web.json_response({"redactions": [_shaped(row) for row in rows]}, status=202)


@routes.get(r"/api/calls/{call_id}/redactions")
@documented(replies={200: Redactions}, access=staff(EVIDENCE_ROLES))
async def list_redactions(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, EVIDENCE_ROLES)
    rows = await redactions.redactions_of(services, request.match_info["call_id"], staff)
    return web.json_response({"redactions": [_shaped(row) for row in rows]})


@routes.get(r"/api/calls/{call_id}/redactions/{redaction_id:" + ID + "}/file")
@documented(replies={200: File((MATROSKA,))}, access=staff(EVIDENCE_ROLES))
async def redaction_file(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, EVIDENCE_ROLES)
    row = await redactions.view_redaction(
        services, request.match_info["call_id"], int(request.match_info["redaction_id"]), staff
    )
    assert row.path is not None
    return await stored_file_response(
        services.storage,
        row.path,
        MATROSKA,
        row.sha256 or "",
        download_as=f"call-{row.call_id}-segment-{row.segment:04d}-redacted.mkv",
    )
