"""What a message thread can become: a video call (an invite link, texted or posted in the
thread) or a threat report at the position the citizen shared."""

from __future__ import annotations

from collections.abc import Callable

from server.actions import invites, threads
from server.actions.access import REPORT_DESK_ROLES
from server.actions.staff_sessions import StaffContext
from server.actions.threats.categories import check_category
from server.actions.threats.fields import (
    MAX_DESCRIPTION_CHARS,
    ReportInput,
    check_point,
    check_text,
)
from server.actions.threats.reports import do_create_report
from server.core.errors import AppError, ErrorCode
from server.core.events import StaffReport, ThreadSummary
from server.core.services import Services


async def do_invite_to_call(
    services: Services,
    *,
    thread_id: str,
    staff: StaffContext,
    phone: str | None,
    base_url: str,
    sms_text: Callable[[str], str],
    thread_text: Callable[[str], str],
) -> tuple[invites.NewInvite, threads.StoredMessage]:
    """An invite to a video call with this operator: texted to ``phone`` when given, and
    always posted in the thread (``thread_text(link)``), where the citizen taps it."""
    thread = await threads.check_holder(services, thread_id, staff)
    made = await invites.do_create_invite(
        services,
        staff,
        phone=phone,
        language=thread.language,
        base_url=base_url,
        message=sms_text,
    )
    posted = await threads.do_post(
        services,
        thread,
        client_id=f"invite-{made.invite.id}",
        body=thread_text(made.link),
        staff=staff,
    )
    await services.audit.append(
        actor=staff.username,
        action="thread_invited",
        subject=f"thread:{thread.id}",
        data={"invite_id": made.invite.id, "by_sms": phone is not None},
    )
    return made, posted


async def do_report_from_thread(
    services: Services,
    *,
    thread_id: str,
    staff: StaffContext,
    category: str,
    description: str,
) -> tuple[StaffReport, ThreadSummary]:
    """A threat report at the thread's shared position, read from the start, kept with it.
    Only the report desks' roles make one: the misconduct channel has no public map."""
    if staff.role not in REPORT_DESK_ROLES:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Your role does not make threat reports")
    thread = await threads.check_holder(services, thread_id, staff)
    if thread.lat is None or thread.lon is None:
        raise AppError(ErrorCode.NO_LOCATION, "The citizen has shared no location")
    check_point(thread.lat, thread.lon, services.settings.report_area)
    report = ReportInput(
        category=await check_category(services, category),
        lat=thread.lat,
        lon=thread.lon,
        description=check_text(description, "description", MAX_DESCRIPTION_CHARS),
    )
    created = await do_create_report(
        services,
        report=report,
        source="thread",
        actor=staff.username,
        created_by=staff.user_id,
        with_token=False,
    )
    summary = await threads.do_link_report(
        services, thread_id=thread.id, staff=staff, report_id=created.view.id
    )
    return created.view, summary
