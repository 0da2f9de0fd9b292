"""The police's report desk: the list, opening a report (the first look marks it read), a new
status, forwarding, inviting the author to a video call, a report made from a live call, and
the photos as sent.

Every change is one transaction (a status change one conditional UPDATE, ``WHERE status = <the
state it left>``, plus a history row and an audit entry), so two officers acting at once leave
one winner and a history that agrees with the report; only after it commits does every console
get ``report.updated`` (or ``report.new``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select

from server.actions.calls import check_call_for_staff
from server.actions.queue import last_location
from server.actions.staff_sessions import StaffContext
from server.actions.threats.categories import check_category
from server.actions.threats.fields import (
    MAX_DESCRIPTION_CHARS,
    MAX_INTERNAL_NOTE_CHARS,
    MAX_PUBLIC_NOTE_CHARS,
    ReportInput,
    check_point,
    check_text,
)
from server.actions.threats.lifecycle import (
    VERDICTS,
    check_forward_target,
    check_invitable,
    check_statuses,
    check_transition,
)
from server.actions.threats.queries import get_report, photo_row
from server.actions.threats.reports import do_create_report
from server.actions.threats.views import staff_view, staff_views
from server.core.errors import AppError, ErrorCode
from server.core.events import ReportUpdatedEvent, StaffReport
from server.core.services import Services
from server.db.map_grid import report_grid
from server.db.models import ReportHistory, ReportPhoto, ThreatReport

MAX_STAFF_REPORTS = 5_000
DEFAULT_STAFF_REPORTS = 1000
MAX_AGE_DAYS = 36_600


async def _updated(services: Services, report: ThreatReport) -> StaffReport:
    """After a stored change: tell every console, and give the view to answer with."""
    view = await staff_view(services, report)
    await services.notifier.to_report_desks(ReportUpdatedEvent(report=view))
    return view


# --- reading ---------------------------------------------------------------------------------


def _int_filter(query: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AppError(ErrorCode.INVALID, f"{name} must be a whole number") from None
    if not 0 <= value <= high:
        raise AppError(ErrorCode.INVALID, f"{name} must be 0..{high}")
    return value


async def list_reports(services: Services, query: Mapping[str, str]) -> list[StaffReport]:
    """The desk's list, newest first, filtered by the query's ``status`` (comma-separated),
    ``category``, ``max_age_days``, ``bbox`` (min_lon,min_lat,max_lon,max_lat) and ``limit``."""
    now = services.clock.now()
    statement = select(ThreatReport)
    if query.get("status"):
        statement = statement.where(col(ThreatReport.status).in_(check_statuses(query["status"])))
    if query.get("category"):
        statement = statement.where(col(ThreatReport.category) == query["category"])
    if query.get("max_age_days"):
        days = _int_filter(query, "max_age_days", 0, MAX_AGE_DAYS)
        statement = statement.where(col(ThreatReport.created_at) >= now - timedelta(days=days))
    if query.get("bbox"):
        try:
            min_lon, min_lat, max_lon, max_lat = (float(p) for p in query["bbox"].split(","))
        except ValueError:
            raise AppError(
                ErrorCode.INVALID_BBOX, "bbox: min_lon,min_lat,max_lon,max_lat"
            ) from None
        statement = statement.where(
            col(ThreatReport.lat).between(min_lat, max_lat),
            col(ThreatReport.lon).between(min_lon, max_lon),
        )
    limit = _int_filter(query, "limit", DEFAULT_STAFF_REPORTS, MAX_STAFF_REPORTS)
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(limit)
    async with services.db.session() as session:
        reports = list((await session.exec(statement)).all())
    return await staff_views(services, reports, now)


async def do_open_report(services: Services, *, report_id: int, staff: StaffContext) -> StaffReport:
    """One report; the first officer to open it marks it read (KMZB's 2-day target), and only
    then do the consoles hear of it."""
    await get_report(services, report_id)
    audit = services.audit
    async with audit.transaction() as session:
        result = await session.exec(
            update(ThreatReport)
            .where(col(ThreatReport.id) == report_id, col(ThreatReport.read_at).is_(None))
            .values(read_at=services.clock.now())
        )
        marked = result.rowcount == 1
        if marked:
            await audit.record(
                session, actor=staff.username, action="report_read", subject=f"report:{report_id}"
            )
    report = await get_report(services, report_id)
    if marked:
        return await _updated(services, report)
    return await staff_view(services, report)


async def do_view_original_photo(
    services: Services, *, report_id: int, n: int, staff: StaffContext
) -> ReportPhoto:
    """The photo as sent (EXIF included): evidence, for staff, every view audited."""
    photo = await photo_row(services, report_id, n)
    await services.audit.append(
        actor=staff.username,
        action="report_photo_viewed",
        subject=f"report:{report_id}",
        data={"n": photo.n, "sha256": photo.sha256},
    )
    return photo


# --- changing ----------------------------------------------------------------------------------


async def do_change_status(
    services: Services,
    *,
    report_id: int,
    staff: StaffContext,
    status: str,
    public_note: str = "",
    internal_note: str = "",
    sensitive: bool | None = None,
) -> StaffReport:
    """A new status (only along ``TRANSITIONS``), with its notes; a verdict stamps the verified
    time, and any change the read time if nobody had opened the report yet."""
    public_note = check_text(public_note, "public_note", MAX_PUBLIC_NOTE_CHARS)
    internal_note = check_text(internal_note, "internal_note", MAX_INTERNAL_NOTE_CHARS)
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        old = report.status
        check_transition(old, status)
        values: dict[str, object] = {"status": status, "updated_at": now}
        if public_note:
            values["public_note"] = public_note
        if sensitive is not None:
            values["sensitive"] = sensitive
            values["grid_x"], values["grid_y"] = report_grid(report.lat, report.lon, sensitive)
        if report.read_at is None:
            values["read_at"] = now
        if status in VERDICTS:
            values["verified_at"] = now
        result = await session.exec(
            update(ThreatReport)
            .where(col(ThreatReport.id) == report_id, col(ThreatReport.status) == old)
            .values(**values)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.REPORT_CHANGED, "The report changed meanwhile; reload it")
        session.add(
            ReportHistory(
                report_id=report_id,
                kind="status",
                actor=staff.username,
                from_status=old,
                to_status=status,
                public_note=public_note or None,
                internal_note=internal_note or None,
                at=now,
            )
        )
        await audit.record(
            session,
            actor=staff.username,
            action="report_status",
            subject=f"report:{report_id}",
            data={"from": old, "to": status, "sensitive": sensitive},
        )
        await session.refresh(report)
    return await _updated(services, report)


async def do_forward(
    services: Services, *, report_id: int, staff: StaffContext, to: str, note: str = ""
) -> StaffReport:
    """Hand the matter to another authority (a road authority, the city guard): a history row,
    not a status; the report stays the police's to verify."""
    note = check_text(note, "note", MAX_INTERNAL_NOTE_CHARS)
    check_forward_target(to)
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        values: dict[str, object] = {"updated_at": now}
        if report.read_at is None:
            values["read_at"] = now
        await session.exec(
            update(ThreatReport).where(col(ThreatReport.id) == report_id).values(**values)
        )
        session.add(
            ReportHistory(
                report_id=report_id,
                kind="forward",
                actor=staff.username,
                forwarded_to=to,
                internal_note=note or None,
                at=now,
            )
        )
        await audit.record(
            session,
            actor=staff.username,
            action="report_forwarded",
            subject=f"report:{report_id}",
            data={"to": to},
        )
        await session.refresh(report)
    return await _updated(services, report)


async def do_invite(services: Services, *, report_id: int, staff: StaffContext) -> StaffReport:
    """Invite the author to a video call: stamp ``invited_at``, a history row, an audit entry;
    their follow page then offers the call.

    Inviting again is allowed (the author may have missed it) and moves ``invited_at`` on.
    """
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        check_invitable(report)
        values: dict[str, object] = {"invited_at": now, "updated_at": now}
        if report.read_at is None:
            values["read_at"] = now
        await session.exec(
            update(ThreatReport).where(col(ThreatReport.id) == report_id).values(**values)
        )
        session.add(ReportHistory(report_id=report_id, kind="invite", actor=staff.username, at=now))
        await audit.record(
            session,
            actor=staff.username,
            action="report_author_invited",
            subject=f"report:{report_id}",
        )
        await session.refresh(report)
    return await _updated(services, report)


async def do_report_from_call(
    services: Services,
    *,
    call_id: str,
    staff: StaffContext,
    category: str,
    description: str = "",
) -> StaffReport:
    """A live call becomes a threat report at the caller's last known position; only the
    call's own operator (or a supervisor) may make it, and it is read from the start. The
    caller never chose to publish it: the public sees it only once an officer has given a
    verdict (``queries.published``), and then only at its rounded point (sensitive)."""
    call = await check_call_for_staff(services, call_id, staff, must_own=True)
    async with services.db.session() as session:
        last = await last_location(session, call.id)
    if last is None:
        raise AppError(ErrorCode.NO_LOCATION, "The caller has sent no location")
    check_point(last.lat, last.lon, services.settings.report_area)
    report = ReportInput(
        category=await check_category(services, category),
        lat=last.lat,
        lon=last.lon,
        description=check_text(description, "description", MAX_DESCRIPTION_CHARS),
    )
    created = await do_create_report(
        services,
        report=report,
        source="call",
        actor=staff.username,
        call_id=call.id,
        created_by=staff.user_id,
        with_token=False,
        sensitive=True,
    )
    return created.view
