"""HTTP side of the police's report desk: the list, one report, a status change, forwarding,
inviting the author, a report from a live call, and a photo as sent.

Each handler checks the session (and the CSRF token of a change), reads the body, calls one
action (which stores, then tells every console), and answers with the report's staff view.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions.access import REPORT_DESK_ROLES
from server.actions.threats import desk
from server.actions.threats.fields import (
    MAX_DESCRIPTION_CHARS,
    MAX_INTERNAL_NOTE_CHARS,
    MAX_PUBLIC_NOTE_CHARS,
)
from server.core.events import StaffReport
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.keys import SERVICES_KEY
from server.http.openapi import File, documented, staff, staff_change
from server.http.path_ids import ID
from server.http.threats.forms import report_id_of
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: str = Field(max_length=32)
    public_note: str = Field(default="", max_length=MAX_PUBLIC_NOTE_CHARS)
    internal_note: str = Field(default="", max_length=MAX_INTERNAL_NOTE_CHARS)
    sensitive: bool | None = None


class ForwardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    to: str = Field(max_length=32)
    note: str = Field(default="", max_length=MAX_INTERNAL_NOTE_CHARS)


class FromCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    category: str = Field(max_length=64)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)


class StaffReports(BaseModel):
    """The desk's list, newest first."""

    model_config = ConfigDict(extra="forbid")
    reports: list[StaffReport]


class DeskQuery(BaseModel):
    status: str | None = Field(default=None, description="Statuses, comma-separated")
    category: str | None = None
    max_age_days: int | None = Field(default=None, ge=0, le=desk.MAX_AGE_DAYS)
    bbox: str | None = Field(default=None, description="min_lon,min_lat,max_lon,max_lat")
    limit: int | None = Field(default=None, ge=0, le=desk.MAX_STAFF_REPORTS)


READ = staff(REPORT_DESK_ROLES)
CHANGE = staff_change(REPORT_DESK_ROLES)
IMAGES = ("image/jpeg", "image/png", "image/webp")


def _view(report: StaffReport, status: int = 200) -> web.Response:
    return web.json_response(report.model_dump(mode="json"), status=status)


@routes.get("/api/staff/reports")
@documented(query=DeskQuery, replies={200: StaffReports}, access=READ)
async def staff_list(request: web.Request) -> web.StreamResponse:
    require_staff(request, REPORT_DESK_ROLES)
    views = await desk.list_reports(request.app[SERVICES_KEY], request.query)
    return web.json_response({"reports": [v.model_dump(mode="json") for v in views]})


@routes.get(r"/api/staff/reports/{report_id:" + ID + "}")
@documented(replies={200: StaffReport}, access=READ)
async def staff_one(request: web.Request) -> web.StreamResponse:
    """One report; the first officer to open it marks it read (KMZB's 2-day target)."""
    staff = require_staff(request, REPORT_DESK_ROLES)
    view = await desk.do_open_report(
        request.app[SERVICES_KEY], report_id=report_id_of(request), staff=staff
    )
    return _view(view)


@routes.post(r"/api/staff/reports/{report_id:" + ID + "}/status")
@documented(body=StatusBody, replies={200: StaffReport}, access=CHANGE)
async def staff_status(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, REPORT_DESK_ROLES)
    body: StatusBody = await read_json(request, StatusBody)
    view = await desk.do_change_status(
        request.app[SERVICES_KEY],
        report_id=report_id_of(request),
        staff=staff,
        status=body.status,
        public_note=body.public_note,
        internal_note=body.internal_note,
        sensitive=body.sensitive,
    )
    return _view(view)


@routes.post(r"/api/staff/reports/{report_id:" + ID + "}/forward")
@documented(body=ForwardBody, replies={200: StaffReport}, access=CHANGE)
async def staff_forward(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, REPORT_DESK_ROLES)
    body: ForwardBody = await read_json(request, ForwardBody)
    view = await desk.do_forward(
        request.app[SERVICES_KEY],
        report_id=report_id_of(request),
        staff=staff,
        to=body.to,
        note=body.note,
    )
    return _view(view)


@routes.post(r"/api/staff/reports/{report_id:" + ID + "}/invite")
@documented(replies={200: StaffReport}, access=CHANGE)
async def staff_invite(request: web.Request) -> web.StreamResponse:
    """Invite the report's author to a video call: their follow page then offers one."""
    staff = require_staff_change(request, REPORT_DESK_ROLES)
    view = await desk.do_invite(
        request.app[SERVICES_KEY], report_id=report_id_of(request), staff=staff
    )
    return _view(view)


@routes.post(r"/api/staff/reports/from-call/{call_id}")
@documented(body=FromCallBody, replies={201: StaffReport}, access=CHANGE)
async def staff_from_call(request: web.Request) -> web.StreamResponse:
    """A live call becomes a threat report at the caller's last known position."""
    staff = require_staff_change(request, REPORT_DESK_ROLES)
    body: FromCallBody = await read_json(request, FromCallBody)
    view = await desk.do_report_from_call(
        request.app[SERVICES_KEY],
        call_id=request.match_info["call_id"],
        staff=staff,
        category=body.category,
        description=body.description,
    )
    return _view(view, status=201)


@routes.get(r"/api/staff/reports/{report_id:" + ID + "}/photos/{n:" + ID + "}/original")
@documented(replies={200: File(IMAGES)}, access=READ)
async def staff_original_photo(request: web.Request) -> web.StreamResponse:
    """The photo as sent (EXIF included): evidence, for staff, every view audited."""
    staff = require_staff(request, REPORT_DESK_ROLES)
    services = request.app[SERVICES_KEY]
    photo = await desk.do_view_original_photo(
        services,
        report_id=report_id_of(request),
        n=int(request.match_info["n"]),
        staff=staff,
    )
    extension = photo.content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
    return await stored_file_response(
        services.storage,
        photo.original_path,
        photo.content_type,
        photo.sha256,
        download_as=f"report-{report_id_of(request)}-photo-{request.match_info['n']}.{extension}",
    )
