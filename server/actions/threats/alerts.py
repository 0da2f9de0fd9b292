"""Confirmed threats as alerts that warning systems can take (CAP 1.2 in an Atom feed).

Only what the public map already shows goes out: reports an officer has confirmed (a report
made from a call is published by that verdict, ``queries.published``), at their public point
(a sensitive one rounded), with their public description and note. Never the contact, the
internal notes or the sender's address. Each alert is one version of one report: a report
confirmed again later, or given a new public note, is a new alert that references the last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from server.actions.threats.queries import (
    SENSITIVE_DISTANCE_GRAIN_M,
    is_published,
    public_position,
    published,
)
from server.actions.threats.views import public_description
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import ReportStatus, ThreatReport

DEFAULT_ALERTS = 100
MAX_ALERTS = 500
ALERTS_HINT = f"limit: 1 to {MAX_ALERTS}"
# The radius of an alert's circle: how far the reported place may be from its public point.
EXACT_RADIUS_M = 50


@dataclass(frozen=True)
class ThreatAlert:
    report_id: int
    category: str
    description: str
    public_note: str | None
    lat: float
    lon: float
    radius_m: int
    confirmed_at: datetime  # the verdict: when the alert was first true
    updated_at: datetime  # this version of it

    @property
    def version(self) -> int:
        """Distinguishes one version of a report's alert from the next (seconds since epoch)."""
        return int(self.updated_at.timestamp())


def _limit(query: Mapping[str, str]) -> int:
    try:
        limit = int(query.get("limit", DEFAULT_ALERTS))
    except ValueError:
        raise AppError(ErrorCode.INVALID_PAGE, ALERTS_HINT) from None
    if not 1 <= limit <= MAX_ALERTS:
        raise AppError(ErrorCode.INVALID_PAGE, ALERTS_HINT)
    return limit


async def confirmed_alerts(services: Services, query: Mapping[str, str]) -> list[ThreatAlert]:
    """The newest confirmed reports first, ``limit`` of them (at most MAX_ALERTS)."""
    limit = _limit(query)
    statement = (
        select(ThreatReport)
        .where(col(ThreatReport.status) == ReportStatus.CONFIRMED.value, published())
        .order_by(col(ThreatReport.updated_at).desc(), col(ThreatReport.id).desc())
        .limit(limit)
    )
    async with services.db.session() as session:
        reports = (await session.exec(statement)).all()
    return [_alert(report) for report in reports]


async def confirmed_alert(services: Services, report_id: int) -> ThreatAlert:
    """One report's alert; a report not confirmed (or not public) has none."""
    async with services.db.session() as session:
        report = await session.get(ThreatReport, report_id)
    if report is None or report.status != ReportStatus.CONFIRMED or not is_published(report):
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No confirmed report with this id")
    return _alert(report)


def _alert(report: ThreatReport) -> ThreatAlert:
    assert report.id is not None
    lat, lon = public_position(report)
    return ThreatAlert(
        report_id=report.id,
        category=report.category,
        description=public_description(report),
        public_note=report.public_note,
        lat=lat,
        lon=lon,
        radius_m=SENSITIVE_DISTANCE_GRAIN_M if report.sensitive else EXACT_RADIUS_M,
        confirmed_at=report.verified_at or report.updated_at,
        updated_at=report.updated_at,
    )
