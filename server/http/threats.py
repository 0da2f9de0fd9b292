"""HTTP side of the threat map: citizens report and confirm, the public reads, the police verify.

Handlers are thin: they parse, call ``check_*``/``do_*`` in ``reports``, then emit.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from server.actions.calls import check_call_for_staff
from server.actions.queue import last_location
from server.actions.threats.categories import (
    active_codes,
    all_categories,
    check_category,
    do_save_category,
)
from server.actions.threats.photos import PreparedPhoto, prepare_photo
from server.actions.threats.reports import (
    MAX_DESCRIPTION_CHARS,
    MAX_INTERNAL_NOTE_CHARS,
    MAX_PHOTOS,
    MAX_PUBLIC_NOTE_CHARS,
    ReportInput,
    check_point,
    check_report_fields,
    check_text,
    do_change_status,
    do_confirm,
    do_create_report,
    do_forward,
    do_invite,
    do_mark_read,
    get_report,
    has_confirmed,
    history_of,
    nearby_open,
    parse_coordinate,
    photo_row,
    photos_of,
    report_by_token,
)
from server.actions.threats.stats import compute_stats
from server.actions.threats.views import (
    nearby_item,
    public_feature,
    public_position,
    public_properties,
    staff_report,
)
from server.core.errors import AppError, ErrorCode
from server.core.events import ReportNewEvent, ReportUpdatedEvent, StaffReport
from server.db.engine import Database
from server.db.models import ReportStatus, Role, ThreatReport
from server.http.admin import read_json
from server.http.auth.access import ADMIN_ROLES, require_staff
from server.http.auth.csrf import check_csrf
from server.http.keys import PAGES_KEY, SERVICES_KEY
from server.security.tokens import new_token, token_hash
from server.state.ratelimit import parse_rules

routes = web.RouteTableDef()

REPORT_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR})
REPORTER_COOKIE = "lifeline_reporter"
REPORTER_COOKIE_MAX_AGE_SECS = 365 * 86_400
REPORT_FIELDS = frozenset(
    {"category", "lat", "lon", "description", "days", "time_of_day", "contact", "duplicate_ok"}
)
MAX_FIELD_BYTES = 4096
MAX_FORM_PARTS = 16
READ_CHUNK_BYTES = 64 * 1024
MAX_PUBLIC_REPORTS = 50_000
MAX_STAFF_REPORTS = 5_000
TOKEN_PATTERN = r"[A-Za-z0-9_-]{20,64}"


# --- the citizen as a client: address and cookie ----------------------------------------------


@dataclass(frozen=True)
class Reporter:
    """Who is asking, as far as a service without accounts can tell: the address and a cookie."""

    remote: str
    cookie: str
    minted: bool

    @property
    def cookie_key(self) -> str:
        return f"c:{token_hash(self.cookie)[:40]}"

    @property
    def keys(self) -> tuple[str, str]:
        return f"ip:{self.remote}", self.cookie_key


def reporter_of(request: web.Request) -> Reporter:
    cookie = request.cookies.get(REPORTER_COOKIE, "")
    if 20 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum():
        return Reporter(request.remote or "unknown", cookie, minted=False)
    return Reporter(request.remote or "unknown", new_token(), minted=True)


def with_cookie(request: web.Request, reporter: Reporter, response: web.Response) -> web.Response:
    if reporter.minted:
        response.set_cookie(
            REPORTER_COOKIE,
            reporter.cookie,
            max_age=REPORTER_COOKIE_MAX_AGE_SECS,
            httponly=True,
            samesite="Lax",
            secure=request.app[SERVICES_KEY].settings.cookies_secure,
            path="/",
        )
    return response


async def check_limits(request: web.Request, setting: str, scope: str, keys: Iterable[str]) -> None:
    """Refuse (429) if any key is over the limit, without counting this request: a refused
    report must not use up the day's one report."""
    limiter = MovingWindowRateLimiter(request.app[SERVICES_KEY].limits.storage)
    for rule in parse_rules(setting):
        for key in keys:
            if not await limiter.test(rule, scope, key):
                raise AppError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many: at most {rule} from one client. Call 112 if this is an emergency.",
                    data={"headers": {"Retry-After": str(rule.get_expiry())}},
                )


async def hit_limits(request: web.Request, setting: str, scope: str, keys: Iterable[str]) -> None:
    rules = parse_rules(setting)
    for key in keys:
        await request.app[SERVICES_KEY].limits.hit(rules, scope, key)


# --- reading the report form ------------------------------------------------------------------


async def _read_part(part: BodyPartReader, limit: int, too_big: AppError) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise too_big
    return bytes(data)


async def read_report_form(
    request: web.Request, max_photo_bytes: int
) -> tuple[dict[str, str], list[bytes]]:
    """Text fields and photos of a multipart (or urlencoded) form, streamed with limits."""
    if request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        plain = {k: v for k, v in form.items() if isinstance(v, str)}
        _check_names(plain)
        return plain, []
    if request.content_type != "multipart/form-data":
        raise AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the report as multipart/form-data")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    photos: list[bytes] = []
    total = 0
    for _index in range(MAX_FORM_PARTS + 1):
        part = await reader.next()
        if part is None:
            return fields, photos
        if not isinstance(part, BodyPartReader):
            raise AppError(ErrorCode.BAD_FORM, "Nested multipart bodies are not accepted")
        name = part.name or ""
        if name == "photos":
            data = await _read_part(
                part,
                max_photo_bytes - total,
                AppError(
                    ErrorCode.PHOTOS_TOO_LARGE,
                    f"Photos are larger than {max_photo_bytes // 1_048_576} MB in total",
                ),
            )
            if not data and not part.filename:
                continue  # a file input left empty
            photos.append(data)
            total += len(data)
            if len(photos) > MAX_PHOTOS:
                raise AppError(ErrorCode.TOO_MANY_PHOTOS, f"At most {MAX_PHOTOS} photos")
            continue
        _check_names({name: ""})
        raw = await _read_part(
            part, MAX_FIELD_BYTES, AppError(ErrorCode.INVALID, f"{name} is too long")
        )
        try:
            fields[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AppError(ErrorCode.INVALID, f"{name} is not UTF-8 text") from None
    raise AppError(ErrorCode.BAD_FORM, "Too many parts in the form")


def _check_names(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - REPORT_FIELDS)
    if unknown:
        raise AppError(ErrorCode.UNKNOWN_FIELD, f"Unknown field {unknown[0]!r}")


async def prepare_photos(files: Sequence[bytes]) -> list[PreparedPhoto]:
    return [await asyncio.to_thread(prepare_photo, data) for data in files]


# --- views over many reports ------------------------------------------------------------------


async def staff_reports(
    db: Database, reports: Sequence[ThreatReport], now: datetime
) -> list[StaffReport]:
    ids = [r.id for r in reports if r.id is not None]
    async with db.session() as session:
        photos = await photos_of(session, ids)
        history = await history_of(session, ids)
    return [
        staff_report(r, photos.get(r.id or 0, []), history.get(r.id or 0, []), now) for r in reports
    ]


async def staff_report_of(db: Database, report: ThreatReport, now: datetime) -> StaffReport:
    return (await staff_reports(db, [report], now))[0]


def _statuses(value: str) -> list[str]:
    statuses = [s.strip() for s in value.split(",") if s.strip()]
    for status in statuses:
        if status not in ReportStatus.__members__.values():
            raise AppError(ErrorCode.INVALID_STATUS, f"Unknown status {status!r}")
    return statuses


def _since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise AppError(
            ErrorCode.INVALID_SINCE, "since: an ISO 8601 date or time, e.g. 2026-11-01"
        ) from None
    return since if since.tzinfo is not None else since.replace(tzinfo=UTC)


async def public_reports(
    db: Database, query: dict[str, str], limit: int = MAX_PUBLIC_REPORTS
) -> list[ThreatReport]:
    statement = select(ThreatReport)
    if query.get("status"):
        statement = statement.where(col(ThreatReport.status).in_(_statuses(query["status"])))
    if query.get("category"):
        statement = statement.where(col(ThreatReport.category) == query["category"])
    if query.get("since"):
        statement = statement.where(col(ThreatReport.created_at) >= _since(query["since"]))
    if query.get("until"):
        statement = statement.where(col(ThreatReport.created_at) <= _since(query["until"]))
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(limit)
    async with db.session() as session:
        return list((await session.exec(statement)).all())


def _report_id(request: web.Request) -> int:
    try:
        return int(request.match_info["report_id"])
    except ValueError:
        raise AppError(ErrorCode.INVALID_REPORT_ID, "A report id is a number") from None


# --- citizens ---------------------------------------------------------------------------------


@routes.get("/api/report-categories")
async def categories(request: web.Request) -> web.StreamResponse:
    reporter = reporter_of(request)
    codes = await active_codes(request.app[SERVICES_KEY].db)
    response = web.json_response({"categories": [{"code": c} for c in codes]})
    return with_cookie(request, reporter, response)


@dataclass(frozen=True)
class Submitted:
    report: ThreatReport
    token: str | None


async def submit_report(
    request: web.Request,
    reporter: Reporter,
    report: ReportInput,
    files: Sequence[bytes],
    *,
    source: str,
    check_duplicates: bool,
) -> Submitted | list[dict[str, Any]]:
    """Everything between a parsed form and a stored report: the category, the day's limit,
    the photos, nearby duplicates (returned instead of storing), then store and emit."""
    app = request.app
    settings = app[SERVICES_KEY].settings
    db = app[SERVICES_KEY].db
    await check_category(db, report.category)
    await check_limits(request, settings.REPORT_RATE_LIMIT, "reports", reporter.keys)
    photos = await prepare_photos(files)
    if check_duplicates:
        nearby = await nearby_open(db, report.category, report.lat, report.lon)
        if nearby:
            return [nearby_item(n) for n in nearby]
    await hit_limits(request, settings.REPORT_RATE_LIMIT, "reports", reporter.keys)
    created = await do_create_report(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        settings.DATA_DIR,
        report=report,
        photos=photos,
        source=source,
        remote=reporter.remote,
        client_key=reporter.cookie_key,
    )
    now = app[SERVICES_KEY].clock.now()
    view = await staff_report_of(db, created.report, now)
    await app[SERVICES_KEY].notifier.to_report_desks(ReportNewEvent(report=view))
    return Submitted(created.report, created.token)


@routes.post("/api/reports")
async def create_report(request: web.Request) -> web.StreamResponse:
    settings = request.app[SERVICES_KEY].settings
    reporter = reporter_of(request)
    fields, files = await read_report_form(request, settings.MAX_REPORT_PHOTOS_BYTES)
    report = check_report_fields(fields, settings.report_area)
    result = await submit_report(
        request,
        reporter,
        report,
        files,
        source="web",
        check_duplicates=fields.get("duplicate_ok", "").strip().lower() not in ("1", "true"),
    )
    if isinstance(result, list):
        refusal = {
            "error": {
                "code": "possible_duplicate",
                "message": "Reports of this kind are open within 50 m: confirm one of them, "
                "or send again with duplicate_ok=1",
            },
            "nearby": result,
        }
        return with_cookie(request, reporter, web.json_response(refusal, status=409))
    body = {
        "id": result.report.id,
        "status": result.report.status,
        "follow_url": f"/reports/follow/{result.token}",
    }
    return with_cookie(request, reporter, web.json_response(body, status=201))


@routes.get("/api/reports/nearby")
async def nearby(request: web.Request) -> web.StreamResponse:
    query = request.query
    lat = parse_coordinate(query.get("lat", ""), "lat")
    lon = parse_coordinate(query.get("lon", ""), "lon")
    check_point(lat, lon, request.app[SERVICES_KEY].settings.report_area)
    category = await check_category(request.app[SERVICES_KEY].db, query.get("category", ""))
    found = await nearby_open(request.app[SERVICES_KEY].db, category, lat, lon)
    return web.json_response({"nearby": [nearby_item(n) for n in found]})


@routes.post(r"/api/reports/{report_id:\d+}/confirm")
async def confirm(request: web.Request) -> web.StreamResponse:
    settings = request.app[SERVICES_KEY].settings
    db = request.app[SERVICES_KEY].db
    reporter = reporter_of(request)
    report_id = _report_id(request)
    report = await get_report(db, report_id)
    if await has_confirmed(db, report_id, reporter.cookie_key):
        raise AppError(ErrorCode.ALREADY_CONFIRMED, "You have confirmed this report already")
    if report.status not in ("new", "verifying", "confirmed"):
        raise AppError(ErrorCode.REPORT_CLOSED, "This report is closed")
    await check_limits(request, settings.CONFIRM_RATE_LIMIT, "confirmations", reporter.keys)
    await hit_limits(request, settings.CONFIRM_RATE_LIMIT, "confirmations", reporter.keys)
    count = await do_confirm(
        db, request.app[SERVICES_KEY].clock, report_id=report_id, client_key=reporter.cookie_key
    )
    return with_cookie(
        request, reporter, web.json_response({"id": report_id, "confirmations": count})
    )


# --- the public -------------------------------------------------------------------------------


@routes.get("/api/reports")
async def reports_geojson(request: web.Request) -> web.StreamResponse:
    db = request.app[SERVICES_KEY].db
    reports = await public_reports(db, dict(request.query))
    now = request.app[SERVICES_KEY].clock.now()
    async with db.session() as session:
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    features = [public_feature(r, photos.get(r.id or 0, []), now) for r in reports]
    return web.json_response({"type": "FeatureCollection", "features": features})


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


def _cell(value: object) -> object:
    """Spreadsheets run a cell that starts with = + - @ as a formula: make it text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@routes.get("/api/reports.csv")
async def reports_csv(request: web.Request) -> web.StreamResponse:
    db = request.app[SERVICES_KEY].db
    reports = await public_reports(db, dict(request.query))
    now = request.app[SERVICES_KEY].clock.now()
    async with db.session() as session:
        photos = await photos_of(session, [r.id for r in reports if r.id is not None])
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        props = public_properties(report, photos.get(report.id or 0, []), now)
        props["lat"], props["lon"] = public_position(report)
        props["days"] = ",".join(props["days"])
        props["photos"] = len(props["photos"])
        writer.writerow([_cell(props[c]) for c in CSV_COLUMNS])
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="reports.csv"'},
    )


@routes.get(r"/api/reports/{report_id:\d+}/photos/{n:\d+}")
async def public_photo(request: web.Request) -> web.StreamResponse:
    """The public copy: re-encoded, without EXIF. The original is for staff only."""
    photo = await photo_row(
        request.app[SERVICES_KEY].db, _report_id(request), int(request.match_info["n"])
    )
    data = await asyncio.to_thread(Path(photo.public_path).read_bytes)
    return web.Response(
        body=data,
        content_type="image/jpeg",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-SHA256": photo.public_sha256},
    )


def follow_view(report: ThreatReport, history: Sequence[Any]) -> dict[str, Any]:
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


async def _followed(request: web.Request) -> dict[str, Any]:
    db = request.app[SERVICES_KEY].db
    report = await report_by_token(db, request.match_info["token"])
    assert report.id is not None
    async with db.session() as session:
        history = (await history_of(session, [report.id])).get(report.id, [])
    return follow_view(report, history)


@routes.get(r"/api/reports/follow/{token:" + TOKEN_PATTERN + "}")
async def follow_json(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _followed(request))


@routes.get(r"/reports/follow/{token:" + TOKEN_PATTERN + "}")
async def follow_page(request: web.Request) -> web.StreamResponse:
    report = await _followed(request)
    response = request.app[PAGES_KEY].render(request, "report_follow.html", report=report)
    # The link is a capability: keep it out of caches and of other sites' Referer.
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/api/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    return web.json_response(await compute_stats(request.app[SERVICES_KEY].db))


# --- the police -------------------------------------------------------------------------------


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: str = Field(max_length=32)
    public_note: str = Field(default="", max_length=MAX_PUBLIC_NOTE_CHARS)
    internal_note: str = Field(default="", max_length=MAX_INTERNAL_NOTE_CHARS)
    sensitive: bool | None = None


class ForwardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    to: str = Field(max_length=32)
    note: str = Field(default="", max_length=MAX_INTERNAL_NOTE_CHARS)


class FromCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    category: str = Field(max_length=64)
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    sensitive: bool = False


class CategoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: str = Field(max_length=64)
    active: bool = True


def _int_query(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AppError(ErrorCode.INVALID, f"{name} must be a whole number") from None
    if not 0 <= value <= high:
        raise AppError(ErrorCode.INVALID, f"{name} must be 0..{high}")
    return value


@routes.get("/api/staff/reports")
async def staff_list(request: web.Request) -> web.StreamResponse:
    require_staff(request, REPORT_ROLES)
    db = request.app[SERVICES_KEY].db
    now = request.app[SERVICES_KEY].clock.now()
    statement = select(ThreatReport)
    if request.query.get("status"):
        statement = statement.where(
            col(ThreatReport.status).in_(_statuses(request.query["status"]))
        )
    if request.query.get("category"):
        statement = statement.where(col(ThreatReport.category) == request.query["category"])
    if request.query.get("max_age_days"):
        days = _int_query(request, "max_age_days", 0, 36_600)
        statement = statement.where(col(ThreatReport.created_at) >= now - timedelta(days=days))
    if request.query.get("bbox"):
        try:
            min_lon, min_lat, max_lon, max_lat = (
                float(p) for p in request.query["bbox"].split(",")
            )
        except ValueError:
            raise AppError(
                ErrorCode.INVALID_BBOX, "bbox: min_lon,min_lat,max_lon,max_lat"
            ) from None
        statement = statement.where(
            col(ThreatReport.lat).between(min_lat, max_lat),
            col(ThreatReport.lon).between(min_lon, max_lon),
        )
    limit = _int_query(request, "limit", 1000, MAX_STAFF_REPORTS)
    statement = statement.order_by(col(ThreatReport.created_at).desc()).limit(limit)
    async with db.session() as session:
        reports = list((await session.exec(statement)).all())
    views = await staff_reports(db, reports, now)
    return web.json_response({"reports": [v.model_dump(mode="json") for v in views]})


async def _changed(app: web.Application, report: ThreatReport) -> web.Response:
    """After a stored change: tell every console, and answer with the staff view."""
    view = await staff_report_of(app[SERVICES_KEY].db, report, app[SERVICES_KEY].clock.now())
    await app[SERVICES_KEY].notifier.to_report_desks(ReportUpdatedEvent(report=view))
    return web.json_response(view.model_dump(mode="json"))


@routes.get(r"/api/staff/reports/{report_id:\d+}")
async def staff_one(request: web.Request) -> web.StreamResponse:
    """One report; the first officer to open it marks it read (KMZB's 2-day target)."""
    staff = require_staff(request, REPORT_ROLES)
    app = request.app
    report_id = _report_id(request)
    await get_report(app[SERVICES_KEY].db, report_id)
    marked = await do_mark_read(
        app[SERVICES_KEY].audit, app[SERVICES_KEY].clock, report_id=report_id, actor=staff.username
    )
    report = await get_report(app[SERVICES_KEY].db, report_id)
    if marked:
        return await _changed(app, report)
    view = await staff_report_of(app[SERVICES_KEY].db, report, app[SERVICES_KEY].clock.now())
    return web.json_response(view.model_dump(mode="json"))


@routes.post(r"/api/staff/reports/{report_id:\d+}/status")
async def staff_status(request: web.Request) -> web.StreamResponse:
    staff = require_staff(request, REPORT_ROLES)
    check_csrf(request, None)
    body: StatusBody = await read_json(request, StatusBody)
    app = request.app
    report = await do_change_status(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        report_id=_report_id(request),
        actor=staff.username,
        new=body.status,
        public_note=check_text(body.public_note, "public_note", MAX_PUBLIC_NOTE_CHARS),
        internal_note=check_text(body.internal_note, "internal_note", MAX_INTERNAL_NOTE_CHARS),
        sensitive=body.sensitive,
    )
    return await _changed(app, report)


@routes.post(r"/api/staff/reports/{report_id:\d+}/forward")
async def staff_forward(request: web.Request) -> web.StreamResponse:
    staff = require_staff(request, REPORT_ROLES)
    check_csrf(request, None)
    body: ForwardBody = await read_json(request, ForwardBody)
    app = request.app
    report = await do_forward(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        report_id=_report_id(request),
        actor=staff.username,
        to=body.to,
        note=check_text(body.note, "note", MAX_INTERNAL_NOTE_CHARS),
    )
    return await _changed(app, report)


@routes.post(r"/api/staff/reports/{report_id:\d+}/invite")
async def staff_invite(request: web.Request) -> web.StreamResponse:
    """Invite the report's author to a video call: their follow page then offers one."""
    staff = require_staff(request, REPORT_ROLES)
    check_csrf(request, None)
    app = request.app
    report = await do_invite(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        report_id=_report_id(request),
        actor=staff.username,
    )
    return await _changed(app, report)


@routes.post(r"/api/staff/reports/from-call/{call_id}")
async def staff_from_call(request: web.Request) -> web.StreamResponse:
    """A live call becomes a threat report at the caller's last known position."""
    staff = require_staff(request, REPORT_ROLES)
    check_csrf(request, None)
    body: FromCallBody = await read_json(request, FromCallBody)
    app = request.app
    db = app[SERVICES_KEY].db
    call = await check_call_for_staff(
        app[SERVICES_KEY], request.match_info["call_id"], staff, must_own=True
    )
    async with db.session() as session:
        last = await last_location(session, call.id)
    if last is None:
        raise AppError(ErrorCode.NO_LOCATION, "The caller has sent no location")
    check_point(last.lat, last.lon, app[SERVICES_KEY].settings.report_area)
    category = await check_category(db, body.category)
    report = ReportInput(
        category=category,
        lat=last.lat,
        lon=last.lon,
        description=check_text(body.description, "description", MAX_DESCRIPTION_CHARS),
    )
    created = await do_create_report(
        app[SERVICES_KEY].audit,
        app[SERVICES_KEY].clock,
        app[SERVICES_KEY].settings.DATA_DIR,
        report=report,
        source="call",
        actor=staff.username,
        call_id=call.id,
        created_by=staff.user_id,
        with_token=False,
        sensitive=body.sensitive,
    )
    view = await staff_report_of(db, created.report, app[SERVICES_KEY].clock.now())
    await app[SERVICES_KEY].notifier.to_report_desks(ReportNewEvent(report=view))
    return web.json_response(view.model_dump(mode="json"), status=201)


@routes.get(r"/api/staff/reports/{report_id:\d+}/photos/{n:\d+}/original")
async def staff_original_photo(request: web.Request) -> web.StreamResponse:
    """The photo as sent (EXIF included): evidence, for staff, every view audited."""
    staff = require_staff(request, REPORT_ROLES)
    report_id = _report_id(request)
    photo = await photo_row(request.app[SERVICES_KEY].db, report_id, int(request.match_info["n"]))
    await request.app[SERVICES_KEY].audit.append(
        actor=staff.username,
        action="report_photo_viewed",
        subject=f"report:{report_id}",
        data={"n": photo.n, "sha256": photo.sha256},
    )
    data = await asyncio.to_thread(Path(photo.original_path).read_bytes)
    return web.Response(
        body=data,
        content_type=photo.content_type,
        headers={"Cache-Control": "no-store", "X-Content-SHA256": photo.sha256},
    )


# --- the admin: the category list ---------------------------------------------------------------


@routes.get("/api/admin/report-categories")
async def admin_categories(request: web.Request) -> web.StreamResponse:
    require_staff(request, ADMIN_ROLES)
    rows = await all_categories(request.app[SERVICES_KEY].db)
    return web.json_response(
        {"categories": [{"code": c.code, "active": c.active, "position": c.position} for c in rows]}
    )


@routes.post("/api/admin/report-categories")
async def admin_save_category(request: web.Request) -> web.StreamResponse:
    staff = require_staff(request, ADMIN_ROLES)
    check_csrf(request, None)
    body: CategoryBody = await read_json(request, CategoryBody)
    category = await do_save_category(
        request.app[SERVICES_KEY].audit, actor=staff.username, code=body.code, active=body.active
    )
    return web.json_response(
        {"code": category.code, "active": category.active, "position": category.position}
    )
