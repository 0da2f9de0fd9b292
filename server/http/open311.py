"""Open311 GeoReport v2, in JSON and XML, so existing civic apps and libraries (FixMyStreet
among them) can read and post reports: discovery, services, requests, one request, a post, and
FixMyStreet's ``servicerequestupdates`` extension.

Service codes are the category codes; ``new``/``verifying``/``confirmed`` are ``open``, every
other status ``closed``; ``status_notes`` is the police's public note. A POST goes through the
same checks and the same daily limit as the map's form, unless it carries a partner's
``api_key`` (issued on /admin): then the key's own daily limit counts it, and the report names
the partner to staff; an unknown or revoked key is refused. ``address_string`` is kept beside
``lat``/``long`` and read back as ``address``; we locate by point only (no geocoder). A POST
skips the "is it one of these?" step (GeoReport has no way to ask it): the police see near
duplicates on their map. Reads need no key. Refusals come in the spec's error body
(``open311_formats``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from server.actions.threats import open311 as requests
from server.actions.threats.categories import active_codes
from server.actions.threats.citizens import PossibleDuplicates, do_submit_report
from server.actions.threats.open311_keys import check_api_key
from server.actions.threats.queries import public_position
from server.actions.threats.views import photo_urls, public_address, public_description
from server.core.errors import AppError, ErrorCode
from server.db.models import ThreatReport
from server.http.bodies import read_form
from server.http.keys import CATALOGS_KEY, SERVICES_KEY
from server.http.open311_formats import FORMATS, answer, georeport
from server.http.origin import site_base
from server.http.threats.forms import reporter_of, with_cookie

routes = web.RouteTableDef()

SERVICE_GROUP = "threats"
# The GeoReport v2 revision this endpoint follows (discovery's changeset).
SPEC_CHANGESET = "2011-04-05T00:00:00Z"


def _service_name(request: web.Request, code: str) -> str:
    return request.app[CATALOGS_KEY].gettext("en", f"category.{code}")


def service_request(
    request: web.Request, report: ThreatReport, photos: list[int]
) -> dict[str, Any]:
    assert report.id is not None
    lat, lon = public_position(report)
    urls = photo_urls(report.id, photos)
    base = site_base(request)
    return {
        "service_request_id": str(report.id),
        "status": requests.open311_status(report.status),
        "status_notes": report.public_note or "",
        "service_name": _service_name(request, report.category),
        "service_code": report.category,
        "description": public_description(report),
        "agency_responsible": "police",
        "service_notice": "",
        "requested_datetime": report.created_at.isoformat(),
        "updated_datetime": report.updated_at.isoformat(),
        "expected_datetime": None,
        "address": public_address(report),
        "address_id": "",
        "zipcode": "",
        "lat": lat,
        "long": lon,
        "media_url": f"{base}{urls[0]}" if urls else "",
    }


@routes.get(r"/open311/discovery.{format:" + FORMATS + "}")
@routes.get(r"/open311/v2/discovery.{format:" + FORMATS + "}")
@georeport
async def discovery(request: web.Request) -> web.StreamResponse:
    """Where the endpoint is and what it speaks (GeoReport v2's service discovery)."""
    body = {
        "changeset": SPEC_CHANGESET,
        "contact": "The police operations centre that runs this Lifeline",
        "key_service": (
            "Partner apps get an API key from the operations centre's administrator: a post "
            "with it is counted against the key's own daily limit, not the per-address one"
        ),
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": f"{site_base(request)}/open311/v2",
                "changeset": SPEC_CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return answer(request, body, root="discovery", item="discovery")


@routes.get(r"/open311/v2/services.{format:" + FORMATS + "}")
@georeport
async def service_list(request: web.Request) -> web.StreamResponse:
    codes = await active_codes(request.app[SERVICES_KEY])
    return answer(
        request,
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
        ],
        root="services",
        item="service",
    )


@routes.get(r"/open311/v2/requests.{format:" + FORMATS + "}")
@georeport
async def list_requests(request: web.Request) -> web.StreamResponse:
    found = await requests.find_service_requests(request.app[SERVICES_KEY], request.query)
    body = [service_request(request, r, photos) for r, photos in found]
    return answer(request, body, root="service_requests", item="request")


@routes.get(r"/open311/v2/requests/{report_id:\d+}.{format:" + FORMATS + "}")
@georeport
async def one_request(request: web.Request) -> web.StreamResponse:
    report, photos = await requests.service_request(
        request.app[SERVICES_KEY], int(request.match_info["report_id"])
    )
    body = [service_request(request, report, photos)]
    return answer(request, body, root="service_requests", item="request")


@routes.get(r"/open311/v2/servicerequestupdates.{format:" + FORMATS + "}")
@georeport
async def request_updates(request: web.Request) -> web.StreamResponse:
    """FixMyStreet's extension: each public change of a request's status, with its note."""
    found = await requests.service_request_updates(request.app[SERVICES_KEY], request.query)
    body = [
        {
            "update_id": str(change.id),
            "service_request_id": str(change.report_id),
            "status": requests.open311_status(change.to_status or ""),
            "updated_datetime": change.at.isoformat(),
            "description": change.public_note or "",
            "media_url": "",
        }
        for change in found
    ]
    return answer(request, body, root="service_request_updates", item="request_update")


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
        form = await read_form(request)
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raise AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send a form or JSON (GeoReport v2)")


@routes.post(r"/open311/v2/requests.{format:" + FORMATS + "}")
@georeport
async def post_request(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES_KEY]
    reporter = reporter_of(request)
    raw = await _post_fields(request)
    # Empty is none: a client with no key configured still sends the field.
    key = await check_api_key(services, raw["api_key"]) if raw.get("api_key") else None
    if not raw.get("lat") or not raw.get("long"):
        if raw.get("address_string") or raw.get("address_id"):
            # GeoReport allows an address instead of a point; we have no geocoder.
            raise AppError(
                ErrorCode.POINT_REQUIRED,
                "lat and long are required: this service locates a report by its point only "
                "(an address_string is kept beside lat and long, never looked up)",
            )
        raise AppError(ErrorCode.POINT_REQUIRED, "lat and long are required")
    contact = raw.get("email") or raw.get("phone") or ""
    fields = {
        "category": raw.get("service_code", ""),
        "lat": raw["lat"],
        "lon": raw["long"],
        "description": raw.get("description", ""),
        "contact": contact,
    }
    result = await do_submit_report(
        services,
        reporter=reporter,
        fields=fields,
        source="open311",
        check_duplicates=False,
        address=raw.get("address_string", ""),
        open311_key=key,
    )
    assert not isinstance(result, PossibleDuplicates)  # not asked for
    base = site_base(request)
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
    response = answer(request, body, root="service_requests", item="request", status=201)
    return with_cookie(request, reporter, response)
