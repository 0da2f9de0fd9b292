"""A new report, whoever makes it (a citizen's form, Open311, an officer from a call): stored with
its photos, its first history row and its audit entry in one transaction, and only then shown
on every console (``report.new``).

The checks belong to the ways in (``citizens.do_submit_report``, ``desk.do_report_from_call``):
this is the write they end in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from server.actions.threats.fields import ReportInput
from server.actions.threats.open311_keys import take_key_room
from server.actions.threats.photos import PreparedPhoto, store_photos
from server.actions.threats.views import staff_view
from server.core.events import ReportNewEvent, StaffReport
from server.core.services import Services
from server.db.models import (
    Open311Key,
    ReportConfirmation,
    ReportHistory,
    ReportPhoto,
    ReportStatus,
    ThreatReport,
)
from server.security.tokens import new_token, token_hash


@dataclass(frozen=True)
class NewReport:
    report: ThreatReport
    # The author's follow link's token, shown once (only its hash is stored); None from a call.
    token: str | None
    view: StaffReport


async def do_create_report(
    services: Services,
    *,
    report: ReportInput,
    photos: Sequence[PreparedPhoto] = (),
    source: str = "web",
    remote: str = "",
    client_key: str | None = None,
    actor: str = "citizen",
    call_id: str | None = None,
    created_by: int | None = None,
    with_token: bool = True,
    sensitive: bool = False,
    open311_key: Open311Key | None = None,
) -> NewReport:
    """Store a report, its photos and its first history row, and audit it, in one transaction;
    then tell the report desks.

    The reporter's own client key is recorded as a confirmation, so "me too" on one's own
    report does not count. A partner's report (``open311_key``) takes a place of the key's
    day in the same transaction, or is refused.
    """
    now = services.clock.now()
    token = new_token() if with_token else None
    row = ThreatReport(
        category=report.category,
        status=ReportStatus.NEW,
        lat=report.lat,
        lon=report.lon,
        description=report.description,
        days=",".join(report.days),
        time_of_day=report.time_of_day,
        contact=report.contact,
        sensitive=sensitive,
        source=source,
        call_id=call_id,
        created_by=created_by,
        follow_token_hash=token_hash(token) if token else None,
        remote=remote[:64],
        created_at=now,
        updated_at=now,
        # An officer who makes a report from a call has read it.
        read_at=now if created_by is not None else None,
        open311_key_id=open311_key.id if open311_key is not None else None,
        address=report.address,
    )
    audit = services.audit
    async with audit.transaction() as session:
        if open311_key is not None:
            await take_key_room(session, open311_key, now)
        session.add(row)
        await session.flush()
        assert row.id is not None
        keys = await asyncio.to_thread(store_photos, services.storage, row.id, photos)
        for n, (photo, (original, public)) in enumerate(zip(photos, keys, strict=True), 1):
            session.add(
                ReportPhoto(
                    report_id=row.id,
                    n=n,
                    original_path=original,
                    content_type=photo.original.content_type,
                    sha256=photo.original.sha256,
                    size_bytes=len(photo.original.data),
                    public_path=public,
                    public_sha256=photo.public_sha256,
                    width=photo.original.width,
                    height=photo.original.height,
                    at=now,
                )
            )
        session.add(
            ReportHistory(
                report_id=row.id,
                kind="created",
                actor=actor,
                to_status=ReportStatus.NEW,
                at=now,
            )
        )
        if client_key:
            session.add(ReportConfirmation(report_id=row.id, client_key=client_key, at=now))
        data: dict[str, object] = {
            "category": row.category,
            "source": source,
            "remote": remote,
            "call_id": call_id,
            "photos": [p.original.sha256 for p in photos],
        }
        if open311_key is not None:
            data["open311_key"] = open311_key.id
        await audit.record(
            session, actor=actor, action="report_created", subject=f"report:{row.id}", data=data
        )
    view = await staff_view(services, row)
    await services.notifier.to_report_desks(ReportNewEvent(report=view))
    return NewReport(row, token, view)
