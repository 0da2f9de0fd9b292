"""Open311 GeoReport v2 (JSON), so existing civic apps and libraries can read and post reports.

Service codes are the category codes; ``new``/``verifying``/``confirmed`` are ``open``, every
other status ``closed``; ``status_notes`` is the police's public note. A POST goes through the
same checks and the same daily limit as the map's form. It skips the "is it one of these?" step
(GeoReport has no way to ask it): the police see near duplicates on their map.
Errors keep Lifeline's shape (``{"error": {"code", "message"}}``, CONTRACT.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlmodel import col, select

from server.actions.threats.categories import active_codes
from server.actions.threats.reports import OPEN_STATUSES, check_report_fields, get_report, photos_of
from server.actions.threats.views import photo_urls, public_description, public_position
from server.core.errors import AppError, ErrorCode
from server.db.models import ThreatReport
from server.http.keys import CATALOGS_KEY, SERVICES_KEY
from server.http.threats import reporter_of, submit_report, with_cookie

routes = web.RouteTableDef()

# GeoReport v2: at most 1000 requests per answer.
MAX_REQUESTS = 1000
SERVICE_GROUP = "threats"


def open311_status(status: str) -> str:
    return "open" if status in OPEN_STATUSES else "closed"


def _service_name(request: web.Request, code: str) -> str:
    return request.app[CATALOGS_KEY].gettext("en", f"category.{code}")


def service_request(
    request: web.Request, report: ThreatReport, photos: list[int]
) -> dict[str, Any]:
    assert report.id is not None
    lat, lon = public_position(report)
    urls = photo_urls(report.id, photos)
    base = request.app[SERVICES_KEY].settings.PUBLIC_URL or f"{request.scheme}://{request.host}"
    return {
        "service_request_id": str(report.id),
        "status": open311_status(report.status),
        "status_notes": report.public_note or "",
        "service_name": _service_name(request, report.category),
        "service_code": report.category,
        "description": public_description(report),
        "agency_responsible": "police",
        "service_notice": "",
        "requested_datetime": report.created_at.isoformat(),
        "updated_datetime": report.updated_at.isoformat(),
        "expected_datetime": None,
        "address": "",
        "address_id": "",
        "zipcode": "",
        "lat": lat,
        "long": lon,
        "media_url": f"{base}{urls[0]}" if urls else "",
    }


@routes.get("/open311/v2/services.json")
async def services(request: web.Request) -> web.StreamResponse:
    codes = await active_codes(request.app[SERVICES_KEY].db)
    return web.json_response(
        [
            {
                "service_code": code,
                "service_name": _service_name(request, code),
                "description": "",
                "metadata": False,
                "type": "realtime",
                "keywords": "",
                "group": SERVICE_GROUP,
            }
            for code in codes
        ]
    )


def _date(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AppError(
            ErrorCode.INVALID_DATE, f"{name}: a W3C date-time, e.g. 2026-11-01T00:00:00Z"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@routes.get("/open311/v2/requests.json")
async def list_requests(request: web.Request) -> web.StreamResponse:
    query = request.query
    statement = select(ThreatReport)
    if query.get("service_request_id"):
        try:
            ids = [int(p) for p in query["service_request_id"].split(",") if p.strip()]
        except ValueError:
            raise AppError(ErrorCode.INVALID_REQUEST_ID, "service_request_id: numbers") from None
        statement = statement.where(col(ThreatReport.id).in_(ids))
    if query.get("service_code"):
        codes = [c.strip() for c in query["service_code"].split(",") if c.strip()]
        statement = statement.where(col(ThreatReport.category).in_(codes))
    status = query.get("status", "")
    if status == "open":
        statement = statement.where(col(ThreatReport.status).in_(OPEN_STATUSES))
    elif status == "closed":
        statement = statement.where(col(ThreatReport.status).not_in(OPEN_STATUSES))
    elif status:
        raise AppError(ErrorCode.INVALID_STATUS, "status: open or closed")
    if query.get("start_date"):
        statement = statement.where(
            col(ThreatReport.created_at) >= _date(query["start_date"], "start_date")
        )
    if query.get("end_date"):
        statement = statement.where(
            col(ThreatReport.created_at) <= _date(query["end_date"], "end_date")
        )
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(MAX_REQUESTS)
    db = request.app[SERVICES_KEY].db
    async with db.session() as session:
        reports = list((await session.exec(statement)).all())
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    return web.json_response(
        [service_request(request, r, photos.get(r.id or 0, [])) for r in reports]
    )


@routes.get(r"/open311/v2/requests/{report_id:\d+}.json")
async def one_request(request: web.Request) -> web.StreamResponse:
    db = request.app[SERVICES_KEY].db
    report = await get_report(db, int(request.match_info["report_id"]))
    async with db.session() as session:
        photos = await photos_of(session, [int(request.match_info["report_id"])])
    return web.json_response([service_request(request, report, photos.get(report.id or 0, []))])


async def _post_fields(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        try:
            raw = await request.json()
        except ValueError:
            raise AppError(ErrorCode.MALFORMED_JSON, "The body is not valid JSON") from None
        if not isinstance(raw, dict):
            raise AppError(ErrorCode.INVALID, "Send a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raise AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send a form or JSON (GeoReport v2)")


@routes.post("/open311/v2/requests.json")
async def post_request(request: web.Request) -> web.StreamResponse:
    settings = request.app[SERVICES_KEY].settings
    reporter = reporter_of(request)
    raw = await _post_fields(request)
    if not raw.get("lat") or not raw.get("long"):
        # GeoReport also allows an address or an address_id; we have no geocoder.
        raise AppError(ErrorCode.POINT_REQUIRED, "lat and long are required")
    contact = raw.get("email") or raw.get("phone") or ""
    fields = {
        "category": raw.get("service_code", ""),
        "lat": raw["lat"],
        "lon": raw["long"],
        "description": raw.get("description", ""),
        "contact": contact,
    }
    report = check_report_fields(fields, settings.report_area)
    result = await submit_report(
        request, reporter, report, [], source="open311", check_duplicates=False
    )
    assert not isinstance(result, list)
    base = settings.PUBLIC_URL or f"{request.scheme}://{request.host}"
    body = [
        {
            "service_request_id": str(result.report.id),
            "service_notice": (
                "Not for emergencies: call 112. Follow this report privately at "
                f"{base}/reports/follow/{result.token}"
            ),
            "account_id": None,
        }
    ]
    return with_cookie(request, reporter, web.json_response(body, status=201))
