"""What anyone may read of the threat map: the reports as GeoJSON or CSV, a public photo, and
what an author's private follow link shows. Never the contact, the internal notes, the sender's
address, or a sensitive report's exact position (``views``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from sqlalchemy.sql import Select
from sqlmodel import col, select

from server.actions.threats.lifecycle import check_statuses
from server.actions.threats.queries import (
    get_public_report,
    history_of,
    photo_row,
    photos_of,
    public_position,
    published,
    report_by_token,
)
from server.actions.threats.views import follow_view, public_feature, public_properties
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.map_grid import to_grid
from server.db.models import ReportPhoto, ThreatReport

MAX_PUBLIC_REPORTS = 50_000
_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
# Past any real map's count, and inside the database's integer.
MAX_OFFSET = 1_000_000_000
BBOX_HINT = "bbox: west,south,east,north in degrees, e.g. 76.8,43.2,77.0,43.3"
PAGE_HINT = f"limit: 1 to {MAX_PAGE}; offset: 0 to {MAX_OFFSET}"
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


def filtered(statement: _Query, query: Mapping[str, str]) -> _Query:
    """The public filters every view of the reports takes: ``status`` (comma-separated),
    ``category``, ``since``, ``until`` and ``bbox`` (west,south,east,north); never a report
    the public may not see (``published``)."""
    statement = statement.where(published())
    if query.get("status"):
        statement = statement.where(col(ThreatReport.status).in_(check_statuses(query["status"])))
    if query.get("category"):
        statement = statement.where(col(ThreatReport.category) == query["category"])
    if query.get("since"):
        statement = statement.where(col(ThreatReport.created_at) >= _since(query["since"]))
    if query.get("until"):
        statement = statement.where(col(ThreatReport.created_at) <= _since(query["until"]))
    if query.get("bbox"):
        (x0, y0), (x1, y1) = grid_box(query["bbox"])
        statement = statement.where(
            col(ThreatReport.grid_x).between(x0, x1), col(ThreatReport.grid_y).between(y0, y1)
        )
    return statement


def grid_box(value: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """A ``bbox`` as the grid's corners (north-west, south-east); a map panned past the
    antimeridian sends longitudes beyond 180, which clamp."""
    try:
        west, south, east, north = (float(part) for part in value.split(","))
    except ValueError:
        raise AppError(ErrorCode.INVALID_BBOX, BBOX_HINT) from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise AppError(ErrorCode.INVALID_BBOX, BBOX_HINT)
    if west > east or south > north or not (south >= -90 and north <= 90):
        raise AppError(ErrorCode.INVALID_BBOX, BBOX_HINT)
    return to_grid(north, west), to_grid(south, east)


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    try:
        limit = int(query.get("limit", DEFAULT_PAGE))
        offset = int(query.get("offset", 0))
    except ValueError:
        raise AppError(ErrorCode.INVALID_PAGE, PAGE_HINT) from None
    if not (1 <= limit <= MAX_PAGE) or not (0 <= offset <= MAX_OFFSET):
        raise AppError(ErrorCode.INVALID_PAGE, PAGE_HINT)
    return limit, offset


async def public_reports(
    services: Services, query: Mapping[str, str], limit: int = MAX_PUBLIC_REPORTS, offset: int = 0
) -> tuple[list[ThreatReport], dict[int, list[int]]]:
    """Reports newest first, filtered (``filtered``); with their photo numbers."""
    statement = filtered(select(ThreatReport), query)
    statement = (
        statement.order_by(col(ThreatReport.created_at).desc(), col(ThreatReport.id).desc())
        .offset(offset)
        .limit(limit)
    )
    async with services.db.session() as session:
        reports = list((await session.exec(statement)).all())
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    return reports, photos


async def public_map(services: Services, query: Mapping[str, str]) -> dict[str, Any]:
    """The reports as a GeoJSON FeatureCollection (RFC 7946), a page at a time: ``limit``
    (at most ``MAX_PAGE``) from ``offset``, and ``next``, the query of the page after, while
    there is one. The public map itself asks for clusters (``clusters``)."""
    limit, offset = _page(query)
    reports, photos = await public_reports(services, query, limit + 1, offset)
    now = services.clock.now()
    features = [public_feature(r, photos.get(r.id or 0, []), now) for r in reports[:limit]]
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if len(reports) > limit:
        collection["next"] = urlencode({**query, "limit": limit, "offset": offset + limit})
    return collection


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
    await get_public_report(services, report_id)
    return await photo_row(services, report_id, n)


async def followed_report(services: Services, token: str) -> dict[str, Any]:
    """What an author's follow link shows: the status, the public notes, an invitation."""
    report = await report_by_token(services, token)
    assert report.id is not None
    async with services.db.session() as session:
        history = (await history_of(session, [report.id])).get(report.id, [])
    return follow_view(report, history)
