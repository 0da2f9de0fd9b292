"""Reads of reports that several actions share: one report, its photos and history (for many
reports in a few queries), a "me too" already given, and the open reports near a point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.threats.lifecycle import OPEN_STATUSES
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.map_grid import SENSITIVE_DECIMALS, public_point
from server.db.models import (
    Open311Key,
    ReportConfirmation,
    ReportHistory,
    ReportPhoto,
    ThreatReport,
)
from server.security.tokens import token_hash

DUPLICATE_RADIUS_M = 50.0
NEARBY_LIMIT = 20
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE_LAT = 111_320.0
# An IN (...) list goes in chunks: a database caps the parameters of one query.
_IN_CHUNK = 1000


@dataclass(frozen=True)
class Nearby:
    report: ThreatReport
    distance_m: float


def published() -> ColumnElement[bool]:
    """What the public may see of the reports at all: every one but a report made from a call
    that no officer has given a verdict on yet (a caller never chose to publish it)."""
    return or_(col(ThreatReport.source) != "call", col(ThreatReport.verified_at).is_not(None))


def is_published(report: ThreatReport) -> bool:
    return report.source != "call" or report.verified_at is not None


async def get_public_report(services: Services, report_id: int) -> ThreatReport:
    """A report the public may see; one it may not is "no such report", as if it did not exist."""
    report = await get_report(services, report_id)
    if not is_published(report):
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
    return report


async def get_report(services: Services, report_id: int) -> ThreatReport:
    async with services.db.session() as session:
        report = await session.get(ThreatReport, report_id)
    if report is None:
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
    return report


async def report_by_token(services: Services, token: str) -> ThreatReport:
    """The report a follow link opens: the link's token is stored only as a hash."""
    async with services.db.session() as session:
        report = (
            await session.exec(
                select(ThreatReport).where(col(ThreatReport.follow_token_hash) == token_hash(token))
            )
        ).first()
    if report is None:
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
    return report


async def partners_of(session: AsyncSession, key_ids: set[int]) -> dict[int, str]:
    """The partner's name of each Open311 key (a page of reports names a handful)."""
    if not key_ids:
        return {}
    rows = (
        await session.exec(
            select(Open311Key.id, Open311Key.partner).where(col(Open311Key.id).in_(key_ids))
        )
    ).all()
    return {key_id: partner for key_id, partner in rows if key_id is not None}


async def photos_of(session: AsyncSession, report_ids: Sequence[int]) -> dict[int, list[int]]:
    """Photo numbers per report, for many reports in one query."""
    found: dict[int, list[int]] = {}
    if not report_ids:
        return found
    ids = list(report_ids)
    for start in range(0, len(ids), _IN_CHUNK):
        rows = (
            await session.exec(
                select(ReportPhoto.report_id, ReportPhoto.n)
                .where(
                    col(ReportPhoto.report_id).in_(ids[start : start + _IN_CHUNK]),
                    col(ReportPhoto.purged_at).is_(None),  # deleted by retention
                )
                .order_by(col(ReportPhoto.report_id), col(ReportPhoto.n))
            )
        ).all()
        for report_id, n in rows:
            found.setdefault(report_id, []).append(n)
    return found


async def history_of(
    session: AsyncSession, report_ids: Sequence[int]
) -> dict[int, list[ReportHistory]]:
    """History rows per report, oldest first, for many reports in one query."""
    found: dict[int, list[ReportHistory]] = {}
    ids = list(report_ids)
    for start in range(0, len(ids), _IN_CHUNK):
        rows = (
            await session.exec(
                select(ReportHistory)
                .where(col(ReportHistory.report_id).in_(ids[start : start + _IN_CHUNK]))
                .order_by(col(ReportHistory.id))
            )
        ).all()
        for row in rows:
            found.setdefault(row.report_id, []).append(row)
    return found


async def photo_row(services: Services, report_id: int, n: int) -> ReportPhoto:
    async with services.db.session() as session:
        photo = (
            await session.exec(
                select(ReportPhoto).where(
                    col(ReportPhoto.report_id) == report_id, col(ReportPhoto.n) == n
                )
            )
        ).first()
    if photo is None:
        raise AppError(ErrorCode.PHOTO_NOT_FOUND, "No such photo")
    if photo.purged_at is not None:
        raise AppError(
            ErrorCode.EVIDENCE_PURGED,
            "Deleted when its retention ended (the audit chain keeps its hash)",
        )
    return photo


async def has_confirmed(services: Services, report_id: int, client_key: str) -> bool:
    async with services.db.session() as session:
        found = (
            await session.exec(
                select(ReportConfirmation).where(
                    col(ReportConfirmation.report_id) == report_id,
                    col(ReportConfirmation.client_key) == client_key,
                )
            )
        ).first()
    return found is not None


# Three decimals of a degree: ~111 m of latitude, less of longitude away from the equator.
SENSITIVE_DISTANCE_GRAIN_M = 100
# Half the rounding step, in degrees: how far a public point may be from the exact one.
_ROUNDING_SLACK_DEG = 0.5 * 10**-SENSITIVE_DECIMALS


def public_position(report: ThreatReport) -> tuple[float, float]:
    """Where the public may know a report is: a sensitive one's point is rounded, and every
    public answer about it (the map, nearby reports, their distances) starts from there."""
    return public_point(report.lat, report.lon, report.sensitive)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


async def nearby_open(
    services: Services,
    category: str,
    lat: float,
    lon: float,
    radius_m: float = DUPLICATE_RADIUS_M,
) -> list[Nearby]:
    """Open reports of ``category`` within ``radius_m`` of their public point, nearest first: a
    bounding box in SQL (widened by the rounding of sensitive points), the distance in Python.
    Whether a sensitive report is "near" is decided from its rounded point too, or enough
    queries around it would locate it exactly."""
    dlat = radius_m / METRES_PER_DEGREE_LAT + _ROUNDING_SLACK_DEG
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01) + _ROUNDING_SLACK_DEG
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(ThreatReport).where(
                    published(),
                    col(ThreatReport.category) == category,
                    col(ThreatReport.status).in_(OPEN_STATUSES),
                    col(ThreatReport.lat).between(lat - dlat, lat + dlat),
                    col(ThreatReport.lon).between(lon - dlon, lon + dlon),
                )
            )
        ).all()
    found = [Nearby(r, haversine_m(lat, lon, *public_position(r))) for r in rows]
    found = [n for n in found if n.distance_m <= radius_m]
    found.sort(key=lambda n: n.distance_m)
    return found[:NEARBY_LIMIT]
