"""What anyone may read of the threat map: the reports as GeoJSON or CSV, a public photo, and
what an author's private follow link shows. Never the contact, the internal notes, the sender's
address, or a sensitive report's exact position (``views``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from server.actions.threats.lifecycle import check_statuses
from server.actions.threats.queries import (
    history_of,
    photo_row,
    photos_of,
    public_position,
    report_by_token,
)
from server.actions.threats.views import follow_view, public_feature, public_properties
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import ReportPhoto, ThreatReport

MAX_PUBLIC_REPORTS = 50_000
CSV_COLUMNS = (
    "id",
    "category",
    "status",
    "lat",
    "lon",
    "created_at",
    "updated_at",
    "confirmations",
    "days",
    "time_of_day",
    "overdue_read",
    "overdue_verify",
    "photos",
    "public_note",
    "description",
)


def _since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise AppError(
            ErrorCode.INVALID_SINCE, "since: an ISO 8601 date or time, e.g. 2026-11-01"
        ) from None
    return since if since.tzinfo is not None else since.replace(tzinfo=UTC)


async def public_reports(
    services: Services, query: Mapping[str, str], limit: int = MAX_PUBLIC_REPORTS
) -> tuple[list[ThreatReport], dict[int, list[int]]]:
    """Reports newest first, filtered by the query's ``status`` (comma-separated),
    ``category``, ``since`` and ``until``; with their photo numbers."""
    statement = select(ThreatReport)
    if query.get("status"):
        statement = statement.where(col(ThreatReport.status).in_(check_statuses(query["status"])))
    if query.get("category"):
        statement = statement.where(col(ThreatReport.category) == query["category"])
    if query.get("since"):
        statement = statement.where(col(ThreatReport.created_at) >= _since(query["since"]))
    if query.get("until"):
        statement = statement.where(col(ThreatReport.created_at) <= _since(query["until"]))
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(limit)
    async with services.db.session() as session:
        reports = list((await session.exec(statement)).all())
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    return reports, photos


async def public_map(services: Services, query: Mapping[str, str]) -> dict[str, Any]:
    """The map's layer: a GeoJSON FeatureCollection (RFC 7946)."""
    reports, photos = await public_reports(services, query)
    now = services.clock.now()
    features = [public_feature(r, photos.get(r.id or 0, []), now) for r in reports]
    return {"type": "FeatureCollection", "features": features}


def _cell(value: object) -> object:
    """Spreadsheets run a cell that starts with = + - @ as a formula: make it text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


async def public_csv(services: Services, query: Mapping[str, str]) -> str:
    """The same reports as a spreadsheet: one row each, no cell a spreadsheet would run."""
    reports, photos = await public_reports(services, query)
    now = services.clock.now()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        props = public_properties(report, photos.get(report.id or 0, []), now)
        props["lat"], props["lon"] = public_position(report)
        props["days"] = ",".join(props["days"])
        props["photos"] = len(props["photos"])
        writer.writerow([_cell(props[c]) for c in CSV_COLUMNS])
    return out.getvalue()


async def public_photo(services: Services, *, report_id: int, n: int) -> ReportPhoto:
    """The photo's row, for its public copy (re-encoded, without EXIF); the original is for
    staff only (``desk.do_view_original_photo``)."""
    return await photo_row(services, report_id, n)


async def followed_report(services: Services, token: str) -> dict[str, Any]:
    """What an author's follow link shows: the status, the public notes, an invitation."""
    report = await report_by_token(services, token)
    assert report.id is not None
    async with services.db.session() as session:
        history = (await history_of(session, [report.id])).get(report.id, [])
    return follow_view(report, history)
