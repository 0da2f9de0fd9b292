"""What each audience sees of a report: the console's full view (the live events carry it),
the public map's, the nearby list's, and the author's follow page.

Staff see everything; the public never sees the contact, the internal notes, the address the
report came from, the Open311 partner that sent it, or a sensitive report's exact position (nor
the street address a partner named for it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.actions.threats.lifecycle import overdue_read, overdue_verify
from server.actions.threats.queries import (
    SENSITIVE_DISTANCE_GRAIN_M,
    Nearby,
    history_of,
    partners_of,
    photos_of,
    public_position,
)
from server.core.events import HistoryItem, StaffReport
from server.core.services import Services
from server.db.models import ReportHistory, ReportStatus, ThreatReport


def photo_urls(report_id: int, numbers: list[int]) -> list[str]:
    return [f"/api/reports/{report_id}/photos/{n}" for n in numbers]


def public_description(report: ThreatReport) -> str:
    # A joke's text may be abuse: the public sees that it was one, not what it said.
    return "" if report.status == ReportStatus.JOKE_OR_MISTAKE else report.description


def public_address(report: ThreatReport) -> str:
    """The address a partner named, as Open311 readers see it: none for a sensitive report
    (it would give away the point the map rounds) or a joke (its text may be abuse)."""
    if report.sensitive or report.status == ReportStatus.JOKE_OR_MISTAKE:
        return ""
    return report.address or ""


def staff_report(
    report: ThreatReport,
    photos: list[int],
    history: list[ReportHistory],
    now: datetime,
    partner: str | None = None,
) -> StaffReport:
    assert report.id is not None
    return StaffReport(
        id=report.id,
        category=report.category,
        status=ReportStatus(report.status).value,
        lat=report.lat,
        lon=report.lon,
        description=report.description,
        days=[d for d in report.days.split(",") if d],
        time_of_day=report.time_of_day,
        contact=report.contact,
        sensitive=report.sensitive,
        public_note=report.public_note,
        confirmations=report.confirmations,
        source=report.source,
        call_id=report.call_id,
        photos=photo_urls(report.id, photos),
        created_at=report.created_at,
        updated_at=report.updated_at,
        read_at=report.read_at,
        verified_at=report.verified_at,
        invited_at=report.invited_at,
        overdue_read=overdue_read(report, now),
        overdue_verify=overdue_verify(report, now),
        history=[HistoryItem.model_validate(h, from_attributes=True) for h in history],
        address=report.address,
        partner=partner,
    )


def public_properties(report: ThreatReport, photos: list[int], now: datetime) -> dict[str, Any]:
    assert report.id is not None
    return {
        "id": report.id,
        "category": report.category,
        "status": report.status,
        "description": public_description(report),
        "created_at": report.created_at.isoformat(),
        "updated_at": report.updated_at.isoformat(),
        "confirmations": report.confirmations,
        "public_note": report.public_note,
        "photos": photo_urls(report.id, photos),
        "days": [d for d in report.days.split(",") if d],
        "time_of_day": report.time_of_day,
        "overdue_read": overdue_read(report, now),
        "overdue_verify": overdue_verify(report, now),
    }


def public_feature(report: ThreatReport, photos: list[int], now: datetime) -> dict[str, Any]:
    lat, lon = public_position(report)
    return {
        "type": "Feature",
        "id": report.id,
        # GeoJSON (RFC 7946) puts longitude first.
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": public_properties(report, photos, now),
    }


def nearby_item(found: Nearby) -> dict[str, Any]:
    report = found.report
    lat, lon = public_position(report)
    return {
        "id": report.id,
        "category": report.category,
        "status": report.status,
        "description": public_description(report),
        "created_at": report.created_at.isoformat(),
        "confirmations": report.confirmations,
        # A sensitive report's distance is no finer than its public point.
        "distance_m": (
            round(found.distance_m / SENSITIVE_DISTANCE_GRAIN_M) * SENSITIVE_DISTANCE_GRAIN_M
            if report.sensitive
            else round(found.distance_m, 1)
        ),
        "lat": lat,
        "lon": lon,
    }


async def staff_views(
    services: Services, reports: Sequence[ThreatReport], now: datetime
) -> list[StaffReport]:
    """The console's view of many reports, their photos, history and partners read in a query
    each."""
    ids = [r.id for r in reports if r.id is not None]
    key_ids = {r.open311_key_id for r in reports if r.open311_key_id is not None}
    async with services.db.session() as session:
        photos = await photos_of(session, ids)
        history = await history_of(session, ids)
        partners = await partners_of(session, key_ids)
    return [
        staff_report(
            r,
            photos.get(r.id or 0, []),
            history.get(r.id or 0, []),
            now,
            partners.get(r.open311_key_id) if r.open311_key_id is not None else None,
        )
        for r in reports
    ]


async def staff_view(services: Services, report: ThreatReport) -> StaffReport:
    """The console's view of one report, as of now: what a change answers and emits."""
    return (await staff_views(services, [report], services.clock.now()))[0]


def follow_view(report: ThreatReport, history: Sequence[ReportHistory]) -> dict[str, Any]:
    """What the citizen's private link shows: the status and the police's public notes."""
    return {
        "id": report.id,
        "category": report.category,
        "status": report.status,
        "public_note": report.public_note,
        "created_at": report.created_at.isoformat(),
        # An officer asked the author to call: the page offers the video call.
        "invited": report.invited_at is not None,
        "history": [
            {"status": h.to_status, "public_note": h.public_note, "at": h.at.isoformat()}
            for h in history
            if h.kind in ("created", "status")
        ],
    }
