"""The threat map as Open311 GeoReport v2 sees it: service requests are reports, found by the
protocol's own filters (ids, service codes, ``open``/``closed``, W3C date-times).

``new``/``verifying``/``confirmed`` are ``open``, every other status ``closed``. A POST is a
citizen's report like any other (``citizens.do_submit_report``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from server.actions.threats.lifecycle import OPEN_STATUSES
from server.actions.threats.queries import get_public_report, photos_of, published
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import ReportHistory, ThreatReport

# GeoReport v2: at most 1000 requests per answer, the last 90 days unless a window is asked.
MAX_REQUESTS = 1000
DEFAULT_WINDOW = timedelta(days=90)

ServiceRequests = list[tuple[ThreatReport, list[int]]]
"""Reports with their photo numbers, newest first."""


def open311_status(status: str) -> str:
    return "open" if status in OPEN_STATUSES else "closed"


def _date(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError(
            ErrorCode.INVALID_DATE, f"{name}: a W3C date-time, e.g. 2026-11-01T00:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _window(services: Services, query: Mapping[str, str]) -> tuple[datetime, datetime]:
    """``start_date`` to ``end_date``; the spec's default is the 90 days before the end (or
    before now), and a window of more than 90 days is the client's to ask for in full."""
    end = _date(query["end_date"], "end_date") if query.get("end_date") else services.clock.now()
    if query.get("start_date"):
        start = _date(query["start_date"], "start_date")
    else:
        start = end - DEFAULT_WINDOW
    return start, end


async def find_service_requests(services: Services, query: Mapping[str, str]) -> ServiceRequests:
    """GET requests: filtered by ``service_request_id`` and ``service_code`` (both
    comma-separated), ``status`` (``open``, ``closed``, or both), ``start_date`` and
    ``end_date`` (the last 90 days unless asked); at most 1,000, newest first. Asked by id,
    a request is found whatever its date."""
    statement = select(ThreatReport).where(published())
    if query.get("service_request_id"):
        try:
            ids = [int(p) for p in query["service_request_id"].split(",") if p.strip()]
        except ValueError:
            raise AppError(ErrorCode.INVALID_REQUEST_ID, "service_request_id: numbers") from None
        statement = statement.where(col(ThreatReport.id).in_(ids))
    if query.get("service_code"):
        codes = [c.strip() for c in query["service_code"].split(",") if c.strip()]
        statement = statement.where(col(ThreatReport.category).in_(codes))
    wanted = {part.strip() for part in query.get("status", "").split(",") if part.strip()}
    if wanted - {"open", "closed"}:
        raise AppError(ErrorCode.INVALID_STATUS, "status: open, closed, or both comma-separated")
    if wanted == {"open"}:
        statement = statement.where(col(ThreatReport.status).in_(OPEN_STATUSES))
    elif wanted == {"closed"}:
        statement = statement.where(col(ThreatReport.status).not_in(OPEN_STATUSES))
    if not query.get("service_request_id"):
        start, end = _window(services, query)
        statement = statement.where(col(ThreatReport.created_at).between(start, end))
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(MAX_REQUESTS)
    async with services.db.session() as session:
        reports = list((await session.exec(statement)).all())
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    return [(r, photos.get(r.id or 0, [])) for r in reports]


async def service_request(services: Services, report_id: int) -> tuple[ThreatReport, list[int]]:
    """GET requests/<id>.json: one report with its photo numbers."""
    report = await get_public_report(services, report_id)
    async with services.db.session() as session:
        photos = await photos_of(session, [report_id])
    return report, photos.get(report.id or 0, [])


async def service_request_updates(
    services: Services, query: Mapping[str, str]
) -> list[ReportHistory]:
    """FixMyStreet's ``servicerequestupdates``: each status change of a public request in the
    window (``start_date`` to ``end_date``, the last 90 days unless asked), oldest first."""
    start, end = _window(services, query)
    statement = (
        select(ReportHistory)
        .join(ThreatReport, col(ThreatReport.id) == col(ReportHistory.report_id))
        .where(
            published(),
            col(ReportHistory.kind) == "status",
            col(ReportHistory.at).between(start, end),
        )
        .order_by(col(ReportHistory.at), col(ReportHistory.id))
        .limit(MAX_REQUESTS)
    )
    async with services.db.session() as session:
        return list((await session.exec(statement)).all())
