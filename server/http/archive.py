"""HTTP side of the call archive: its pages, the search, and opening a call's record with a
reason (the rules: server/actions/archive.py, record_views.py, call_record.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions import archive, call_record, record_views
from server.actions.access import ARCHIVE_ROLES, archive_channels_for, evidence_channels_for
from server.actions.evidence import MAX_REASON_CHARS
from server.actions.participants import ParticipantView
from server.core.events import CallMark, ChannelName
from server.http.auth.access import require_page_staff, require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.client_address import client_address
from server.http.keys import PAGES_KEY, SERVICES_KEY
from server.http.openapi import documented, staff, staff_change

routes = web.RouteTableDef()
# The query string parameter every fetch of a record's files carries: the justified view.
VIEW_PARAM = "view"


class ViewBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    # Checked (and its absence refused with reason_required) by check_reason.
    reason: str = Field(default="", max_length=4 * MAX_REASON_CHARS)


class SearchQuery(BaseModel):
    """The archive's search (``archive.parse_search``): every filter optional."""

    from_: str | None = Field(default=None, alias="from", description="ISO 8601 date or time")
    to: str | None = Field(default=None, description="ISO 8601 date or time")
    operator: str | None = Field(default=None, description="A username")
    channel: ChannelName | None = None
    disposition: str | None = None
    q: str | None = Field(default=None, description="Words of the chat and the note")
    area: str | None = Field(default=None, description="A polygon: lat,lon;lat,lon;...")
    page: int | None = Field(default=None, ge=1, le=archive.MAX_PAGE)


class Found(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str
    channel: ChannelName
    mode: str
    state: str
    operator: str | None
    disposition: str | None
    marks: list[CallMark]
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    segments: int


class SearchPage(BaseModel):
    """One page of the calls the reader's archive holds, newest first."""

    model_config = ConfigDict(extra="forbid")
    results: list[Found]
    total: int
    page: int
    per_page: int


class OpenedView(BaseModel):
    """The justified view: its token goes in ``?view=`` of every fetch of the record's files."""

    model_config = ConfigDict(extra="forbid")
    token: str
    entry: int
    reason: str
    expires_at: datetime


class RecordOpened(BaseModel):
    """The view, then the call's record (``call_record.load_record``)."""

    model_config = ConfigDict(extra="forbid")
    view: OpenedView
    call: dict[str, Any]
    transitions: list[dict[str, Any]]
    present: list[dict[str, Any]]
    participants: list[ParticipantView]
    chat: list[dict[str, Any]]
    track: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    photos: list[dict[str, Any]]
    segments: list[dict[str, Any]]


@routes.get("/archive")
async def archive_page(request: web.Request) -> web.StreamResponse:
    staff = require_page_staff(request, ARCHIVE_ROLES)
    settings = request.app[SERVICES_KEY].settings
    return request.app[PAGES_KEY].render(
        request,
        "archive.html",
        channels=sorted(archive_channels_for(staff.role)),
        dispositions=archive.DISPOSITIONS,
        shift_hours=settings.ARCHIVE_SHIFT_HOURS,
    )


@routes.get(r"/archive/calls/{call_id}")
async def record_page(request: web.Request) -> web.StreamResponse:
    """The record's page: it shows nothing of the call but its id until a reason is given."""
    staff = require_page_staff(request, ARCHIVE_ROLES)
    call = await archive.check_archive_call(
        request.app[SERVICES_KEY], staff, request.match_info["call_id"]
    )
    return request.app[PAGES_KEY].render(
        request,
        "archive_record.html",
        call_id=call.id,
        # The legal hold's button, for the roles that may hold this call (retention's rule).
        can_hold=call.channel in evidence_channels_for(staff.role),
    )


@routes.get("/api/archive/calls")
@documented(query=SearchQuery, replies={200: SearchPage}, access=staff(ARCHIVE_ROLES))
async def search(request: web.Request) -> web.StreamResponse:
    staff = require_staff(request, ARCHIVE_ROLES)
    services = request.app[SERVICES_KEY]
    found = await archive.search(services, staff, archive.parse_search(request.query))
    return web.json_response(
        {
            "results": [r.as_json() for r in found.results],
            "total": found.total,
            "page": found.page,
            "per_page": found.per_page,
        }
    )


@routes.post(r"/api/archive/calls/{call_id}/views")
@documented(body=ViewBody, replies={201: RecordOpened}, access=staff_change(ARCHIVE_ROLES))
async def open_view(request: web.Request) -> web.StreamResponse:
    """Open a call's record for a reason: the chain's entry first, then the record."""
    staff = require_staff_change(request, ARCHIVE_ROLES)
    services = request.app[SERVICES_KEY]
    body: ViewBody = await read_json(request, ViewBody)
    opened = await record_views.do_open_view(
        services, staff, request.match_info["call_id"], body.reason, client_address(request)
    )
    record = await call_record.load_record(services, opened.call)
    return web.json_response(
        {
            "view": {
                "token": opened.token,
                "entry": opened.view.audit_seq,
                "reason": opened.view.reason,
                "expires_at": opened.view.expires_at.isoformat(),
            },
            **record,
        },
        status=201,
    )
