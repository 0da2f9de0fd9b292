"""HTTP side of the threat map for citizens and the public: the categories, a report and its
nearby duplicates, "me too", the map (GeoJSON, CSV), public photos, the follow link, stats.

Each handler reads the request, calls one action, and shapes its answer.
"""

from __future__ import annotations

from aiohttp import web

from server.actions.threats import citizens, clusters, public
from server.actions.threats.categories import active_codes
from server.actions.threats.queries import DUPLICATE_RADIUS_M
from server.actions.threats.stats import compute_stats
from server.core.errors import ErrorCode
from server.http.keys import PAGES_KEY, SERVICES_KEY
from server.http.openapi import File, Form, Json, documented
from server.http.origin import check_same_origin
from server.http.path_ids import ID
from server.http.threats import replies
from server.http.threats.forms import (
    ReportForm,
    read_report_form,
    report_id_of,
    reporter_of,
    with_cookie,
)
from server.http.uploads import stored_file_response

routes = web.RouteTableDef()

TOKEN_PATTERN = r"[A-Za-z0-9_-]{20,64}"
PUBLIC_PHOTO_CACHE = "public, max-age=3600"
# RFC 7946's media type.
GEOJSON = "application/geo+json"


# --- citizens ---------------------------------------------------------------------------------


@routes.get("/api/report-categories")
@documented(replies={200: replies.Categories})
async def categories(request: web.Request) -> web.StreamResponse:
    reporter = reporter_of(request)
    codes = await active_codes(request.app[SERVICES_KEY])
    response = web.json_response({"categories": [{"code": c} for c in codes]})
    return with_cookie(request, reporter, response)


@routes.post("/api/reports")
@documented(
    body=Form(ReportForm),
    replies={201: replies.ReportCreated, 409: replies.PossibleDuplicate},
)
async def create_report(request: web.Request) -> web.StreamResponse:
    check_same_origin(request)
    services = request.app[SERVICES_KEY]
    reporter = reporter_of(request)
    fields, files = await read_report_form(request, services.settings.MAX_REPORT_PHOTOS_BYTES)
    result = await citizens.do_submit_report(
        services,
        reporter=reporter,
        fields=fields,
        photos=files,
        source="web",
        check_duplicates=fields.get("duplicate_ok", "").strip().lower() not in ("1", "true"),
    )
    if isinstance(result, citizens.PossibleDuplicates):
        # Not a plain refusal: it carries the reports to confirm instead, and the citizen's cookie.
        code = ErrorCode.POSSIBLE_DUPLICATE
        refusal = {
            "error": {
                "code": code.value,
                "message": f"Reports of this kind are open within {DUPLICATE_RADIUS_M:.0f} m: "
                "confirm one of them, or send again with duplicate_ok=1",
            },
            "nearby": result.nearby,
        }
        return with_cookie(request, reporter, web.json_response(refusal, status=code.status))
    body = {
        "id": result.report.id,
        "status": result.report.status,
        "follow_url": f"/reports/follow/{result.token}",
    }
    return with_cookie(request, reporter, web.json_response(body, status=201))


@routes.get("/api/reports/nearby")
@documented(query=replies.NearbyQuery, replies={200: replies.Nearby})
async def nearby(request: web.Request) -> web.StreamResponse:
    query = request.query
    found = await citizens.find_nearby(
        request.app[SERVICES_KEY],
        lat=query.get("lat", ""),
        lon=query.get("lon", ""),
        category=query.get("category", ""),
    )
    return web.json_response({"nearby": found})


@routes.post(r"/api/reports/{report_id:" + ID + "}/confirm")
@documented(replies={200: replies.Confirmed})
async def confirm(request: web.Request) -> web.StreamResponse:
    check_same_origin(request)
    reporter = reporter_of(request)
    report_id = report_id_of(request)
    count = await citizens.do_confirm(
        request.app[SERVICES_KEY], report_id=report_id, reporter=reporter
    )
    return with_cookie(
        request, reporter, web.json_response({"id": report_id, "confirmations": count})
    )


# --- the public -------------------------------------------------------------------------------


@routes.get("/api/reports")
@documented(query=replies.MapPage, replies={200: Json(replies.ReportCollection, GEOJSON)})
async def reports_geojson(request: web.Request) -> web.StreamResponse:
    reply = await public.public_map(request.app[SERVICES_KEY], request.query)
    return web.json_response(reply, content_type=GEOJSON)


@routes.get("/api/reports/clusters")
@documented(query=replies.ClusterQuery, replies={200: Json(replies.ClusterCollection, GEOJSON)})
async def reports_clusters(request: web.Request) -> web.StreamResponse:
    reply = await clusters.clusters(request.app[SERVICES_KEY], request.query)
    return web.json_response(reply, content_type=GEOJSON)


@routes.get("/api/reports.csv")
@documented(query=replies.CsvQuery, replies={200: File(("text/csv",))})
async def reports_csv(request: web.Request) -> web.StreamResponse:
    text = await public.public_csv(request.app[SERVICES_KEY], request.query)
    # With a byte order mark by default, or Excel on Windows reads the UTF-8 as its own code
    # page (Polish and Cyrillic as mojibake); ``plain=1`` for tools that take it as data.
    plain = request.query.get("plain") == "1"
    return web.Response(
        text=text if plain else "\ufeff" + text,
        charset="utf-8",
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="reports.csv"'},
    )


@routes.get(r"/api/reports/{report_id:" + ID + "}/photos/{n:" + ID + "}")
@documented(replies={200: File(("image/jpeg",))})
async def public_photo(request: web.Request) -> web.StreamResponse:
    """The public copy: re-encoded, without EXIF. The original is for staff only."""
    services = request.app[SERVICES_KEY]
    photo = await public.public_photo(
        services, report_id=report_id_of(request), n=int(request.match_info["n"])
    )
    return await stored_file_response(
        services.storage,
        photo.public_path,
        "image/jpeg",
        photo.public_sha256,
        cache=PUBLIC_PHOTO_CACHE,
    )


@routes.get(r"/api/reports/follow/{token:" + TOKEN_PATTERN + "}")
@documented(replies={200: replies.FollowedReport})
async def follow_json(request: web.Request) -> web.StreamResponse:
    view = await public.followed_report(request.app[SERVICES_KEY], request.match_info["token"])
    return web.json_response(view)


@routes.get(r"/reports/follow/{token:" + TOKEN_PATTERN + "}")
async def follow_page(request: web.Request) -> web.StreamResponse:
    view = await public.followed_report(request.app[SERVICES_KEY], request.match_info["token"])
    response = request.app[PAGES_KEY].render(request, "report_follow.html", report=view)
    # The link is a capability: keep it out of caches and of other sites' Referer.
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/api/stats")
@documented(replies={200: replies.MapStats})
async def stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(await compute_stats(request.app[SERVICES_KEY]))
