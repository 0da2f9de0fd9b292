"""What each audience sees of a report, and the live events (pydantic models with a ``type``).

Staff see everything; the public never sees the contact, the internal notes, the address the
report came from, or a sensitive report's exact position.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from server.actions.threats.reports import SENSITIVE_DECIMALS, Nearby, overdue_read, overdue_verify
from server.core.events import HistoryItem, StaffReport
from server.db.models import ReportHistory, ReportStatus, ThreatReport

log = logging.getLogger("lifeline.threats")


def photo_urls(report_id: int, numbers: list[int]) -> list[str]:
    return [f"/api/reports/{report_id}/photos/{n}" for n in numbers]


def public_position(report: ThreatReport) -> tuple[float, float]:
    if report.sensitive:
        return round(report.lat, SENSITIVE_DECIMALS), round(report.lon, SENSITIVE_DECIMALS)
    return report.lat, report.lon


def public_description(report: ThreatReport) -> str:
    # A joke's text may be abuse: the public sees that it was one, not what it said.
    return "" if report.status == ReportStatus.JOKE_OR_MISTAKE else report.description


def staff_report(
    report: ThreatReport, photos: list[int], history: list[ReportHistory], now: datetime
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
        "distance_m": round(found.distance_m, 1),
        "lat": lat,
        "lon": lon,
    }
