"""HTTP side of the CAD hand-off: a call's (or a message thread's) EIDO document for staff,
and the webhook's dead-letter list on /admin with its "retry now" (the rules:
server/actions/eido.py, server/actions/cad_deliveries.py; docs/cad.md)."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from server.actions import cad_deliveries, calls, eido, record_views, threads
from server.actions.access import ADMIN_ROLES, ARCHIVE_ROLES, CONSOLE_ROLES
from server.core.errors import AppError, ErrorCode
from server.http.archive import VIEW_PARAM
from server.http.auth.access import require_staff, require_staff_change
from server.http.calls import StaffFileQuery
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY
from server.http.openapi import File, documented, staff, staff_change
from server.http.path_ids import ID

routes = web.RouteTableDef()


class DeadLetterView(BaseModel):
    """A delivery to the CAD that failed every try."""

    model_config = ConfigDict(extra="forbid")
    id: int
    call_id: str
    event: str
    attempts: int
    last_error: str
    created_at: datetime
    dead_at: datetime | None


class DeadLetters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deliveries: list[DeadLetterView]


class Retried(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delivery: DeadLetterView


# The EIDO document (NENA's schema, docs/cad.md), as an attachment.
EIDO = File(("application/json",))


@routes.get(r"/api/staff/calls/{call_id}/eido")
@documented(
    query=StaffFileQuery,
    replies={200: EIDO},
    access=staff(CONSOLE_ROLES | ARCHIVE_ROLES),
)
async def call_eido(request: web.Request) -> web.StreamResponse:
    """The call's EIDO, for its operator (or a supervisor) at the console, or from the call's
    record (``?view=``: staff whose archive holds the call, with the record's reason); every
    export is entered in the chain (``eido_exported``, with the document's hash)."""
    services = request.app[SERVICES_KEY]
    remote = client_address(request)
    justified = None
    if VIEW_PARAM in request.query:
        staff = require_staff(request, ARCHIVE_ROLES)
        call, view = await record_views.check_view(
            services, staff, request.match_info["call_id"], request.query[VIEW_PARAM]
        )
        justified = record_views.justified(view, remote)
    else:
        staff = require_staff(request, CONSOLE_ROLES)
        call = await calls.check_call_for_staff(
            services, request.match_info["call_id"], staff, must_own=True
        )
    document = await eido.do_export_call(services, staff, call, remote, justified=justified)
    return _attachment(document, f"call-{call.id}.eido.json")


@routes.get(r"/api/staff/threads/{thread_id}/eido")
@documented(replies={200: EIDO}, access=staff(CONSOLE_ROLES))
async def thread_eido(request: web.Request) -> web.StreamResponse:
    """A message thread's EIDO, for the console roles that see its channel; audited."""
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, CONSOLE_ROLES)
    thread = await threads.check_thread_for_staff(services, request.match_info["thread_id"], staff)
    document = await eido.do_export_thread(services, staff, thread, client_address(request))
    return _attachment(document, f"thread-{thread.id}.eido.json")


def _attachment(document: eido.EidoDocument, name: str) -> web.Response:
    return web.Response(
        body=document.body,
        content_type="application/json",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256": document.sha256,
            "Cache-Control": "no-store",
        },
    )


@routes.get("/api/admin/cad/deliveries")
@documented(replies={200: DeadLetters}, access=staff(ADMIN_ROLES))
async def dead_letters(request: web.Request) -> web.StreamResponse:
    """The webhook's deliveries that failed every try (the /admin section reads it)."""
    require_staff(request, ADMIN_ROLES)
    letters = await cad_deliveries.dead_letters(request.app[SERVICES_KEY])
    return web.json_response({"deliveries": [d.as_json() for d in letters]})


@routes.post(r"/api/admin/cad/deliveries/{delivery_id}/retry")
@documented(replies={200: Retried}, access=staff_change(ADMIN_ROLES))
async def retry_now(request: web.Request) -> web.StreamResponse:
    """One more try of a dead delivery, at once; audited."""
    staff = require_staff_change(request, ADMIN_ROLES)
    raw = request.match_info["delivery_id"]
    if not re.fullmatch(ID, raw):  # past the database's integer: none such either
        raise AppError(ErrorCode.DELIVERY_NOT_FOUND, "No such delivery")
    letter = await cad_deliveries.do_retry_now(request.app[SERVICES_KEY], staff, int(raw))
    return web.json_response({"delivery": letter.as_json()})
