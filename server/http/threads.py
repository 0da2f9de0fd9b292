"""HTTP side of message threads: the citizen's thread (by its token, header ``X-Thread-Token``)
and the console's Messages tab (staff sessions; writes carry the CSRF token)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.actions import call_limits, thread_handoffs, threads
from server.actions.access import ANSWER_ROLES, CONSOLE_ROLES, REPORT_DESK_ROLES
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.events import (
    ChannelName,
    StaffReport,
    ThreadMessageEvent,
    ThreadStateName,
    ThreadSummary,
)
from server.db.models import InviteSms
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_form, read_json
from server.http.calls import DEVICE_COOKIE
from server.http.client_address import client_address
from server.http.keys import CATALOGS_KEY, PAGES_KEY, SERVICES_KEY
from server.http.openapi import THREAD_TOKEN, File, Form, documented, staff, staff_change
from server.http.origin import site_base
from server.http.path_ids import ID
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()
THREAD_TOKEN_HEADER = "X-Thread-Token"
NO_STORE = {"Cache-Control": "no-store"}

ClientId = Annotated[str, StringConstraints(min_length=8, max_length=64, pattern=r"^[\w-]+$")]
Body = Annotated[str, StringConstraints(max_length=threads.MAX_BODY_CHARS)]


class CreateThreadBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    channel: ChannelName = "police"
    language: str = "en"
    contact: Annotated[str, StringConstraints(max_length=threads.MAX_CONTACT_CHARS)] | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    accuracy: float | None = Field(default=None, ge=0, le=1_000_000)


class MessageBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    client_id: ClientId
    body: Body


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    disposition: Annotated[str, StringConstraints(max_length=64)]
    note: Annotated[str, StringConstraints(max_length=threads.MAX_NOTE_CHARS)] | None = None


class InviteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    phone: Annotated[str, StringConstraints(max_length=32)] | None = None


class ReportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    category: Annotated[str, StringConstraints(max_length=64)]
    description: Annotated[str, StringConstraints(max_length=500)] = ""


class AttachmentForm(BaseModel):
    """A photo or clip in ``file``, the message's ``client_id``, an optional text."""

    file: bytes
    client_id: ClientId
    body: Body = ""


class ThreadCreated(BaseModel):
    """The new thread and its capability token (``X-Thread-Token``; Socket.IO ``/thread``)."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str
    token: str
    state: ThreadStateName
    channel: ChannelName
    created_at: datetime


class AfterQuery(BaseModel):
    after: Annotated[str, StringConstraints(pattern=f"^{ID}$")] | None = Field(
        default=None, description="The last sequence number the page has"
    )


class CitizenThread(BaseModel):
    """The thread's state and its messages after ``after``."""

    model_config = ConfigDict(extra="forbid")
    thread_id: str
    state: ThreadStateName
    channel: ChannelName
    messages: list[ThreadMessageEvent]


class StoredMessage(ThreadMessageEvent):
    """The message as stored; ``duplicate``: its ``client_id`` was stored already (200)."""

    duplicate: bool


class ThreadList(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threads: list[ThreadSummary]


class ThreadDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread: ThreadSummary
    messages: list[ThreadMessageEvent]


class ThreadChanged(BaseModel):
    model_config = ConfigDict(extra="forbid")
    thread: ThreadSummary


class ThreadInvite(BaseModel):
    """The invite's link, whether it was texted, and its message's place in the thread."""

    model_config = ConfigDict(extra="forbid")
    invite_id: str
    link: str
    sms: InviteSms
    seq: int


class ThreadReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report: StaffReport
    thread: ThreadSummary


READ = staff(CONSOLE_ROLES)
CHANGE = staff_change(CONSOLE_ROLES)
# What only the thread's holder does: those who claim threads (supervisors monitor).
HOLDER = staff_change(ANSWER_ROLES)
ATTACHMENTS = ("image/jpeg", "image/png", "image/webp", "video/mp4", "video/webm")


def _stored(stored: threads.StoredMessage, name: str | None = None) -> web.StreamResponse:
    event = threads.message_event(stored.message, name)
    return web.json_response(
        {"seq": stored.message.seq, "duplicate": stored.duplicate, **event.model_dump(mode="json")},
        status=200 if stored.duplicate else 201,
    )


async def _citizen_thread(request: web.Request) -> Any:
    return await threads.check_citizen_thread(
        request.app[SERVICES_KEY],
        request.headers.get(THREAD_TOKEN_HEADER, ""),
        request.match_info["thread_id"],
    )


# --- the citizen's page ------------------------------------------------------------------------


@routes.get("/thread")
async def thread_page(request: web.Request) -> web.StreamResponse:
    return request.app[PAGES_KEY].render(request, "thread.html")


@routes.post("/api/threads")
@documented(body=CreateThreadBody, replies={201: ThreadCreated})
async def create_thread(request: web.Request) -> web.StreamResponse:
    """Never a 429: a citizen over the rate limit gets a thread marked suspected_abuse."""
    services = request.app[SERVICES_KEY]
    body: CreateThreadBody = await read_json(request, CreateThreadBody)
    if (body.lat is None) != (body.lon is None):
        raise AppError(ErrorCode.INVALID, "lat and lon: both or neither")
    address = client_address(request)
    network = call_limits.network_of(address)
    device = call_limits.device_of(services, request.cookies.get(DEVICE_COOKIE, ""))
    over = await threads.over_thread_limit(services, call_limits.Caller(network, device))
    created = await threads.do_create_thread(
        services,
        channel=body.channel,
        language=body.language,
        contact=body.contact,
        location=(body.lat, body.lon, body.accuracy)
        if body.lat is not None and body.lon is not None
        else None,
        remote=address or "unknown",
        marks=("suspected_abuse",) if over else (),
    )
    thread = created.thread
    return web.json_response(
        {
            "thread_id": thread.id,
            "token": created.token,
            "state": thread.state,
            "channel": thread.channel,
            "created_at": thread.created_at.isoformat(),
        },
        status=201,
        headers=NO_STORE,
    )


@routes.get(r"/api/threads/{thread_id}/messages")
@documented(query=AfterQuery, replies={200: CitizenThread}, access=THREAD_TOKEN)
async def citizen_messages(request: web.Request) -> web.StreamResponse:
    """The thread's state and its messages after ``?after=`` (a reload, a reconnect)."""
    thread = await _citizen_thread(request)
    after = request.query.get("after", "0")
    if not re.fullmatch(ID, after):
        raise AppError(ErrorCode.INVALID, "after: a sequence number")
    messages = await threads.messages_since(request.app[SERVICES_KEY], thread.id, int(after))
    return web.json_response(
        {
            "thread_id": thread.id,
            "state": thread.state,
            "channel": thread.channel,
            "messages": [m.model_dump(mode="json") for m in messages],
        },
        headers=NO_STORE,
    )


@routes.post(r"/api/threads/{thread_id}/messages")
@documented(body=MessageBody, replies={200: StoredMessage, 201: StoredMessage}, access=THREAD_TOKEN)
async def citizen_message(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    thread = await _citizen_thread(request)
    body: MessageBody = await read_json(request, MessageBody)
    await threads.check_citizen_quota(services, thread, 0)
    stored = await threads.do_post(services, thread, client_id=body.client_id, body=body.body)
    return _stored(stored)


@routes.post(r"/api/threads/{thread_id}/attachments")
@documented(
    body=Form(AttachmentForm),
    replies={200: StoredMessage, 201: StoredMessage},
    access=THREAD_TOKEN,
)
async def citizen_attachment(request: web.Request) -> web.StreamResponse:
    """A photo or video clip (multipart field ``file``, sniffed by content) with an optional
    text (field ``body``) and the message's ``client_id``."""
    services = request.app[SERVICES_KEY]
    thread = await _citizen_thread(request)
    if not request.content_type.startswith("multipart/"):
        raise AppError(ErrorCode.CLIP_REQUIRED, "Send multipart/form-data: file, client_id")
    form = await read_form(request)
    field, client_id, text = form.get("file"), form.get("client_id"), form.get("body", "")
    if not isinstance(field, web.FileField):
        raise AppError(ErrorCode.CLIP_REQUIRED, "Send the photo or clip in the field 'file'")
    parsed = MessageBody.model_validate(
        {"client_id": client_id, "body": text if isinstance(text, str) else ""}
    )
    data = field.file.read()
    await threads.check_citizen_quota(services, thread, len(data))
    attachment = await threads.sniff_attachment(services, data)
    stored = await threads.do_post(
        services, thread, client_id=parsed.client_id, body=parsed.body, attachment=attachment
    )
    return _stored(stored)


@routes.get(r"/api/threads/{thread_id}/attachments/{seq:" + ID + "}")
@documented(replies={200: File(ATTACHMENTS)}, access=THREAD_TOKEN | READ)
async def attachment_file(request: web.Request) -> web.StreamResponse:
    """For the thread's token holder, or staff whose role sees its channel."""
    services = request.app[SERVICES_KEY]
    thread_id = request.match_info["thread_id"]
    if THREAD_TOKEN_HEADER in request.headers:
        await _citizen_thread(request)
    else:
        staff = require_staff(request, CONSOLE_ROLES)
        await threads.check_thread_for_staff(services, thread_id, staff)
    message = await threads.attachment_of(services, thread_id, int(request.match_info["seq"]))
    assert message.path is not None and message.content_type and message.sha256
    return await stored_file_response(
        services.storage, message.path, message.content_type, message.sha256
    )


# --- the console's Messages tab -----------------------------------------------------------------


def _staff_change(request: web.Request) -> StaffContext:
    return require_staff_change(request, CONSOLE_ROLES)


@routes.get("/api/threads")
@documented(replies={200: ThreadList}, access=READ)
async def thread_list(request: web.Request) -> web.StreamResponse:
    staff = require_staff(request, CONSOLE_ROLES)
    listed = await threads.list_threads(request.app[SERVICES_KEY], staff)
    return web.json_response(
        {"threads": [t.model_dump(mode="json") for t in listed]}, headers=NO_STORE
    )


@routes.get(r"/api/threads/{thread_id}")
@documented(replies={200: ThreadDetail}, access=READ)
async def thread_detail(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = require_staff(request, CONSOLE_ROLES)
    thread = await threads.check_thread_for_staff(services, request.match_info["thread_id"], staff)
    listed = await threads.list_one(services, thread)
    messages = await threads.messages_since(services, thread.id, 0)
    return web.json_response(
        {
            "thread": listed.model_dump(mode="json"),
            "messages": [m.model_dump(mode="json") for m in messages],
        },
        headers=NO_STORE,
    )


@routes.post(r"/api/threads/{thread_id}/claim")
@documented(replies={200: ThreadChanged}, access=HOLDER)
async def claim(request: web.Request) -> web.StreamResponse:
    staff = _staff_change(request)
    summary = await threads.do_claim(
        request.app[SERVICES_KEY], thread_id=request.match_info["thread_id"], staff=staff
    )
    return web.json_response({"thread": summary.model_dump(mode="json")})


@routes.post(r"/api/threads/{thread_id}/read")
@documented(replies={200: ThreadChanged}, access=CHANGE)
async def read(request: web.Request) -> web.StreamResponse:
    staff = _staff_change(request)
    summary = await threads.do_read(
        request.app[SERVICES_KEY], thread_id=request.match_info["thread_id"], staff=staff
    )
    return web.json_response({"thread": summary.model_dump(mode="json")})


@routes.post(r"/api/threads/{thread_id}/reply")
@documented(body=MessageBody, replies={200: StoredMessage, 201: StoredMessage}, access=HOLDER)
async def reply(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    staff = _staff_change(request)
    body: MessageBody = await read_json(request, MessageBody)
    thread = await threads.check_holder(services, request.match_info["thread_id"], staff)
    stored = await threads.do_post(
        services, thread, client_id=body.client_id, body=body.body, staff=staff
    )
    return _stored(stored, staff.username)


@routes.post(r"/api/threads/{thread_id}/close")
@documented(body=CloseBody, replies={200: ThreadChanged}, access=HOLDER)
async def close(request: web.Request) -> web.StreamResponse:
    staff = _staff_change(request)
    body: CloseBody = await read_json(request, CloseBody)
    summary = await threads.do_close(
        request.app[SERVICES_KEY],
        thread_id=request.match_info["thread_id"],
        staff=staff,
        disposition=body.disposition,
        note=body.note,
    )
    return web.json_response({"thread": summary.model_dump(mode="json")})


@routes.post(r"/api/threads/{thread_id}/invite")
@documented(body=InviteBody, replies={201: ThreadInvite}, access=HOLDER)
async def invite(request: web.Request) -> web.StreamResponse:
    """A video-call invite: texted when a phone number is given, always posted in the thread."""
    services = request.app[SERVICES_KEY]
    staff = _staff_change(request)
    body: InviteBody = await read_json(request, InviteBody)
    catalogs = request.app[CATALOGS_KEY]
    settings = services.settings
    minutes = max(1, settings.INVITE_TTL_SECS // 60)
    thread = await threads.check_thread_for_staff(services, request.match_info["thread_id"], staff)

    def sms_text(link: str) -> str:
        return catalogs.gettext(thread.language, "invite.sms", link=link, minutes=minutes)

    def thread_text(link: str) -> str:
        return catalogs.gettext(thread.language, "thread.invite_text", link=link, minutes=minutes)

    made, posted = await thread_handoffs.do_invite_to_call(
        services,
        thread_id=thread.id,
        staff=staff,
        phone=body.phone or None,
        base_url=site_base(request),
        sms_text=sms_text,
        thread_text=thread_text,
    )
    return web.json_response(
        {
            "invite_id": made.invite.id,
            "link": made.link,
            "sms": made.invite.sms,
            "seq": posted.message.seq,
        },
        status=201,
        headers=NO_STORE,
    )


@routes.post(r"/api/threads/{thread_id}/report")
@documented(
    body=ReportBody,
    replies={201: ThreadReport},
    access=staff_change(ANSWER_ROLES & REPORT_DESK_ROLES),
)
async def report(request: web.Request) -> web.StreamResponse:
    staff = _staff_change(request)
    body: ReportBody = await read_json(request, ReportBody)
    made, summary = await thread_handoffs.do_report_from_thread(
        request.app[SERVICES_KEY],
        thread_id=request.match_info["thread_id"],
        staff=staff,
        category=body.category,
        description=body.description,
    )
    return web.json_response(
        {"report": made.model_dump(mode="json"), "thread": summary.model_dump(mode="json")},
        status=201,
    )
